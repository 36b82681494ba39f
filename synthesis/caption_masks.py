"""Caption-planned masks: the caption's place, size and count words decide where a training mask goes.

A caption such as "The fabric has a small hole in the upper left" states where the defect is, how
large and how many. The plan used to ignore that (a training mask, turned and moved anywhere on the
object), so no synthesizer could follow those words. Here the words are read with
:mod:`mvtec_caption.attributes` (the vocabulary the benchmark's attribute checks use) and turned
into a request (:class:`MaskAsk`) that :func:`plan_mask` honours:

* **place** words put each component's centroid in a zone of the object's frame: coordinates
  ``u, v`` about the foreground's centre of mass, each side scaled to [-1, 1] by the object's
  extent (the frame of ``benchmark.metrics.attribute_checks``, which checks the result). The zones
  (``ZONES``) lie well inside the checks' regions ("top": v in [-0.85, -0.3], the check: v < 0), so
  a component clipped to the foreground still satisfies the check. Words of one axis that exclude
  each other ("top and bottom labels") ask for one component in each.
* **size** words scale the mask against the median of the same measure over the training split's
  masks (all defect types): area for small/large, the largest component's major axis for
  short/long, its minor axis for thin/thick, as the checks measure them. "large" draws a target of
  1.6-2.4 times the median, "small" 0.35-0.6 times.
* **count** words place that many copies of the mask's largest component (the source's own
  components when it already has that many), kept apart so they stay separate components.
* **no attribute**: the training mask is flipped, turned, scaled and placed as before
  (:func:`synthesis.masks.augment_mask`), so plans of captions without such words are unchanged.

What was asked and what was planned (zone per component, scale, whether each centroid landed in
its zone) is returned as pydantic records, which the plan stores in the generated set's manifest.
Flips, quarter turns and the default scale range come from the category's geometry
(:mod:`synthesis.geometry`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field
from scipy import ndimage
from skimage.measure import label, regionprops

from mvtec_caption.attributes import derive_attributes, derive_sizes
from mvtec_caption.object_frame import ObjectFrame
from synthesis.geometry import MaskGeometry

#: Version of the rules below (zones, size factors, separation). Bump when any of them changes.
PLAN_RULES_VERSION = 1

Box = tuple[float, float, float, float]  # u_lo, u_hi, v_lo, v_hi in the object frame
_EDGE, _CORNER = (0.75, 0.95), (0.6, 0.95)
#: Each place word's zone, as alternative boxes (one is drawn per component when several fit).
ZONES: dict[str, tuple[Box, ...]] = {
    "top": ((-1.0, 1.0, -0.85, -0.3),),
    "bottom": ((-1.0, 1.0, 0.3, 0.85),),
    "left": ((-0.85, -0.3, -1.0, 1.0),),
    "right": ((0.3, 0.85, -1.0, 1.0),),
    "center": ((-0.2, 0.2, -0.2, 0.2),),
    "edge": ((-1.0, 1.0, -_EDGE[1], -_EDGE[0]), (-1.0, 1.0, *_EDGE), (-_EDGE[1], -_EDGE[0], -1.0, 1.0), (*_EDGE, -1.0, 1.0)),
    "corner": ((-_CORNER[1], -_CORNER[0], -_CORNER[1], -_CORNER[0]), (*_CORNER, -_CORNER[1], -_CORNER[0]),
               (-_CORNER[1], -_CORNER[0], *_CORNER), (*_CORNER, *_CORNER)),
}
#: Place words folded onto the zones above; other place words (front, side, inner, ...) have none.
PLACE_WORDS = {"top": "top", "upper": "top", "bottom": "bottom", "lower": "bottom", "left": "left", "right": "right",
               "center": "center", "centre": "center", "middle": "center", "edge": "edge", "border": "edge",
               "corner": "corner"}
VERTICAL, HORIZONTAL = ("top", "bottom"), ("left", "right")
#: Size word -> (measure, range of the target as a multiple of the training masks' median).
SIZE_TARGETS: dict[str, tuple[str, tuple[float, float]]] = {
    "small": ("area", (0.35, 0.6)), "large": ("area", (1.6, 2.4)), "short": ("length", (0.35, 0.6)),
    "long": ("length", (1.6, 2.4)), "thin": ("width", (0.35, 0.6)), "thick": ("width", (1.6, 2.4)),
}
MAX_COMPONENTS = 8  # a larger stated count is planned as this many (the captions state at most six)
SEPARATION_PX = 2  # gap kept between placed components so they stay separate (8-connected) components
SCALE_LIMITS = (0.2, 6.0)
MIN_ON_FOREGROUND = 0.7
TRIES = 40


def rules() -> dict[str, object]:
    """The planner's constants, recorded with every generated set."""
    return {"version": PLAN_RULES_VERSION, "zones": {k: [list(b) for b in v] for k, v in ZONES.items()},
            "place_words": PLACE_WORDS, "size_targets": {k: [m, list(r)] for k, (m, r) in SIZE_TARGETS.items()},
            "max_components": MAX_COMPONENTS, "separation_px": SEPARATION_PX, "scale_limits": list(SCALE_LIMITS),
            "min_on_foreground": MIN_ON_FOREGROUND, "tries": TRIES}


