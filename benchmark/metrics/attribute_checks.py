"""Rule-based checks of a caption's stated attributes on an image and its defect mask.

A caption such as "a small red stain on the upper left" states attributes that can be checked
without any learned model: where the defect is, how large it is, how many pieces it has and what
colour it has. The attributes come from :mod:`mvtec_caption.attributes` (colours, counts,
positions, size words); the checks below read the image, the defect mask and the normal image
the defect was made on (for a real anomaly: a normal image of the category), at any resolution.

Every check answers ``True`` (satisfied), ``False`` (contradicted) or ``None`` (the word is stated
but these rules cannot check it, e.g. "front", "transparent"). The rules, each chosen on a
principle (no threshold is fitted to a category; the colour rule's mixing model and its brown
prototype replaced a first version that failed on bottle's real defects, for the reasons given):

* **components**: 8-connected regions of the mask (``skimage.measure.label``); components under
  ``MIN_COMPONENT_SHARE`` of the largest one are annotation specks and are ignored.
* **position** (relative to the *object*, found in the normal image: the largest connected
  region whose CIELAB colour differs from the image border's median colour by more than
  Otsu's threshold, at least ``MIN_OBJECT_CONTRAST``; the whole image when no object stands out,
  e.g. textures). Coordinates are taken about the object's centre of mass and scaled by its
  extent on each side, so ``u, v`` run from -1 (left / top edge of the object) through 0 to 1.
  "top"/"upper": v < 0; "bottom"/"lower": v > 0; "left": u < 0; "right": u > 0;
  "center"/"centre"/"middle": |u|, |v| <= 1/3; "edge"/"border": max(|u|, |v|) >= 2/3;
  "corner": |u|, |v| >= 1/2. A position is satisfied when the centroid of *some* component lies
  in the named region, so "top and bottom labels" needs one component above and one below the
  object's centre of mass. Centre of mass, not bounding-box centre: the upper part of a bottle
  is what lies above the bulk of it, not above the middle of its neck-to-base box.
  Other position words (front, back, side, end, inner, outer, interior, surface) need 3-D
  orientation or part segmentation: not checkable.
* **size** (relative to the category's real annotated defects, all defect types): area share
  of the image for small/large, the largest component's major axis (length) for short/long and
  its minor axis (width) for thin/thick, compared with the median of the same measure over the
  reference defects: "large" means larger than the category's typical defect. (Comparing with
  defects of the *same* type would make a type named by its size, bottle's ``broken_large``,
  its own reference, and half of it "small".)
* **count**: the number of components equals one of the stated non-zero numbers or their sum
  (the rules do not parse which noun each number counts: "two compartments each have one
  additional pushpin" states 1 and 2, and shows two pushpins).
* **colour** (scikit-image: ``rgb2xyz``, ``xyz2lab``, CIEDE2000): a colour word names what the
  defect *added* to the surface, and a defect rarely covers its whole mask (white filler in a dark
  bottle only makes the region lighter). So the region's mean colour is compared with mixtures of
  the *normal* image's mean colour over the same pixels and each basic colour: for each of Berlin
  & Kay's eleven basic colour terms, the mixtures normal + s (colour - normal), s in [0, 1], are
  formed in CIE XYZ (light adds linearly: a partial cover mixes like this) and the CIEDE2000
  distance from the defect's mean colour (CIELAB) to the nearest mixture is that colour's
  residual. The named colour is satisfied when it has the smallest residual, at a share s > 0
  (an unchanged region is best explained by the normal colour itself and never passes) and with
  a perceptible change (CIEDE2000 >= ``MIN_COLOUR_CHANGE``, about one just-noticeable difference).
  A caption naming k > 1 colours ("red and black woven fabric") describes k differently coloured
  parts: the region's pixels are split by k-means on their CIELAB colour (scikit-learn, seeded)
  and each named colour must be the best match of one part (the mean of red and black is a dark
  red, which names neither). Prototypes are the CSS named colours, except brown: CSS ``brown``
  (#A52A2A) is a dark red (CIELAB hue 31 degrees, between CSS red and pink), so brown is ISCC-NBS
  58 "moderate brown" (#6F4E37), the colour-naming dictionary's centroid. Non-basic words fold
  into their basic term (silver -> grey, gold -> yellow, violet -> purple, beige -> brown); "dark"
  is satisfied when the region's lightness L* dropped perceptibly; "transparent" names no colour
  and is not checkable. Known limit: seen from a normal colour darker than grey, a little white
  and more grey are nearly the same mixture, so a white defect that covers little of a dark
  object's region can be matched to grey.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from scipy import ndimage
from skimage.color import deltaE_ciede2000, rgb2lab, rgb2xyz, xyz2lab
from skimage.filters import threshold_otsu
from skimage.measure import label, regionprops

from mvtec_caption.attributes import VOCABULARY_VERSION, derive_attributes, derive_sizes
from mvtec_caption.object_frame import ObjectFrame  # noqa: F401 (re-exported: the checks' frame)

#: Version of the check rules in this module (independent of the caption vocabulary's version).
CHECK_RULES_VERSION = 1
AttributeKind = Literal["position", "size", "count", "colour"]
KINDS: tuple[AttributeKind, ...] = ("position", "size", "count", "colour")

MIN_COMPONENT_SHARE = 0.05  # of the largest component's area
MIN_OBJECT_CONTRAST = 10.0  # CIELAB dE76 from the border colour: a clearly visible difference
MIN_OBJECT_SHARE = 0.05  # of the image: a smaller "object" is noise, use the whole image
BORDER_FRACTION = 1 / 32  # width of the border ring whose median colour is the background

CENTRE_LIMIT = 1 / 3
EDGE_LIMIT = 2 / 3
CORNER_LIMIT = 1 / 2


@dataclass(frozen=True)
class Region:
    """A named region in object coordinates (u, v): its rule as text (for the record) and as a test."""

    rule: str
    contains: Callable[[float, float], bool]


_CENTRE = Region("|u| <= 1/3 and |v| <= 1/3", lambda u, v: abs(u) <= CENTRE_LIMIT and abs(v) <= CENTRE_LIMIT)
_EDGE = Region("max(|u|, |v|) >= 2/3", lambda u, v: max(abs(u), abs(v)) >= EDGE_LIMIT)
_ABOVE, _BELOW = Region("v < 0", lambda u, v: v < 0), Region("v > 0", lambda u, v: v > 0)
POSITION_RULES: dict[str, Region] = {
    "top": _ABOVE, "upper": _ABOVE, "bottom": _BELOW, "lower": _BELOW,
    "left": Region("u < 0", lambda u, v: u < 0), "right": Region("u > 0", lambda u, v: u > 0),
    "center": _CENTRE, "centre": _CENTRE, "middle": _CENTRE, "edge": _EDGE, "border": _EDGE,
    "corner": Region("|u| >= 1/2 and |v| >= 1/2", lambda u, v: abs(u) >= CORNER_LIMIT and abs(v) >= CORNER_LIMIT),
}

SIZE_RULES: dict[str, tuple[str, int]] = {  # word -> (measure, +1 larger than the median / -1 smaller)
    "small": ("area", -1), "large": ("area", 1), "short": ("length", -1), "long": ("length", 1),
    "thin": ("width", -1), "thick": ("width", 1),
}

MIN_COLOUR_CHANGE = 1.0  # CIEDE2000 between the region's means: about one just-noticeable difference
COLOUR_KMEANS_INIT = 4  # k-means restarts when a caption names several colours (seeded: deterministic)
MIX_STEPS = 101  # shares 0, 0.01, ..., 1 of a basic colour mixed into the normal colour
#: Berlin & Kay's eleven basic colour terms: CSS named colours (sRGB), brown from ISCC-NBS (see above).
BASIC_COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0), "white": (255, 255, 255), "red": (255, 0, 0), "green": (0, 128, 0),
    "yellow": (255, 255, 0), "blue": (0, 0, 255), "brown": (111, 78, 55), "purple": (128, 0, 128),
    "pink": (255, 192, 203), "orange": (255, 165, 0), "grey": (128, 128, 128),
}
COLOUR_FOLDS = {"silver": "grey", "gold": "yellow", "violet": "purple", "beige": "brown"}
UNCHECKABLE_COLOURS = ("transparent",)


def rules() -> dict[str, Any]:
    """Every constant of the checks, for the metric's settings (and its hash)."""
    return {
        "check_rules_version": CHECK_RULES_VERSION, "vocabulary_version": VOCABULARY_VERSION,
        "components": {"connectivity": 8, "min_share_of_largest": MIN_COMPONENT_SHARE},
        "object": {"border_fraction": BORDER_FRACTION, "min_contrast_dE76": MIN_OBJECT_CONTRAST,
                   "threshold": "Otsu on dE76 from the border median, at least min_contrast",
                   "min_share_of_image": MIN_OBJECT_SHARE, "fallback": "whole image"},
        "position": {"frame": "object centre of mass; each side scaled by the object's extent",
                     "satisfied_by": "the centroid of any component",
                     **{word: region.rule for word, region in POSITION_RULES.items()}},
        "size": {"reference": "median over the category's real annotated defects (all types)",
                 **{w: f"{m} {'>' if d > 0 else '<'} median" for w, (m, d) in SIZE_RULES.items()}},
        "count": "number of components equals a stated non-zero number or their sum",
        "colour": {"means": "over the region's pixels in CIE XYZ (skimage rgb2xyz, D65)",
                   "distance": "CIEDE2000 in CIELAB (skimage xyz2lab, deltaE_ciede2000)",
                   "prototypes_srgb": BASIC_COLOURS, "folds": COLOUR_FOLDS, "min_change_ciede2000": MIN_COLOUR_CHANGE,
                   "mixture_shares": MIX_STEPS, "dark": "L* of the region dropped (perceptible change)",
                   "not_checkable": list(UNCHECKABLE_COLOURS),
                   "rule": "the named colour's mixture with the normal colour (CIE XYZ, share s in [0, 1]) is the "
                           "closest to the defect colour, at s > 0, with a perceptible change; over the region, or "
                           "over one of k k-means parts (CIELAB) when the caption names k > 1 colours",
                   "kmeans_restarts": COLOUR_KMEANS_INIT},
    }


