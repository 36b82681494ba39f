"""Captions that agree with the normal image they are used on.

A training caption describes its own anomaly's image: "Orange juice bottle with missing top and
bottom labels" belongs to an orange juice bottle. Put on a banana juice bottle, it contradicts the
image it is generated on. So the training anomaly that lends a sample its caption (and mask) is
chosen by what the normal image shows: the anomalies of the defect type are ranked by how much
their image differs from the normal one *outside* the defect (mean CIEDE76 over the normal's
foreground minus the dilated defect mask, after aligning the anomaly's image with the normal one
when the category's geometry is aligned), and the sample takes one of the ``k = ceil(sqrt(n))``
nearest, in turn by its index (a k-nearest-neighbour choice: neighbours rather than the single
nearest keep the captions varied).

On LOCO juice_bottle at 128 px, the ten nearest training anomalies of every normal image checked
named the fruit the image shows (tests/test_caption_plan.py checks the rule on hand-made images;
``scripts/caption_swap_check.py`` prints the share on real data). The choice (rank, distance, k, n)
is recorded with every sample.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy import ndimage
from skimage.color import rgb2lab

#: Version of the rule above; bump when it changes.
CHOICE_RULE_VERSION = 1
MASK_MARGIN_PX = 3  # the defect mask is dilated by this much before comparing what lies outside it


class CaptionChoice(BaseModel):
    """Which training anomaly gave a sample its caption, and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rule: str = Field(f"knn-lab-v{CHOICE_RULE_VERSION}", description="The choice rule and its version.")
    source: str = Field(description="<defect>/<image_id> of the chosen training anomaly.")
    rank: int = Field(description="0: the nearest of the defect type's anomalies to the normal image.")
    neighbours: int = Field(description="k: the sample takes the (index mod k)-th nearest.")
    candidates: int
    distance: float = Field(description="Mean CIEDE76 between the two images outside the (dilated) defect mask.")


def neighbour_count(candidates: int) -> int:
    return max(1, math.ceil(math.sqrt(candidates)))


def outside_distance(normal_lab: np.ndarray, anomaly_lab: np.ndarray, anomaly_mask: np.ndarray,
                     foreground: np.ndarray) -> float:
    """Mean CIEDE76 of the pixels of ``foreground`` away from ``anomaly_mask`` (images already aligned)."""
    keep = foreground & ~ndimage.binary_dilation(anomaly_mask, iterations=MASK_MARGIN_PX)
    if not keep.any():
        keep = ~anomaly_mask if (~anomaly_mask).any() else np.ones_like(anomaly_mask)
    return float(np.linalg.norm(normal_lab[keep] - anomaly_lab[keep], axis=-1).mean())


def lab(image: np.ndarray) -> np.ndarray:
    return rgb2lab(np.asarray(image)).astype(np.float32)


def shifted(array: np.ndarray, shift: tuple[int, int]) -> np.ndarray:
    """``array`` moved by ``shift`` (rows, columns), edges repeated (the background there)."""
    if shift == (0, 0):
        return array
    dy, dx = shift
    height, width = array.shape[:2]
    rows = np.clip(np.arange(height) - dy, 0, height - 1)
    cols = np.clip(np.arange(width) - dx, 0, width - 1)
    return array[rows][:, cols]


def choose(distances: list[float], index: int) -> tuple[int, int, int]:
    """(chosen candidate, its rank, k) for sample ``index`` among candidates at ``distances``."""
    order = sorted(range(len(distances)), key=lambda i: (distances[i], i))
    k = neighbour_count(len(distances))
    rank = index % k
    return order[rank], rank, k
