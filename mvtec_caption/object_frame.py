"""The object's frame: coordinates about its centre of mass, each side scaled to [-1, 1] by its extent.

One definition for the caption-attribute checks (``benchmark.metrics.attribute_checks``) and the
caption-planned masks (``synthesis.caption_masks``), so a planned "top" is the checked "top"; it
lives below both packages.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ObjectFrame:
    """Coordinates about the object's centre of mass, each side scaled to [-1, 1] by the object's extent."""

    centre: tuple[float, float]
    top: float
    bottom: float
    left: float
    right: float

    @classmethod
    def of(cls, obj: np.ndarray) -> ObjectFrame:
        rows, cols = np.nonzero(obj)
        return cls((float(rows.mean()), float(cols.mean())), float(rows.min()), float(rows.max() + 1),
                   float(cols.min()), float(cols.max() + 1))

    def uv(self, rows, cols):
        """(u, v) of pixel positions: arrays give arrays, scalars give floats."""
        cy, cx = self.centre
        rows_a, cols_a = np.asarray(rows, dtype=float), np.asarray(cols, dtype=float)
        v = np.where(rows_a < cy, (rows_a - cy) / max(cy - self.top, 1e-9), (rows_a - cy) / max(self.bottom - cy, 1e-9))
        u = np.where(cols_a < cx, (cols_a - cx) / max(cx - self.left, 1e-9), (cols_a - cx) / max(self.right - cx, 1e-9))
        if u.ndim == 0:
            return float(u), float(v)
        return u, v
