""""Missing" captions: which part a caption says is missing, where that part lies in a normal image,
and whether a generated image has it removed.

A caption such as "Orange juice bottle with missing top and bottom labels" asks for content to be
*taken away*: the labels' pixels should look like the bottle and juice behind them, the way the
training anomalies with that caption look there. Three measurements, all from the training split:

* :func:`missing_part` reads the named part: the words after "missing" ("top and bottom labels",
  "bottom label", "fruit icon"), or, when "missing" ends the clause ("a washer is missing"), the
  noun phrase before "is/are missing". Training anomalies whose captions name the same part are
  that part's references.
* :func:`part_region`: where the part lies in *this* normal image. Each reference's mask marks where
  the part was in its own image; the reference image is aligned with the normal one (phase
  correlation, :func:`synthesis.geometry.alignment_shift`) and its mask moved with it; the region is
  the pixels that at least half of the moved masks cover.
* :func:`removal_score`: inside the region (eroded by ``EDGE_PX``, so a pixel or two of alignment
  error does not count), the mean CIEDE76 colour distance of the generated image to the normal
  image (``d_normal``: the part still there) and to the nearest of the references aligned with the
  normal image (``d_removed``: the part's removed look), both after a Gaussian blur of
  ``BLUR_SIGMA`` pixels (printed text and a label's edge would otherwise dominate). The score
  ``d_removed / (d_removed + d_normal)`` is below ``REMOVED_BELOW`` when the region looks more like
  the training anomalies without the part than like the normal image with it.
  ``scripts/missing_content_check.py --calibrate`` checks the threshold on the training split
  (anomalies without the part against normal images with it).
* :func:`part_pixels` finds the whole part in a normal image from a mask that covers most of it: the
  pixels of a band around the mask that differ from an aligned anomaly without the part and touch
  the mask. The plan grows the masks of "missing" captions with it (plan 3); :func:`residue` is the
  share of those pixels a generated image left as the normal image has them. On juice_bottle's
  training split the residue of anomalies (against the nearest other normal image) is at most 0.19
  and that of normal images at least 0.53, hence ``RESIDUE_MAX``; it counts some glass-edge pixels
  where two bottles differ, so it is a comparison between sets more than an absolute figure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.color import rgb2lab

from synthesis.caption_choice import shifted
from synthesis.geometry import alignment_shift, shift_mask

#: Version of the rules below; bump when they change.
MISSING_RULES_VERSION = 1
EDGE_PX = 2  # the region is eroded by this much before comparing colours
BLUR_SIGMA = 2.0  # Gaussian blur (pixels at the working size) before the colour distance
REMOVED_BELOW = 0.5  # score threshold: nearer the removed look than the normal image (checked by --calibrate)
PART_DIFF = 12.0  # CIEDE76 between the normal image and the removed look that marks the part's pixels
BAND_SHARE = 0.04  # how far around a mask (share of the image side) the part's pixels are looked for
RESIDUE_MAX = 0.35  # at most this share of the part left: removed (juice_bottle training: anomalies <= 0.19, normals >= 0.53)

_WORD = re.compile(r"[a-z][a-z-]*")
_LEADING = {"the", "a", "an", "one", "its", "their", "with", "and", "but", "both"}
_CLAUSE_END = re.compile(r"[.,;:!?]")


def missing_part(caption: str) -> str | None:
    """The part a caption says is missing, as lower-case words; None when it does not say "missing"."""
    text = caption.lower()
    match = re.search(r"\bmissing\b", text)
    if match is None:
        return None
    after = _CLAUSE_END.split(text[match.end():], maxsplit=1)[0]
    words = _WORD.findall(after)
    if not words:  # "... a washer is missing": the subject of the clause
        before = _CLAUSE_END.split(text[:match.start()])[-1]
        words = _WORD.findall(before)
        while words and words[-1] in {"is", "are", "be", "been", "was", "were"}:
            words.pop()
        words = words[-3:]
    while words and words[0] in _LEADING:
        words.pop(0)
    return " ".join(words) or None


def look(image: np.ndarray) -> np.ndarray:
    """CIELAB of the image blurred by ``BLUR_SIGMA`` (the colours compared by :func:`removal_score`)."""
    blurred = ndimage.gaussian_filter(np.asarray(image, dtype=np.float32), sigma=(BLUR_SIGMA, BLUR_SIGMA, 0))
    return rgb2lab(np.clip(blurred, 0, 255) / 255.0).astype(np.float32)


@dataclass(frozen=True)
class Reference:
    """A training anomaly without the part: its image and the mask of where the part was."""

    key: str
    image: np.ndarray
    mask: np.ndarray


@dataclass(frozen=True)
class Aligned:
    """A reference moved onto a normal image."""

    key: str
    image: np.ndarray
    look: np.ndarray
    mask: np.ndarray
    shift: tuple[int, int]


def align(references: Sequence[Reference], normal: np.ndarray) -> list[Aligned]:
    """Every reference (with a non-empty mask) aligned with ``normal``."""
    out = []
    for ref in references:
        if not ref.mask.any():
            continue
        shift = alignment_shift(ref.image, normal)
        mask, shift = shift_mask(ref.mask, shift)
        image = shifted(np.asarray(ref.image), shift)
        out.append(Aligned(ref.key, image, look(image), mask, shift))
    return out


def part_region(aligned: Sequence[Aligned]) -> np.ndarray:
    """Pixels that at least half of the aligned references' masks cover (empty if there are none)."""
    if not aligned:
        raise ValueError("no references to find the part's region with")
    votes = np.sum([a.mask for a in aligned], axis=0)
    return votes * 2 >= len(aligned)


