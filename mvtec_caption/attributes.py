"""Rule-based attributes derived from caption text.

The captions are short templated English sentences ("There is a red stain on the leather.",
"The screw bag contains two additional washers, but two nuts are not included."). Word lists
and a few phrase rules recover what a paper's caption analysis shows: colours, counts,
positions/parts, logical relations, and structural vs logical. No model is involved, so the
attributes are reproducible and auditable; the rules were checked against every distinct
caption of MVTec Caption (see tests/test_dataset_attributes.py for the cases they settle).

Conventions:

* Clauses describing the *expected* state ("instead of the correct 2 tangerines",
  "outside of red, yellow, or blue") are left out of colours and counts: they name what
  should be seen, not the anomaly.
* Words naming the category's own object ("bottle" for ``bottle`` / ``juice_bottle``,
  "nut" for ``metal_nut``, see ``OBJECT_WORDS``) are not parts of it.
* A fill level is an amount: "insufficient fill level" is ``missing``, "excessive" ``extra``;
  a length is a property: "insufficient length" is ``wrong_type``.
* Relations are not damage words: "misplaced" is a relation, "cracked" a defect word.
* Size words ("small", "large", "long", "short", ...) are read by :func:`derive_sizes`, apart from
  :class:`~mvtec_caption.schema.CaptionAttributes` (adding a field there would change the
  versioned record schema): the benchmark's attribute checks use them.

The word lists are versioned as a whole (``VOCABULARY_VERSION``): a result scored by rules built
on them records the version and the hash of :func:`vocabulary`, so a change of any list shows.
"""

from __future__ import annotations

import re

from typing import Any

from mvtec_caption.schema import AnomalyKind, CaptionAttributes

#: Version of the word lists below. History: 1 = colours, counts, positions, parts, relations and
#: defect words; 2 = adds ``SIZE_WORDS``. Bump it whenever a list or rule changes.
VOCABULARY_VERSION = 2

COLOR_WORDS: dict[str, str] = {
    **{c: c for c in ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white",
                      "grey", "silver", "gold", "transparent", "dark", "beige", "violet")},
    "gray": "grey",
    "golden": "gold",
}
#: Second halves of hyphenated colour compounds: "gold-colored", "yellow-striped".
COLOR_COMPOUND_TAILS = ("colored", "coloured", "striped", "ish", "tinted")
#: Words after which a colour word names a fruit or flavour, not a colour ("orange juice").
NOT_A_COLOR_BEFORE = ("juice", "peel", "icon")

NUMBER_WORDS: dict[str, int] = {
    "a single": 1, "single": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "both": 2, "a pair of": 2,
}
#: Phrases after which the caption describes the expected state (ignored for colours/counts).
REFERENCE_CLAUSE = re.compile(r"\b(?:instead of|outside of)\b.*$")

POSITION_WORDS = (
    "top", "bottom", "left", "right", "center", "centre", "middle", "upper", "lower", "edge", "corner",
    "side", "front", "back", "inner", "outer", "interior", "border", "end", "surface",
)
PART_WORDS = (
    "label", "cap", "neck", "head", "thread", "lead", "case", "cable", "wire", "insulation", "teeth",
    "fabric", "imprint", "compartment", "port", "connector", "icon", "bottle", "tray", "lid", "section",
    "washer", "nut", "screw", "bolt", "pushpin", "clamp", "bristles", "separator", "seal", "lever",
)
#: Part words naming the whole object of a category; "cable" stays a part of ``cable`` (three
#: coloured cables make one object) and "screw" of ``screw_bag``.
OBJECT_WORDS: dict[str, tuple[str, ...]] = {
    "bottle": ("bottle",), "juice_bottle": ("bottle",), "metal_nut": ("nut",), "screw": ("screw",),
}
#: A part word followed by one of these is a modifier of another noun ("screw bag", "label strips").
NOT_A_PART_BEFORE = ("bag", "set", "strip", "strips")
#: A part word preceded by one of these is foreign matter, not a part ("woven fabric").
NOT_A_PART_AFTER = ("woven",)
#: Words that are a part in one context and a defect in another: part only after these words.
PART_ONLY_AFTER: dict[str, tuple[str, ...]] = {"thread": ("screw",)}