@dataclass(frozen=True)
class AttributeCheck:
    kind: AttributeKind
    word: str  # the stated attribute, normalised ("top", "large", "2", "red")
    satisfied: bool | None  # None: stated, but these rules cannot check it
    detail: str  # what was measured


# ---- what a caption states ----------------------------------------------------------------------
def stated_attributes(caption: str) -> dict[AttributeKind, list[str]]:
    """The caption's attributes that the checks consider, per kind (counts as strings)."""
    attributes = derive_attributes(caption, "", "")
    counts = [str(c) for c in attributes.counts]
    return {"position": list(attributes.positions), "size": derive_sizes(caption),
            "count": ["+".join(counts)] if counts else [], "colour": list(attributes.colors)}


# ---- geometry -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Component:
    area: int
    centroid: tuple[float, float]  # (row, column)
    major_axis: float
    minor_axis: float


def components(mask: np.ndarray) -> list[Component]:
    """The mask's 8-connected components, largest first, without specks (``MIN_COMPONENT_SHARE``)."""
    regions = regionprops(label(np.asarray(mask, dtype=bool), connectivity=2))
    found = sorted((Component(int(r.area), (float(r.centroid[0]), float(r.centroid[1])),
                              float(r.axis_major_length), float(r.axis_minor_length)) for r in regions),
                   key=lambda c: -c.area)
    if not found:
        return []
    return [c for c in found if c.area >= MIN_COMPONENT_SHARE * found[0].area]


