"""What mask augmentation may do per category: flips, quarter turns, scale, or alignment with the image.

A training mask turned by 90 degrees is still a plausible scratch on a bottle seen from above, but
not a plausible label of a juice bottle that always stands upright, and a "missing bottom label"
must stay on this bottle's bottom label. So each category declares its geometry:

* ``free`` (the default, and every category not listed): flips, quarter turns, scale 0.75-1.25 and
  placement anywhere on the object's foreground (objects seen from above, textures);
* ``upright``: objects in a fixed orientation whose position varies a little (pill, capsule,
  toothbrush, zipper): flips and scaling, no quarter turns;
* ``aligned``: objects in a fixed pose, whose defects are defined by their parts (LOCO's
  juice_bottle labels and fill level, breakfast_box and pushpins compartments; transistor, cable):
  the training mask keeps its shape and moves with its image, aligned with the normal image by
  phase correlation (:func:`alignment_shift`), so a named part stays on that part.

The table is a judgement from the categories' published descriptions, not measured; an unknown
category (a plugin's, the demo's) is ``free``, which is what every category got before.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

#: Version of the table and rules below; bump when they change.
GEOMETRY_VERSION = 1


class MaskGeometry(BaseModel):
    """What mask augmentation may do in one category."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    flips: bool = True
    quarter_turns: bool = True
    scale_range: tuple[float, float] = (0.75, 1.25)
    aligned: bool = Field(False, description="Masks move with their image aligned to the normal one (no flip, turn, scale).")


FREE = MaskGeometry(name="free")
UPRIGHT = MaskGeometry(name="upright", quarter_turns=False)
ALIGNED = MaskGeometry(name="aligned", flips=False, quarter_turns=False, scale_range=(1.0, 1.0), aligned=True)

#: Category -> geometry; unlisted categories are FREE.
GEOMETRY: dict[str, MaskGeometry] = {
    **dict.fromkeys(("juice_bottle", "breakfast_box", "pushpins", "transistor", "cable"), ALIGNED),
    **dict.fromkeys(("pill", "capsule", "toothbrush", "zipper"), UPRIGHT),
}


def geometry_of(category: str) -> MaskGeometry:
    return GEOMETRY.get(category, FREE)


def table() -> dict[str, object]:
    """The table, for the record of every generated set."""
    return {"version": GEOMETRY_VERSION, "default": FREE.name,
            "categories": {c: g.name for c, g in sorted(GEOMETRY.items())}}


def _grey(image: np.ndarray) -> np.ndarray:
    return np.asarray(image, dtype=np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def alignment_shift(moving: np.ndarray, fixed: np.ndarray, limit: float = 0.25) -> tuple[int, int]:
    """Integer (rows, columns) that move ``moving`` onto ``fixed`` (phase correlation, scikit-image).

    Shifts beyond ``limit`` of the image side are not trusted (a different view, not a displaced
    object) and give (0, 0).
    """
    from skimage.registration import phase_cross_correlation

    shift, _, _ = phase_cross_correlation(_grey(fixed), _grey(moving), normalization=None)
    dy, dx = (int(round(float(s))) for s in shift)
    side = max(fixed.shape[:2])
    return (dy, dx) if max(abs(dy), abs(dx)) <= limit * side else (0, 0)


def shift_mask(mask: np.ndarray, shift: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """``mask`` moved by ``shift``, the shift reduced so the mask's bounding box stays inside the image."""
    rows, cols = np.nonzero(mask)
    height, width = mask.shape
    dy = int(np.clip(shift[0], -rows.min(), height - 1 - rows.max()))
    dx = int(np.clip(shift[1], -cols.min(), width - 1 - cols.max()))
    moved = np.zeros_like(mask, dtype=bool)
    moved[rows + dy, cols + dx] = True
    return moved, (dy, dx)