#: Size words, normalised to the measure and direction they state: area ("small", "large"), length
#: of the defect ("short", "long") or its width ("thin", "thick"); "very"/"too" do not change them.
SIZE_WORDS: dict[str, str] = {
    "small": "small", "tiny": "small", "little": "small",
    "large": "large", "big": "large", "huge": "large",
    "short": "short", "long": "long",
    "thin": "thin", "narrow": "thin", "thick": "thick", "wide": "thick",
}

DEFECT_WORDS: dict[str, str] = {
    **{w: w for w in (
        "broken", "breakage", "crack", "cracked", "scratch", "stain", "contamination", "contaminated", "hole",
        "cut", "bent", "fold", "glue", "poke", "poked", "squeezed", "squeeze", "rough", "impaired", "damaged",
        "faulty", "spot", "oil", "thread", "fractured", "deformed", "dent", "shavings", "stroke", "split",
        "flipped", "paint", "frayed", "print", "severed", "incomplete", "rotated", "defect",
    )},
    # plurals fold to the singular so frequencies add up
    "holes": "hole", "scratches": "scratch", "stains": "stain", "spots": "spot", "cracks": "crack",
    "dents": "dent", "defects": "defect", "threads": "thread",
}
RELATION_PATTERNS: dict[str, tuple[str, ...]] = {
    "missing": (r"\bmissing\b", r"\bnot included\b", r"\babsent\b", r"\blacks?\b", r"\bwithout\b", r"\bempty\b",
                r"\bwith no\b", r"\binsufficient\b(?! length)"),
    # "extrone" is upstream's typo for "extra one" (LOCO pushpins)
    "extra": (r"\bextra\b", r"\bextrone\b", r"\badditional\b", r"\bexcess\b", r"\btoo many\b", r"\bmore than\b",
              r"\bmixed in\b", r"\bunexpected\b",
              r"\bexcessive\b(?! length)"),
    "swapped": (r"\bswap", r"\binterchang", r"\breversed\b", r"\breplaced by a repeated\b"),
    "misplaced": (r"\bmisplaced\b", r"\bwrong (?:position|place|port|side)\b", r"\bmisaligned\b", r"\bshifted\b",
                  r"\bincorrectly (?:connected|positioned|placed)\b", r"\bspilled over\b"),
    "wrong_type": (r"\bmislabeled\b", r"\bwrong\b(?! (?:position|place|port|side))", r"\bincorrect\b", r"\bunknown\b",
                   r"\bdifferent\b", r"\bexceeding\b", r"\b(?:very|too) (?:short|long)\b", r"\bstandard length\b",
                   r"\bmismatch", r"\b(?:insufficient|excessive) length\b"),
}
# Hyphenated compounds stay one token, so "three-pin connector" is no count of three.
_WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*(?:'s)?")


def _words(text: str) -> list[str]:
    return [w.removesuffix("'s") for w in _WORD.findall(text.lower())]


def _ordered_unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _object_words(category: str | None) -> set[str]:
    """Part words that name the category's object itself (so they are not parts of it)."""
    return set(OBJECT_WORDS.get(category or "", ()))


def _singular(word: str) -> list[str]:
    return [word, word.removesuffix("es"), word.removesuffix("s")]


def _colors(words: list[str]) -> list[str]:
    found: list[str] = []
    for i, word in enumerate(words):
        following = words[i + 1] if i + 1 < len(words) else ""
        if word in COLOR_WORDS and following not in NOT_A_COLOR_BEFORE:
            found.append(COLOR_WORDS[word])
        elif "-" in word:
            head, _, tail = word.partition("-")
            if head in COLOR_WORDS and tail in COLOR_COMPOUND_TAILS:
                found.append(COLOR_WORDS[head])
    return _ordered_unique(found)


def _counts(words: list[str]) -> list[int]:
    remaining = " ".join(words)
    counts: list[int] = []
    for phrase, value in sorted(NUMBER_WORDS.items(), key=lambda item: -len(item[0])):
        pattern = rf"(?<![\w-]){phrase}(?![\w-])"
        counts += [value] * len(re.findall(pattern, remaining))
        remaining = re.sub(pattern, " ", remaining)
    counts += [int(w) for w in words if w.isdigit()]
    return sorted(counts)


def _parts(words: list[str], category: str | None) -> list[str]:
    own = _object_words(category)
    found: list[str] = []
    for i, word in enumerate(words):
        before = words[i - 1] if i else ""
        after = words[i + 1] if i + 1 < len(words) else ""
        part = next((c for c in _singular(word) if c in PART_WORDS), None)
        if part is None or part in own or after in NOT_A_PART_BEFORE or before in NOT_A_PART_AFTER:
            continue
        if part in PART_ONLY_AFTER and before not in PART_ONLY_AFTER[part]:
            continue
        found.append(part)
    return _ordered_unique(found)


def _defect_words(words: list[str]) -> list[str]:
    found: list[str] = []
    for i, word in enumerate(words):
        before = words[i - 1] if i else ""
        normal = DEFECT_WORDS.get(word)
        if normal is None or (normal in PART_ONLY_AFTER and before in PART_ONLY_AFTER[normal]):
            continue  # "screw thread" is a part, "abnormal thread" a defect
        found.append(normal)
    return _ordered_unique(found)


def derive_sizes(caption: str) -> list[str]:
    """Size words of a caption, normalised (``SIZE_WORDS``), in order of appearance, each once.

    "a large broken" -> ``["large"]``; "a long screw" -> ``["long"]``; a reference clause
    ("instead of the correct short screw") describes the expected state and is left out.
    """
    words = _words(REFERENCE_CLAUSE.sub("", caption.lower()))
    return _ordered_unique([SIZE_WORDS[w] for w in words if w in SIZE_WORDS])


def vocabulary() -> dict[str, Any]:
    """Every word list and rule constant of this module, for hashing into results that used them."""
    return {
        "version": VOCABULARY_VERSION, "colors": COLOR_WORDS, "color_compound_tails": list(COLOR_COMPOUND_TAILS),
        "not_a_color_before": list(NOT_A_COLOR_BEFORE), "numbers": NUMBER_WORDS,
        "reference_clause": REFERENCE_CLAUSE.pattern, "positions": list(POSITION_WORDS), "parts": list(PART_WORDS),
        "object_words": {k: list(v) for k, v in OBJECT_WORDS.items()}, "sizes": SIZE_WORDS, "defect_words": DEFECT_WORDS,
        "relations": {k: list(v) for k, v in RELATION_PATTERNS.items()},
    }


def derive_kind(dataset: str, defect_type: str, relations: list[str]) -> AnomalyKind:
    """LOCO labels each image's kind by folder; elsewhere a logical relation makes it logical."""
    if defect_type == "logical_anomalies":
        return "logical"
    if defect_type == "structural_anomalies":
        return "structural"
    if dataset == "mvtec_loco":
        return "logical" if relations else "structural"
    # MVTec AD defines every defect type as structural, including transistor/misplaced and
    # cable/cable_swap, whose captions do name a relation.
    return "structural"


def derive_attributes(caption: str, dataset: str, defect_type: str, category: str | None = None) -> CaptionAttributes:
    """Attributes of one caption; ``category`` keeps the object's own name out of ``parts``."""
    words = _words(caption)
    observed = _words(REFERENCE_CLAUSE.sub("", caption.lower()))
    joined = " ".join(words)
    relations = [name for name, patterns in RELATION_PATTERNS.items() if any(re.search(p, joined) for p in patterns)]
    return CaptionAttributes(
        colors=_colors(observed),
        counts=_counts(observed),
        positions=_ordered_unique([w for w in words if w in POSITION_WORDS]),
        parts=_parts(words, category),
        relations=relations,
        defect_words=_defect_words(words),
        kind=derive_kind(dataset, defect_type, relations),
    )