def object_mask(normal: np.ndarray) -> np.ndarray:
    """The object in a normal image (see the module docstring); the whole image when none stands out."""
    lab = rgb2lab(np.asarray(normal))
    height, width = lab.shape[:2]
    ring = max(1, round(min(height, width) * BORDER_FRACTION))
    border = np.concatenate([lab[:ring].reshape(-1, 3), lab[-ring:].reshape(-1, 3),
                             lab[:, :ring].reshape(-1, 3), lab[:, -ring:].reshape(-1, 3)])
    distance = np.linalg.norm(lab - np.median(border, axis=0), axis=-1)
    whole = np.ones((height, width), bool)
    if distance.max() <= MIN_OBJECT_CONTRAST:
        return whole
    threshold = max(float(threshold_otsu(distance)), MIN_OBJECT_CONTRAST)
    labels = label(ndimage.binary_fill_holes(distance > threshold), connectivity=2)
    if labels.max() == 0:
        return whole
    largest = labels == (np.argmax(np.bincount(labels.ravel())[1:]) + 1)
    return largest if largest.mean() >= MIN_OBJECT_SHARE else whole


def check_position(word: str, mask: np.ndarray, frame: ObjectFrame) -> AttributeCheck:
    if word not in POSITION_RULES:
        return AttributeCheck("position", word, None, "not checkable without 3-D orientation or part segmentation")
    parts = components(mask)
    if not parts:
        return AttributeCheck("position", word, False, "empty mask")
    where = [frame.uv(*c.centroid) for c in parts]
    satisfied = any(POSITION_RULES[word].contains(u, v) for u, v in where)
    return AttributeCheck("position", word, satisfied,
                          "component centroids (u, v): " + ", ".join(f"({u:+.2f}, {v:+.2f})" for u, v in where))