class MaskAsk(BaseModel):
    """What a caption asks of the mask (the words the planner acts on)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    places: list[str] = Field(default_factory=list, description="Place words, folded (PLACE_WORDS).")
    unplaced: list[str] = Field(default_factory=list, description="Place words without a zone (front, side, ...).")
    size: str | None = None
    count: int | None = None

    @property
    def empty(self) -> bool:
        return not self.places and self.size is None and self.count is None


class MaskPlanned(BaseModel):
    """What the planner did for one sample."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: str = Field(description="'free' (flip/turn/scale/place), 'caption' (placed by the caption's words), "
                                  "'aligned' (the training mask moved with its image aligned to the normal one) or "
                                  "'user' (a mask given by the user, only checked against the zones).")
    components: int
    zones: list[str] = Field(default_factory=list, description="Per component: the place words of its zone.")
    in_zone: list[bool] = Field(default_factory=list, description="Per component: its centroid lies in its zone.")
    scale: float | None = None
    size: dict[str, float] | None = Field(None, description="measure, planned value and the training median.")
    shift: tuple[int, int] | None = Field(None, description="Aligned mode: (rows, columns) the mask was moved.")


def ask_of(caption: str) -> MaskAsk:
    """The caption's place, size and count words (``mvtec_caption.attributes``)."""
    attributes = derive_attributes(caption, "", "")
    places = list(dict.fromkeys(PLACE_WORDS[w] for w in attributes.positions if w in PLACE_WORDS))
    unplaced = [w for w in attributes.positions if w not in PLACE_WORDS]
    size = next((w for w in derive_sizes(caption) if w in SIZE_TARGETS), None)
    counts = [c for c in attributes.counts if c > 0]
    count = min(max(counts), MAX_COMPONENTS) if counts else None
    return MaskAsk(places=places, unplaced=unplaced, size=size, count=count)


# ---- the object frame ---------------------------------------------------------------------------
def _in_box(u: np.ndarray | float, v: np.ndarray | float, box: Box) -> np.ndarray:
    return (box[0] <= u) & (u <= box[1]) & (box[2] <= v) & (v <= box[3])


def _intersect(a: Box, b: Box) -> Box | None:
    box = (max(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), min(a[3], b[3]))
    return box if box[0] < box[1] and box[2] < box[3] else None


@dataclass(frozen=True)
class Zone:
    words: tuple[str, ...]
    boxes: tuple[Box, ...]  # alternatives

    def contains(self, u: float | np.ndarray, v: float | np.ndarray) -> np.ndarray:
        return np.logical_or.reduce([_in_box(u, v, b) for b in self.boxes])


