"""derive_attributes on captions written in the style of MVTec Caption (paraphrased, not copied).

Each row settles one rule that was checked against all 396 distinct real captions; the
real-data test below re-checks invariants on the real captions read at test time.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mvtec_caption.attributes import derive_attributes

AD, LOCO = "mvtec_ad", "mvtec_loco"
LOGICAL, STRUCTURAL = "logical_anomalies", "structural_anomalies"

# (caption, dataset, defect_type, category, expected subset of attributes)
CASES = [
    # colours: gray -> grey, fruit names are not colours, compounds and reference clauses
    ("The gray cable shows a bent wire.", AD, "bent_wire", "cable",
     {"colors": ["grey"], "parts": ["cable", "wire"], "defect_words": ["bent"]}),
    ("Orange juice bottle with a misplaced top label.", LOCO, LOGICAL, "juice_bottle",
     {"colors": [], "parts": ["label"], "positions": ["top"], "relations": ["misplaced"], "defect_words": [], "kind": "logical"}),
    ("Cherry juice is contaminated with orange strip-shaped objects.", LOCO, STRUCTURAL, "juice_bottle",
     {"colors": ["orange"], "defect_words": ["contaminated"], "kind": "structural"}),
    ("The meal box mixed in orange peel.", LOCO, STRUCTURAL, "breakfast_box", {"colors": [], "relations": ["extra"]}),
    ("The banana juice label has an incomplete orange icon.", LOCO, STRUCTURAL, "juice_bottle",
     {"colors": [], "parts": ["label", "icon"], "defect_words": ["incomplete"]}),
    ("A gold-colored washer mixed in the screw bag.", LOCO, STRUCTURAL, "screw_bag",
     {"colors": ["gold"], "parts": ["washer"], "relations": ["extra"]}),
    ("A yellow-striped object mixed in the screw bag.", LOCO, STRUCTURAL, "screw_bag", {"colors": ["yellow"], "parts": []}),
    ("The cable has an unknown color outside of red or blue.", LOCO, STRUCTURAL, "splicing_connectors",
     {"colors": [], "relations": ["wrong_type"], "defect_words": []}),
    ("Empty bottle with no cherry juice.", LOCO, LOGICAL, "juice_bottle", {"colors": [], "relations": ["missing"], "parts": []}),
    # counts: hyphenated compounds are no counts, reference clauses are dropped
    ("The three-pin connector is missing.", LOCO, LOGICAL, "splicing_connectors",
     {"counts": [], "parts": ["connector"], "relations": ["missing"]}),
    ("The bag contains two additional nuts, but one washer is not included.", LOCO, LOGICAL, "screw_bag",
     {"counts": [1, 2], "parts": ["nut", "washer"], "relations": ["missing", "extra"]}),
    ("Incorrect ratio, 3 peaches and 0 plums, instead of the correct 2 plums and 1 peach.", LOCO, LOGICAL, "breakfast_box",
     {"counts": [0, 3], "relations": ["wrong_type"]}),
    ("The screw bag includes a pair of very short screws.", LOCO, LOGICAL, "screw_bag",
     {"counts": [2], "parts": ["screw"], "relations": ["wrong_type"]}),
    ("A double nut-like object mixed in the screw bag.", LOCO, STRUCTURAL, "screw_bag", {"counts": [], "parts": []}),
    ("Both the green and blue cables have bent wires.", AD, "bent_wire", "cable", {"counts": [2], "colors": ["green", "blue"]}),
    # positions and parts
    ("Top and bottom labels swapped on the cherry juice bottle.", LOCO, LOGICAL, "juice_bottle",
     {"positions": ["top", "bottom"], "parts": ["label"], "relations": ["swapped"], "defect_words": []}),
    ("The screw thread top is impaired.", AD, "thread_top", "screw",
     {"parts": ["thread"], "positions": ["top"], "defect_words": ["impaired"]}),
    ("There is an abnormal black thread on the rug.", AD, "thread", "carpet",
     {"parts": [], "colors": ["black"], "defect_words": ["thread"]}),
    ("The metal nut is bent upward.", AD, "bent", "metal_nut", {"parts": [], "defect_words": ["bent"]}),
    ("The capsule's red section has a scratch.", AD, "scratch", "capsule", {"parts": ["section"], "colors": ["red"]}),
    ("The zipper's fabric border is damaged.", AD, "fabric_border", "zipper",
     {"parts": ["fabric"], "positions": ["border"], "defect_words": ["damaged"]}),
    ("The bottle has contamination with black woven fabric.", AD, "contamination", "bottle", {"parts": [], "colors": ["black"]}),
    ("The meal box mixed in label strips.", LOCO, STRUCTURAL, "breakfast_box", {"parts": []}),
    # defect words: plurals fold, relations are not defect words
    ("The wood has holes and purple stains.", AD, "combined", "wood", {"defect_words": ["hole", "stain"], "colors": ["purple"]}),
    ("The toothbrush has frayed bristles and linear defects.", AD, "defective", "toothbrush",
     {"defect_words": ["frayed", "defect"], "parts": ["bristles"]}),
    ("The transistor is misplaced.", AD, "misplaced", "transistor",
     {"relations": ["misplaced"], "defect_words": [], "kind": "structural"}),
    # relations
    ("The blue cable is replaced by a repeated green cable.", AD, "cable_swap", "cable", {"relations": ["swapped"], "kind": "structural"}),
    ("One green cable is missing, replaced by a black hole.", AD, "missing_cable", "cable",
     {"relations": ["missing"], "counts": [1], "colors": ["green", "black"]}),
    ("Cherry juice bottle with insufficient fill level.", LOCO, LOGICAL, "juice_bottle", {"relations": ["missing"]}),
    ("Banana juice bottle with excessive fill level.", LOCO, LOGICAL, "juice_bottle", {"relations": ["extra"]}),
    ("The bag contains a screw with insufficient length.", LOCO, LOGICAL, "screw_bag", {"relations": ["wrong_type"]}),
    ("The fruits in the box are incorrectly positioned.", LOCO, LOGICAL, "breakfast_box", {"relations": ["misplaced"]}),
    ("The cable is connected to the wrong port of the connector.", LOCO, LOGICAL, "splicing_connectors",
     {"relations": ["misplaced"], "parts": ["cable", "port", "connector"]}),
    ("Cherry juice mislabeled as orange juice.", LOCO, LOGICAL, "juice_bottle", {"relations": ["wrong_type"], "colors": []}),
    ("The box has excess cereal, with insufficient almonds.", LOCO, LOGICAL, "breakfast_box", {"relations": ["missing", "extra"]}),
    ("A compartment has an extrone pushpin with green color.", LOCO, STRUCTURAL, "pushpins",
     {"relations": ["extra"], "colors": ["green"], "defect_words": []}),
    # kind: LOCO's folder decides; elsewhere in LOCO a relation makes it logical; MVTec AD is structural
    ("A nail mixed in the screw bag.", LOCO, STRUCTURAL, "screw_bag", {"relations": ["extra"], "kind": "structural"}),
    ("A cable is severed.", LOCO, LOGICAL, "splicing_connectors", {"relations": [], "defect_words": ["severed"], "kind": "logical"}),
    ("Two washers are missing.", LOCO, "other", "screw_bag", {"kind": "logical"}),
    ("The lid is cracked.", LOCO, "other", "screw_bag", {"kind": "structural"}),
]


@pytest.mark.parametrize(("caption", "dataset", "defect_type", "category", "expected"), CASES, ids=[c[0][:40] for c in CASES])
def test_derive_attributes(caption: str, dataset: str, defect_type: str, category: str, expected: dict) -> None:
    attributes = derive_attributes(caption, dataset, defect_type, category).model_dump()
    for name, value in expected.items():
        assert attributes[name] == value, f"{name}: {attributes[name]!r} != {value!r} for {caption!r}"


def test_category_is_optional() -> None:
    """Other packages call derive_attributes without a category: the object name then counts as a part."""
    assert derive_attributes("The bottle has a large broken.", AD, "broken_large").parts == ["bottle"]


@pytest.mark.real_data
def test_invariants_on_the_real_captions(shared_captions: Path) -> None:
    data = json.loads(shared_captions.read_text(encoding="utf-8"))
    distinct = {text for cats in data.values() for defects in cats.values() for texts in defects.values() for text in texts}
    assert len(distinct) == 396
    for dataset, categories in data.items():
        for category, defects in categories.items():
            for defect_type, texts in defects.items():
                for text in texts:
                    attributes = derive_attributes(text, dataset, defect_type, category)
                    if dataset == LOCO:
                        assert attributes.kind == ("logical" if defect_type == LOGICAL else "structural")
                    else:
                        assert attributes.kind == "structural"
                    if "orange" in attributes.colors:
                        assert re.search(r"\borange (?!juice|peel|icon)", text.lower()), text
                    assert "gray" not in attributes.colors
                    assert not set(attributes.defect_words) & {"misplaced", "swapped", "swap"}
                    if dataset == LOCO and defect_type == LOGICAL:
                        assert attributes.relations or "severed" in attributes.defect_words, text