# ---- size -------------------------------------------------------------------------------------
def size_measures(mask: np.ndarray) -> dict[str, float]:
    """Area share of the image; the largest component's major and minor axis as shares of the image side."""
    mask = np.asarray(mask, dtype=bool)
    side = float(max(mask.shape))
    parts = components(mask)
    largest = parts[0] if parts else Component(0, (0.0, 0.0), 0.0, 0.0)
    return {"area": float(mask.mean()), "length": largest.major_axis / side, "width": largest.minor_axis / side}


@dataclass(frozen=True)
class SizeReference:
    """Medians of the size measures over a category's real annotated defects."""

    medians: dict[str, float]
    n: int

    @classmethod
    def from_masks(cls, masks: Sequence[np.ndarray]) -> SizeReference:
        measured = [size_measures(m) for m in masks if np.asarray(m).any()]
        if not measured:
            return cls({}, 0)
        return cls({key: float(np.median([m[key] for m in measured])) for key in measured[0]}, len(measured))


def check_size(word: str, mask: np.ndarray, reference: SizeReference) -> AttributeCheck:
    if word not in SIZE_RULES:
        return AttributeCheck("size", word, None, "no rule for this size word")
    if not reference.n:
        return AttributeCheck("size", word, None, "no real defects to compare with")
    measure, direction = SIZE_RULES[word]
    value, median = size_measures(mask)[measure], reference.medians[measure]
    satisfied = bool(np.asarray(mask).any()) and (value > median if direction > 0 else value < median)
    return AttributeCheck("size", word, satisfied, f"{measure} {value:.4f} vs the category median {median:.4f}")


# ---- count ------------------------------------------------------------------------------------
def check_count(stated: str, mask: np.ndarray) -> AttributeCheck:
    numbers = [int(n) for n in stated.split("+") if int(n) > 0]
    if not numbers:
        return AttributeCheck("count", stated, None, "only zero counts are stated")
    found = len(components(mask))
    satisfied = found in numbers or found == sum(numbers)
    return AttributeCheck("count", stated, satisfied, f"{found} component(s); stated {stated}")


# ---- colour -----------------------------------------------------------------------------------
def _prototypes_xyz() -> dict[str, np.ndarray]:
    rgb = np.array(list(BASIC_COLOURS.values()), dtype=np.float64).reshape(1, -1, 3) / 255.0
    return dict(zip(BASIC_COLOURS, rgb2xyz(rgb)[0]))


PROTOTYPES_XYZ = _prototypes_xyz()
MIX_SHARES = np.linspace(0.0, 1.0, MIX_STEPS)


@dataclass(frozen=True)
class ColourMatch:
    """How well mixing the normal colour with one basic colour explains a defect colour."""

    name: str
    distance: float  # CIEDE2000 from the defect colour to the nearest mixture
    share: float  # the basic colour's share in that mixture (0: the normal colour itself)


def mixing_matches(defect_xyz: np.ndarray, normal_xyz: np.ndarray) -> list[ColourMatch]:
    """Each basic colour's best mixture with the normal colour (mixed in CIE XYZ), best match first."""
    defect_lab = xyz2lab(np.asarray(defect_xyz, dtype=np.float64))
    matches = []
    for name, prototype in PROTOTYPES_XYZ.items():
        line = xyz2lab(normal_xyz + MIX_SHARES[:, None] * (prototype - normal_xyz))
        distances = deltaE_ciede2000(np.broadcast_to(defect_lab, line.shape), line)
        best = int(np.argmin(distances))
        matches.append(ColourMatch(name, float(distances[best]), float(MIX_SHARES[best])))
    return sorted(matches, key=lambda m: m.distance)