def _zone(words: Sequence[str]) -> Zone:
    """The zone where every word holds; "center" beside one axis' word centres the other axis only."""
    words = list(words)
    if "center" in words and any(w in VERTICAL + HORIZONTAL for w in words):
        axis_words = [w for w in words if w in VERTICAL + HORIZONTAL]
        words.remove("center")
        if not any(w in HORIZONTAL for w in axis_words):
            words.append("_hcentre")
        elif not any(w in VERTICAL for w in axis_words):
            words.append("_vcentre")
    options = {**ZONES, "_hcentre": ((-0.2, 0.2, -1.0, 1.0),), "_vcentre": ((-1.0, 1.0, -0.2, 0.2),)}
    boxes: list[Box] = [(-1.0, 1.0, -1.0, 1.0)]
    for word in words:
        narrowed = [b for a in boxes for c in options[word] if (b := _intersect(a, c)) is not None]
        boxes = narrowed or boxes  # a word that excludes the others is dropped, not the sample
    return Zone(tuple(w for w in words if not w.startswith("_")), tuple(boxes))


def zones_for(ask: MaskAsk) -> list[Zone]:
    """One zone per component to place: words of one axis that exclude each other split the request."""
    vertical = [w for w in ask.places if w in VERTICAL] or [None]
    horizontal = [w for w in ask.places if w in HORIZONTAL] or [None]
    others = [w for w in ask.places if w not in VERTICAL + HORIZONTAL]
    return [_zone([w for w in (v, h) if w] + others) for v, h in itertools.product(vertical, horizontal)]


# ---- sizes ----------------------------------------------------------------------------------------
def size_measures(mask: np.ndarray) -> dict[str, float]:
    """Area share of the image; the largest component's major and minor axis as shares of the image side
    (the measures of ``benchmark.metrics.attribute_checks.size_measures``)."""
    mask = np.asarray(mask, dtype=bool)
    side = float(max(mask.shape))
    regions = sorted(regionprops(label(mask, connectivity=2)), key=lambda r: -r.area)
    major, minor = (float(regions[0].axis_major_length), float(regions[0].axis_minor_length)) if regions else (0.0, 0.0)
    return {"area": float(mask.mean()), "length": major / side, "width": minor / side}


def size_medians(masks: Sequence[np.ndarray]) -> dict[str, float]:
    """Medians of :func:`size_measures` over non-empty masks (the reference of the size words)."""
    measured = [size_measures(m) for m in masks if np.asarray(m).any()]
    return {key: float(np.median([m[key] for m in measured])) for key in measured[0]} if measured else {}


# ---- placing -------------------------------------------------------------------------------------
def _bbox(mask: np.ndarray) -> tuple[slice, slice]:
    rows, cols = np.nonzero(mask)
    return slice(int(rows.min()), int(rows.max()) + 1), slice(int(cols.min()), int(cols.max()) + 1)


def _resize(patch: np.ndarray, scale: float, limit: tuple[int, int]) -> np.ndarray:
    new_h = max(1, min(limit[0], round(patch.shape[0] * scale)))
    new_w = max(1, min(limit[1], round(patch.shape[1] * scale)))
    resized = np.asarray(Image.fromarray(patch.astype(np.uint8) * 255).resize((new_w, new_h), Image.NEAREST)) > 127
    return resized if resized.any() else np.ones((1, 1), dtype=bool)


def _largest(mask: np.ndarray) -> np.ndarray:
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3)))
    largest = labels == (np.argmax(np.bincount(labels.ravel())[1:]) + 1)
    return largest[_bbox(largest)]


