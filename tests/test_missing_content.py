""""Missing" captions remove content (synthesis.plan 3, croppaste 3) on a hand-made bottle with a label.

The normal bottle's label sits a few pixels lower than the label mask of the training anomaly that
lacks it (as labels stuck by hand do), so the aligned training mask alone leaves the label's lower
edge in place. A "missing" caption must remove all of it; any other caption keeps the plan and the
paste as they were.
"""

from __future__ import annotations

import numpy as np
import pytest

from synthesis import missing_content as mc
from synthesis import registry
from synthesis.baselines.croppaste import parse_origin
from synthesis.contract import FewShotAnomaly, NormalImage, TrainSplit
from synthesis.plan import Planner

SIZE = 96
JUICE = (225, 205, 120)
BOTTLE = (slice(14, 90), slice(24, 72))
LABEL_COLS = slice(31, 65)
NORMAL_LABEL = slice(52, 68)  # the normal image's label rows
MISSING_MASK = slice(48, 64)  # where the training anomaly's label was: 4 rows higher
MASK_COLS = slice(29, 67)  # drawn a little wider than the label, as the annotators do


def _bottle(label_rows: slice | None, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = np.full((SIZE, SIZE, 3), 18.0)
    image[BOTTLE] = JUICE
    if label_rows is not None:
        image[label_rows, LABEL_COLS] = (245, 150, 50)  # orange paper
        image[label_rows.start + 3:label_rows.stop - 3:4, LABEL_COLS.start + 4:LABEL_COLS.stop - 4] = (40, 30, 30)  # text
    return np.clip(image + rng.normal(0, 2.0, image.shape), 0, 255).astype(np.uint8)


def _split(caption: str) -> tuple[TrainSplit, np.ndarray]:
    normal = _bottle(NORMAL_LABEL, seed=0)
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[MISSING_MASK, MASK_COLS] = True
    anomaly = FewShotAnomaly("logical_anomalies", "000", _bottle(None, seed=1), mask, caption)
    train = TrainSplit("tiny", "juice_bottle", SIZE, (NormalImage("000", normal),), (anomaly,), True, "tiny/96px")
    return train, normal


def _generate(caption: str) -> tuple[np.ndarray, np.ndarray, str, np.ndarray]:
    train, normal = _split(caption)
    spec = Planner(train).plan("logical_anomalies", 1, seed=0)[0]
    synthesizer = registry.create("croppaste")
    synthesizer.fit(train, progress=False)
    out = synthesizer.synthesize(spec, normal, np.random.default_rng(spec.seed))
    return out.image, out.mask, spec.mask_origin, normal


def _label() -> np.ndarray:
    label = np.zeros((SIZE, SIZE), dtype=bool)
    label[NORMAL_LABEL, LABEL_COLS] = True
    return label


def _label_left(image: np.ndarray, normal: np.ndarray) -> float:
    """Share of the normal's label pixels the image still shows as label (nearer the label than the juice)."""
    label = _label()
    pixels = image[label].astype(float)
    to_label = np.linalg.norm(pixels - normal[label].astype(float), axis=-1)
    to_juice = np.linalg.norm(pixels - np.array(JUICE, float), axis=-1)
    return float((to_label < to_juice).mean())


def test_a_missing_caption_removes_the_whole_label() -> None:
    image, mask, origin, normal = _generate("Yellow juice bottle with missing bottom label.")
    assert " grown" in origin and parse_origin(origin)[1].grown
    assert mask[_label()].mean() > 0.97  # the planned mask covers this bottle's label, not only the training one's
    assert _label_left(image, normal) < 0.02  # and the label is gone: juice where it was
    assert np.array_equal(image[~mask], normal[~mask])


def test_a_caption_without_missing_keeps_the_aligned_mask_and_paste() -> None:
    image, mask, origin, normal = _generate("Yellow juice bottle with damaged bottom label.")
    train, _ = _split("Yellow juice bottle with damaged bottom label.")
    assert "grown" not in origin and not parse_origin(origin)[1].grown
    assert np.array_equal(mask, train.anomalies[0].mask)  # same pose: the training mask, unmoved, ungrown
    assert _label_left(image, normal) > 0.2  # the label's lower edge is not part of the request and stays


def test_the_same_label_under_the_training_mask_alone_keeps_its_edge() -> None:
    """Why the plan grows the mask: the aligned training mask covers only part of this bottle's label."""
    train, normal = _split("Yellow juice bottle with missing bottom label.")
    moved = train.anomalies[0].mask
    assert moved[_label()].mean() < 0.8
    grown = mc.part_pixels(moved, mc.look(normal), mc.look(train.anomalies[0].image), np.ones_like(moved))
    assert grown[_label()].mean() > 0.97 and not grown[:40].any()  # grows over the label only


@pytest.mark.parametrize(("caption", "part"), [
    ("Orange juice bottle with missing top and bottom labels.", "top and bottom labels"),
    ("Banana juice bottle missing top label.", "top label"),
    ("Orange juice label missing fruit icon.", "fruit icon"),
    ("The screw bag detected an extra washer, but a nut is missing.", "nut"),
    ("One green cable is missing, replaced by a black hole.", "green cable"),
    ("Top and bottom labels swapped on cherry juice bottle.", None),
    ("Empty bottle with no cherry juice.", None),
])
def test_missing_part(caption: str, part: str | None) -> None:
    assert mc.missing_part(caption) == part