@dataclass(frozen=True)
class Removal:
    score: float  # d_removed / (d_removed + d_normal): below REMOVED_BELOW means removed
    d_normal: float
    d_removed: float
    nearest: str  # key of the nearest reference

    @property
    def removed(self) -> bool:
        return self.score < REMOVED_BELOW


def removal_score(generated: np.ndarray, normal_look: np.ndarray, aligned: Sequence[Aligned],
                  region: np.ndarray) -> Removal:
    """How far the generated image is, inside ``region``, from the normal image and from the removed look."""
    if not aligned:
        raise ValueError("no references of the removed look")
    inner = ndimage.binary_erosion(region, iterations=EDGE_PX)
    inner = inner if inner.any() else region
    if not inner.any():
        raise ValueError("the part's region is empty")
    lab = look(generated)

    def distance(other: np.ndarray) -> float:
        return float(np.linalg.norm(lab[inner] - other[inner], axis=-1).mean())

    d_normal = distance(normal_look)
    d_refs = [(distance(a.look), a.key) for a in aligned]
    d_removed, nearest = min(d_refs)
    score = d_removed / max(d_removed + d_normal, 1e-9)
    return Removal(round(score, 4), round(d_normal, 3), round(d_removed, 3), nearest)


def part_pixels(mask: np.ndarray, normal: np.ndarray, removed: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    """The part's pixels in the normal image: ``mask`` plus the pixels of a band around it (on the eroded
    foreground) where the ``normal`` image differs from the ``removed`` look (an anomaly without the part,
    aligned with it) by more than ``PART_DIFF`` (CIEDE76, unblurred: a blur would smear the part into
    the band), kept where they touch ``mask``. A label stuck a few pixels lower than the training
    anomaly's mask says leaves its edge in the band; this finds that edge."""
    side = max(mask.shape)
    band = ndimage.binary_dilation(mask, iterations=max(1, round(BAND_SHARE * side))) & ~mask
    band &= ndimage.binary_erosion(foreground, iterations=EDGE_PX + 1)
    differs = np.linalg.norm(rgb2lab(np.asarray(normal)) - rgb2lab(np.asarray(removed)), axis=-1) > PART_DIFF
    grown = mask | (band & differs)
    labels, _ = ndimage.label(grown, structure=np.ones((3, 3)))
    touching = np.unique(labels[mask])
    return np.isin(labels, touching[touching > 0])


def nearest_reference(normal_look: np.ndarray, aligned: Sequence[Aligned], foreground: np.ndarray,
                      region: np.ndarray) -> Aligned:
    """The aligned reference most like the normal image away from the part (same variant, fill, pose)."""
    away = foreground & ~ndimage.binary_dilation(region, iterations=max(1, round(BAND_SHARE * max(region.shape))))
    away = away if away.any() else ~region
    return min(aligned, key=lambda a: float(np.linalg.norm(normal_look[away] - a.look[away], axis=-1).mean()))


def residue(generated: np.ndarray, normal_look: np.ndarray, removed_look: np.ndarray, part: np.ndarray) -> float:
    """Share of the part's pixels (where the normal image differs from the removed look by more than
    ``PART_DIFF``) that the generated image left nearer the normal image than the removed look."""
    differs = part & (np.linalg.norm(normal_look - removed_look, axis=-1) > PART_DIFF)
    if not differs.any():
        return 0.0
    lab = look(generated)
    left = np.linalg.norm(lab - normal_look, axis=-1) < np.linalg.norm(lab - removed_look, axis=-1)
    return float((left & differs).sum() / differs.sum())


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0