def unit_patch(mask: np.ndarray, count: int | None, zones: int) -> tuple[np.ndarray, int]:
    """The patch to place and how many copies.

    A stated count that the mask already has keeps the whole mask (one copy); another count places
    the largest component that many times. Without a count, several zones ("top and bottom") get
    one copy of the largest component each; otherwise the whole mask is placed once.
    """
    _, found = ndimage.label(mask, structure=np.ones((3, 3)))
    if count is not None:
        return (mask[_bbox(mask)], 1) if count == found else (_largest(mask), count)
    if zones > 1:
        return _largest(mask), zones
    return mask[_bbox(mask)], 1


def _orient(patch: np.ndarray, geometry: MaskGeometry, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    steps: list[str] = []
    if geometry.flips and rng.random() < 0.5:
        patch, steps = patch[:, ::-1], ["flip"]
    if geometry.quarter_turns:
        turns = int(rng.integers(0, 4))
        if turns:
            patch, steps = np.rot90(patch, turns), steps + [f"rot{90 * turns}"]
    return np.ascontiguousarray(patch), steps


def _scale(patch: np.ndarray, copies: int, ask: MaskAsk, medians: dict[str, float], shape: tuple[int, int],
           geometry: MaskGeometry, rng: np.random.Generator) -> tuple[float, dict[str, float] | None]:
    if ask.size is None or not medians:
        return float(rng.uniform(*geometry.scale_range)), None
    measure, (low, high) = SIZE_TARGETS[ask.size]
    canvas = np.zeros(shape, dtype=bool)
    canvas[:min(shape[0], patch.shape[0]), :min(shape[1], patch.shape[1])] = patch[:shape[0], :shape[1]]
    current = size_measures(canvas)[measure] * (copies if measure == "area" else 1)
    target = medians[measure] * float(rng.uniform(low, high))
    ratio = target / max(current, 1e-9)
    scale = float(np.clip(np.sqrt(ratio) if measure == "area" else ratio, *SCALE_LIMITS))
    return scale, {"measure_" + measure: target, "median": medians[measure]}


def _place_one(patch: np.ndarray, zone: Zone | None, foreground: np.ndarray, allowed: np.ndarray, occupied: np.ndarray,
               uv: tuple[np.ndarray, np.ndarray], frame: ObjectFrame, rng: np.random.Generator
               ) -> tuple[np.ndarray, tuple[int, int], bool]:
    """Place ``patch`` with its centroid on a foreground pixel of ``zone``, apart from ``occupied``."""
    height, width = foreground.shape
    near = ndimage.binary_dilation(occupied, iterations=SEPARATION_PX) if occupied.any() else occupied
    in_zone = zone.contains(*uv) if zone is not None else np.ones_like(foreground)
    candidates = np.argwhere(foreground & in_zone & ~near)
    if not len(candidates):
        candidates = np.argwhere(in_zone & ~near)
    if not len(candidates):
        candidates = np.argwhere(foreground)
    centroid = np.argwhere(patch).mean(axis=0)
    best: tuple[tuple, np.ndarray, tuple[int, int], bool] | None = None
    for _ in range(TRIES):
        cy, cx = candidates[rng.integers(len(candidates))]
        top = int(np.clip(round(cy - centroid[0]), 0, height - patch.shape[0]))
        left = int(np.clip(round(cx - centroid[1]), 0, width - patch.shape[1]))
        placed = np.zeros((height, width), dtype=bool)
        placed[top:top + patch.shape[0], left:left + patch.shape[1]] = patch
        clipped = placed & allowed
        if not clipped.any():
            clipped = placed
        rows, cols = np.nonzero(clipped)
        u, v = frame.uv(np.array(rows.mean()), np.array(cols.mean()))
        landed = bool(zone.contains(u, v)) if zone is not None else True
        apart = not (clipped & near).any()
        on_foreground = float(clipped.sum() / max(1, placed.sum()))
        score = (apart, landed, on_foreground >= MIN_ON_FOREGROUND, on_foreground)
        if best is None or score > best[0]:
            best = (score, clipped, (top, left), landed)
        if apart and landed and on_foreground >= MIN_ON_FOREGROUND:
            break
    assert best is not None
    return best[1], best[2], best[3]


def plan_mask(mask: np.ndarray, foreground: np.ndarray, rng: np.random.Generator, ask: MaskAsk,
              medians: dict[str, float], geometry: MaskGeometry) -> tuple[np.ndarray, str, MaskPlanned]:
    """The planned mask for a training ``mask`` under ``ask``; the steps (``flip rot90 scale1.20 at10,20 ...``,
    one ``at`` per placed copy, readable by Crop&Paste and AXF) and what was planned."""
    if not mask.any():
        raise ValueError("cannot plan from an empty mask")
    shape = mask.shape
    zones = zones_for(ask) if ask.places else []
    patch, copies = unit_patch(np.asarray(mask, dtype=bool), ask.count, len(zones))
    patch, steps = _orient(patch, geometry, rng)
    scale, size = _scale(patch, copies, ask, medians, shape, geometry, rng)
    limit = (max(1, int(shape[0] * 0.9)), max(1, int(shape[1] * 0.9))) if ask.size else shape
    patch = _resize(patch, scale, limit)
    steps.append(f"scale{scale:.2f}")
    frame = ObjectFrame.of(foreground)
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    uv = frame.uv(rows.astype(np.float64), cols.astype(np.float64))
    allowed = ndimage.binary_dilation(foreground, iterations=3)
    planned = np.zeros(shape, dtype=bool)
    landed: list[bool] = []
    for index in range(copies):
        zone = zones[index % len(zones)] if zones else None
        piece, (top, left), ok = _place_one(patch, zone, foreground, allowed, planned, uv, frame, rng)
        planned |= piece
        landed.append(ok)
        steps.append(f"at{top},{left}")
    if size is not None and ask.size is not None:
        size = {**size, "planned": size_measures(planned)[SIZE_TARGETS[ask.size][0]]}
    record = MaskPlanned(mode="caption" if not ask.empty else "free", components=copies,
                         zones=["+".join(zones[i % len(zones)].words) if zones else "anywhere" for i in range(copies)],
                         in_zone=landed if zones else [], scale=round(scale, 4), size=size)
    return planned, " ".join(steps), record


#: The checks' regions (``benchmark.metrics.attribute_checks.POSITION_RULES``) as boxes, to report on
#: masks the planner did not place (aligned and user masks): wider than the zones it aims at.
_INF = float("inf")
CHECK_REGIONS: dict[str, tuple[Box, ...]] = {
    "top": ((-_INF, _INF, -_INF, -1e-9),), "bottom": ((-_INF, _INF, 1e-9, _INF),),
    "left": ((-_INF, -1e-9, -_INF, _INF),), "right": ((1e-9, _INF, -_INF, _INF),),
    "center": ((-1 / 3, 1 / 3, -1 / 3, 1 / 3),),
    "edge": ((-_INF, _INF, -_INF, -2 / 3), (-_INF, _INF, 2 / 3, _INF), (-_INF, -2 / 3, -_INF, _INF), (2 / 3, _INF, -_INF, _INF)),
    "corner": ((-_INF, -0.5, -_INF, -0.5), (0.5, _INF, -_INF, -0.5), (-_INF, -0.5, 0.5, _INF), (0.5, _INF, 0.5, _INF)),
}


def zone_report(mask: np.ndarray, foreground: np.ndarray, ask: MaskAsk) -> tuple[list[str], list[bool]]:
    """For a mask the planner did not place: each place word of ``ask`` and whether some component's
    centroid lies in the checks' region of that word (``CHECK_REGIONS``)."""
    if not ask.places or not mask.any():
        return [], []
    frame = ObjectFrame.of(foreground)
    centroids = [r.centroid for r in regionprops(label(mask, connectivity=2))]
    uvs = [frame.uv(np.array(r), np.array(c)) for r, c in centroids]
    return list(ask.places), [any(bool(_in_box(u, v, b)) for u, v in uvs for b in CHECK_REGIONS[w]) for w in ask.places]