def colour_parts(image: np.ndarray, normal: np.ndarray, mask: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(defect mean, normal mean) in CIE XYZ of k parts of the region (k-means on CIELAB pixels; k=1: all of it)."""
    image_xyz, normal_xyz = rgb2xyz(np.asarray(image))[mask], rgb2xyz(np.asarray(normal))[mask]
    if k <= 1 or len(image_xyz) < k:
        return [(image_xyz.mean(axis=0), normal_xyz.mean(axis=0))]
    from sklearn.cluster import KMeans

    assignment = KMeans(n_clusters=k, n_init=COLOUR_KMEANS_INIT, random_state=0).fit_predict(xyz2lab(image_xyz))
    return [(image_xyz[assignment == c].mean(axis=0), normal_xyz[assignment == c].mean(axis=0))
            for c in range(k) if (assignment == c).any()]


def check_colours(words: Sequence[str], image: np.ndarray, mask: np.ndarray, normal: np.ndarray | None
                  ) -> list[AttributeCheck]:
    """One check per named colour (see the module docstring)."""
    mask = np.asarray(mask, dtype=bool)
    if normal is None:
        return [AttributeCheck("colour", w, None, "no normal image to compare with") for w in words]
    if not mask.any():
        return [AttributeCheck("colour", w, False, "empty mask") for w in words]
    named = sorted({COLOUR_FOLDS.get(w, w) for w in words} & set(BASIC_COLOURS))
    found, shown = set(), []
    for index, (defect_xyz, normal_xyz) in enumerate(colour_parts(image, normal, mask, len(named))):
        change = float(deltaE_ciede2000(xyz2lab(defect_xyz), xyz2lab(normal_xyz)))
        best = mixing_matches(defect_xyz, normal_xyz)[0]
        if best.share > 0 and change >= MIN_COLOUR_CHANGE:
            found.add(best.name)
        shown.append(f"part {index + 1}: {best.name} (share {best.share:.2f}, residual dE00 {best.distance:.1f}, "
                     f"change dE00 {change:.1f})")
    whole_defect, whole_normal = (xyz2lab(x) for x in colour_parts(image, normal, mask, 1)[0])
    whole_change = float(deltaE_ciede2000(whole_defect, whole_normal))
    checks = []
    for word in words:
        name = COLOUR_FOLDS.get(word, word)
        if word == "dark":
            drop = float(whole_normal[0] - whole_defect[0])
            checks.append(AttributeCheck("colour", word, whole_change >= MIN_COLOUR_CHANGE and drop > 0,
                                         f"L* dropped by {drop:.1f}; change dE00 {whole_change:.1f}"))
        elif name in BASIC_COLOURS:
            checks.append(AttributeCheck("colour", word, name in found, "; ".join(shown)))
        else:
            checks.append(AttributeCheck("colour", word, None, "names no colour of its own"))
    return checks


# ---- one caption ------------------------------------------------------------------------------
def check_caption(caption: str, image: np.ndarray, mask: np.ndarray, normal: np.ndarray | None,
                  sizes: SizeReference, frame: ObjectFrame | None = None) -> list[AttributeCheck]:
    """Every stated attribute of ``caption`` checked on (image, mask); ``normal`` is the defect-free image.

    ``frame`` (the object's frame) defaults to the object found in ``normal``, else in ``image``.
    """
    stated = stated_attributes(caption)
    mask = np.asarray(mask, dtype=bool)
    checks: list[AttributeCheck] = []
    if stated["position"]:
        frame = frame or ObjectFrame.of(object_mask(normal if normal is not None else image))
        checks += [check_position(word, mask, frame) for word in stated["position"]]
    checks += [check_size(word, mask, sizes) for word in stated["size"]]
    checks += [check_count(word, mask) for word in stated["count"]]
    if stated["colour"]:
        checks += check_colours(stated["colour"], image, mask, normal)
    return checks
