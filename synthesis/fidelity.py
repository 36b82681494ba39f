"""Label fidelity: does a generated image visibly differ from its normal source where its mask says, and only there?

A detector trained on synthesized anomalies learns whatever the mask labels. When a synthesizer
smooths a thin crack away but keeps its mask, the detector is taught that unchanged surface is
anomalous; when it changes pixels outside the mask, that change is taught as normal. Both are
measured here against the normal image the sample was made from:

* a pixel **visibly differs** when the largest per-channel difference between the generated
  image and its source exceeds ``max(MIN_LEVELS, K * v)``, where ``v`` is the source's local
  variation at that pixel: the robust standard deviation of its luminance in a
  ``NEIGHBOURHOOD`` x ``NEIGHBOURHOOD`` window (1.4826 x the median absolute deviation from the
  window's median). A re-rendered surface with the same texture statistics differs from its source
  by about ``sqrt(2) v`` per pixel, so ``K = 3`` keeps such pixels below the threshold in about 97 %
  of cases, while a defect that changes the surface by several texture amplitudes counts. The
  median makes ``v`` robust at straight object borders (fewer than half of the window lies across
  the border), so a broken edge is not hidden by the border's own contrast. ``MIN_LEVELS`` (6 grey
  levels of 255) keeps quantisation, compression noise and perfectly flat surfaces from counting;
* **visible share**: the fraction of the mask's pixels that visibly differ;
* **spill share**: the fraction of all visibly differing pixels that lie outside the mask.

The same rule scores any synthesizer and real test anomalies (against an aligned normal image,
``scripts/label_fidelity_reference.py``); AXF redoes samples whose visible share falls below
``VISIBLE_FLOOR`` (see :mod:`synthesis.axf.synthesizer`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

K = 3.0
MIN_LEVELS = 6.0
NEIGHBOURHOOD = 9
#: Lowest visible share a synthesized sample may have (AXF redoes or fails samples below it): "almost nothing
#: visible in the mask". Pinned on training-split references (scripts/label_fidelity_reference.py, 128 px):
#: below every real training-third anomaly against its aligned normal image on bottle (lowest 0.23) and
#: against its exact defect-free scene on fibreboard (lowest 0.4), where Crop&Paste puts 6 % of bottle's and
#: none of fibreboard's pastes.
VISIBLE_FLOOR = 0.15
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601

SETTINGS = {
    "visible": f"max channel |image - source| > max({MIN_LEVELS:g}, {K:g} * v), v = 1.4826 * local MAD of the source's "
               f"BT.601 luminance in a {NEIGHBOURHOOD}x{NEIGHBOURHOOD} window",
    "visible_share": "visibly differing pixels inside the mask / mask pixels",
    "spill_share": "visibly differing pixels outside the mask / all visibly differing pixels (0 when none differ)",
    "floor": VISIBLE_FLOOR,
}


@dataclass(frozen=True)
class LabelFidelity:
    visible_share: float  # of the mask, in [0, 1]; 0 for an empty mask
    spill_share: float  # of the changed pixels, in [0, 1]
    mask_pixels: int
    changed_pixels: int

    @property
    def below_floor(self) -> bool:
        return self.visible_share < VISIBLE_FLOOR


def luminance(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, dtype=np.float32)
    return image @ LUMA if image.ndim == 3 else image


def local_variation(source: np.ndarray, size: int = NEIGHBOURHOOD) -> np.ndarray:
    """Robust local standard deviation of the source's luminance (HxW float32, grey levels)."""
    lum = luminance(source)
    median = ndimage.median_filter(lum, size=size, mode="reflect")
    return 1.4826 * ndimage.median_filter(np.abs(lum - median), size=size, mode="reflect")


def visible_change(image: np.ndarray, source: np.ndarray, variation: np.ndarray | None = None) -> np.ndarray:
    """HxW bool: where ``image`` visibly differs from ``source`` (see the module docstring)."""
    image, source = np.asarray(image), np.asarray(source)
    if image.shape != source.shape:
        raise ValueError(f"image {image.shape} and source {source.shape} differ in shape")
    difference = np.abs(image.astype(np.float32) - source.astype(np.float32))
    if difference.ndim == 3:
        difference = difference.max(axis=-1)
    if variation is not None:
        return difference > np.maximum(MIN_LEVELS, K * variation)
    # The threshold only matters where the difference exceeds MIN_LEVELS (elsewhere nothing is visible whatever
    # the variation), so the two median filters run on that region's bounding box plus their reach: the same
    # values as on the whole image (a crop edge inside the image is never read), at a fraction of the cost
    # for a small defect (the median filters were a sixth of AXF's generation time).
    changed = np.zeros(difference.shape, dtype=bool)
    candidates = difference > MIN_LEVELS
    if not candidates.any():
        return changed
    rows, cols = np.flatnonzero(candidates.any(axis=1)), np.flatnonzero(candidates.any(axis=0))
    reach = 2 * (NEIGHBOURHOOD // 2) + 1
    y0, y1 = max(0, rows[0] - reach), min(difference.shape[0], rows[-1] + 1 + reach)
    x0, x1 = max(0, cols[0] - reach), min(difference.shape[1], cols[-1] + 1 + reach)
    local = local_variation(source[y0:y1, x0:x1])
    changed[y0:y1, x0:x1] = difference[y0:y1, x0:x1] > np.maximum(MIN_LEVELS, K * local)
    return changed


def label_fidelity(image: np.ndarray, source: np.ndarray, mask: np.ndarray,
                   variation: np.ndarray | None = None) -> LabelFidelity:
    """Visible share inside ``mask`` and spill share outside it, for one generated (or real) image."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != np.asarray(image).shape[:2]:
        raise ValueError(f"mask {mask.shape} does not match image {np.asarray(image).shape[:2]}")
    changed = visible_change(image, source, variation)
    inside = int((changed & mask).sum())
    total = int(changed.sum())
    mask_pixels = int(mask.sum())
    return LabelFidelity(
        visible_share=inside / mask_pixels if mask_pixels else 0.0,
        spill_share=(total - inside) / total if total else 0.0,
        mask_pixels=mask_pixels, changed_pixels=total,
    )
