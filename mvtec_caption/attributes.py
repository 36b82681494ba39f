"""Rule-based attributes derived from caption text.

The captions are short templated English sentences ("There is a red stain on the leather.",
"The screw bag contains two additional washers, but two nuts are not included."). Word lists
and a few phrase rules recover what a paper's caption analysis shows: colours, counts,
positions/parts, logical relations, and structural vs logical. No model is involved, so the
attributes are reproducible and auditable.
"""

from __future__ import annotations

import re

from mvtec_caption.schema import AnomalyKind, CaptionAttributes

COLOR_WORDS: dict[str, str] = {
    **{c: c for c in ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white",
                      "grey", "silver", "gold", "golden", "transparent", "dark", "beige", "violet")},
    "gray": "grey",
    "golden": "gold",
}
NUMBER_WORDS: dict[str, int] = {
    "a single": 1, "single": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "both": 2, "double": 2, "twice": 2,
}
POSITION_WORDS = (
    "top", "bottom", "left", "right", "center", "centre", "middle", "upper", "lower", "edge", "corner",
    "side", "front", "back", "inner", "outer", "interior", "border", "end", "surface",
)
PART_WORDS = (
    "label", "cap", "neck", "head", "thread", "lead", "case", "cable", "wire", "insulation", "teeth",
    "fabric", "imprint", "compartment", "port", "connector", "icon", "liquid", "bottle", "tray", "lid",
    "washer", "nut", "screw", "bolt", "pushpin", "clamp", "bristles", "separator", "seal",
)
DEFECT_WORDS = (
    "broken", "break", "breakage", "crack", "cracked", "scratch", "scratched", "stain", "contamination",
    "contaminated", "hole", "cut", "bent", "fold", "glue", "poke", "poked", "squeezed", "squeeze", "rough",
    "impaired", "damaged", "faulty", "spot", "spots", "oil", "thread", "fractured", "deformed", "dent",
    "shavings", "stroke", "split", "flipped", "misplaced", "swap", "swapped", "color", "colour", "paint",
)
RELATION_PATTERNS: dict[str, tuple[str, ...]] = {
    "missing": (r"\bmissing\b", r"\bnot included\b", r"\babsent\b", r"\blacks?\b", r"\bwithout\b", r"\bempty\b"),
    "extra": (r"\bextra\b", r"\badditional\b", r"\bexcess\b", r"\btoo many\b", r"\bmore than\b", r"\bmixed in\b"),
    "swapped": (r"\bswap", r"\binterchang", r"\breversed\b"),
    "misplaced": (r"\bmisplaced\b", r"\bwrong (?:position|place|port|side)\b", r"\bmisaligned\b", r"\bshifted\b",
                  r"\bincorrectly connected\b"),
    "wrong_type": (r"\bmislabeled\b", r"\bwrong\b(?! (?:position|place|port|side))", r"\bincorrect\b", r"\bunknown\b", r"\bdifferent\b", r"\bexceeding\b",
                   r"\b(?:very|too) (?:short|long)\b", r"\bstandard length\b", r"\bmismatch"),
}
# Hyphenated compounds stay one token, so "three-pin connector" is no count of three.
_WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*(?:'s)?")
#: Colour words that name a flavour or product, not a colour ("orange juice").
_NOT_A_COLOR_BEFORE = ("juice",)


def _words(text: str) -> list[str]:
    return [w.removesuffix("'s") for w in _WORD.findall(text.lower())]


def _part(word: str) -> str | None:
    """The part a word names, plurals folded ("washers" -> "washer")."""
    for candidate in (word, word.removesuffix("es"), word.removesuffix("s")):
        if candidate in PART_WORDS:
            return candidate
    return None


def _ordered_unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def derive_kind(dataset: str, defect_type: str, relations: list[str]) -> AnomalyKind:
    """LOCO labels each image's kind by folder; elsewhere a logical relation makes it logical."""
    if defect_type == "logical_anomalies":
        return "logical"
    if defect_type == "structural_anomalies":
        return "structural"
    if dataset == "mvtec_loco":
        return "logical" if relations else "structural"
    return "structural"  # MVTec AD's defects are all structural except the misplaced/swap kinds
    # (transistor misplaced, cable swap), which the captions describe with damage words anyway.


def derive_attributes(caption: str, dataset: str, defect_type: str) -> CaptionAttributes:
    words = _words(caption)
    counts: list[int] = []
    remaining = " ".join(words)
    for phrase, value in sorted(NUMBER_WORDS.items(), key=lambda item: -len(item[0])):
        pattern = rf"(?<![\w-]){phrase}(?![\w-])"
        counts += [value] * len(re.findall(pattern, remaining))
        remaining = re.sub(pattern, " ", remaining)
    counts += [int(w) for w in words if w.isdigit()]
    colors = _ordered_unique(
        [
            COLOR_WORDS[w]
            for i, w in enumerate(words)
            if w in COLOR_WORDS and (i + 1 == len(words) or words[i + 1] not in _NOT_A_COLOR_BEFORE)
        ]
    )
    relations = [name for name, patterns in RELATION_PATTERNS.items() if any(re.search(p, " ".join(words)) for p in patterns)]
    return CaptionAttributes(
        colors=colors,
        counts=sorted(counts),
        positions=_ordered_unique([w for w in words if w in POSITION_WORDS]),
        parts=_ordered_unique([p for p in map(_part, words) if p]),
        relations=relations,
        defect_words=_ordered_unique([w for w in words if w in DEFECT_WORDS]),
        kind=derive_kind(dataset, defect_type, relations),
    )
