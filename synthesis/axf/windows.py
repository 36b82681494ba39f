"""Windows around defects, soft blending masks and reference pastes (shared by training and sampling).

The offline model works on a square window around the mask rather than on the whole image: a
window of ``side`` pixels (at least the model's ``window`` size, larger for large masks) is cut
from the image and resized to the model's resolution, generated, resized back and composited
inside the blending mask. One window per defect: no tiling, no seams between windows.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage


@dataclass(frozen=True)
class Window:
    y0: int
    x0: int
    side: int

    def crop(self, array: np.ndarray) -> np.ndarray:
        return array[self.y0:self.y0 + self.side, self.x0:self.x0 + self.side]


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of a non-empty mask, bottom/right exclusive."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("empty mask")
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def window_for(mask: np.ndarray, window: int, margin: float, scale: float = 1.0,
               shift: tuple[float, float] = (0.0, 0.0)) -> Window:
    """The square window around ``mask``: the bounding box plus ``margin`` of its size on each side,
    at least ``window`` pixels, times ``scale``, moved by ``shift`` (fractions of the side) and
    clamped inside the image."""
    height, width = mask.shape
    top, left, bottom, right = mask_bbox(mask)
    extent = max(bottom - top, right - left)
    side = max(window, math.ceil(extent * (1 + 2 * margin)))
    side = int(round(side * scale))
    side = max(min(window, height, width), min(side, height, width))
    cy = (top + bottom) / 2 + shift[0] * side
    cx = (left + right) / 2 + shift[1] * side
    y0 = int(np.clip(round(cy - side / 2), 0, height - side))
    x0 = int(np.clip(round(cx - side / 2), 0, width - side))
    return Window(y0, x0, side)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 (or HxW) -> [C, H, W] float in [0, 1]."""
    array = np.asarray(image, dtype=np.float32)
    if array.ndim == 2:
        array = array[None]
    else:
        array = array.transpose(2, 0, 1)
    if image.dtype == np.uint8:
        array = array / 255.0
    return torch.from_numpy(np.ascontiguousarray(array))


def resize(batch: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    """Resize ``[B, C, h, w]`` to ``size`` x ``size`` (antialiased when shrinking; area for masks)."""
    if batch.shape[-1] == size and batch.shape[-2] == size:
        return batch
    if mode == "area":
        if batch.shape[-1] >= size:
            return F.interpolate(batch, size=(size, size), mode="area")
        return F.interpolate(batch, size=(size, size), mode="bilinear", align_corners=False)
    shrinking = batch.shape[-1] > size
    return F.interpolate(batch, size=(size, size), mode=mode, align_corners=False, antialias=shrinking)


def blend_mask(mask: np.ndarray, width: float, inside: bool = False) -> np.ndarray:
    """Soft blending weights: exactly 1 inside ``mask``, a smooth ramp over ``width`` pixels
    outside it, exactly 0 beyond. ``width=0`` gives the hard mask.

    ``inside=True`` puts the ramp inside the mask instead (0 outside, rising over ``width`` pixels
    from the mask's border, shortened to half the mask's largest inner distance so a thin defect
    keeps its full weight): nothing outside the mask changes, so the mask itself is the label."""
    mask = np.asarray(mask, dtype=bool)
    if width <= 0:
        return mask.astype(np.float32)
    if inside:
        distance = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
        ramp = min(float(width), float(distance.max()) / 2)
        if ramp <= 1:
            return mask.astype(np.float32)
        return np.clip(distance / ramp, 0.0, 1.0).astype(np.float32)
    distance = ndimage.distance_transform_edt(~mask)
    ramp = np.clip(1.0 - distance / (width + 1.0), 0.0, 1.0)
    ramp = ramp * ramp * (3 - 2 * ramp)  # smoothstep
    return ramp.astype(np.float32)


_STEP = re.compile(r"^(flip|rot(90|180|270))$")


def parse_mask_origin(origin: str) -> tuple[str, str, list[str]] | None:
    """``"train:<defect>/<image_id> flip rot90 scale0.8"`` -> (defect, image_id, steps); else None."""
    if not origin.startswith("train:"):
        return None
    head, *steps = origin[len("train:"):].split()
    defect, sep, image_id = head.rpartition("/")
    if not sep:
        return None
    return defect, image_id, [s for s in steps if _STEP.match(s)]


def _transform(array: np.ndarray, steps: list[str]) -> np.ndarray:
    """Replay the planner's flip/rotations (see synthesis.masks.augment_mask) on a patch."""
    for step in steps:
        if step == "flip":
            array = array[:, ::-1]
        elif step.startswith("rot"):
            array = np.rot90(array, int(step[3:]) // 90)
    return np.ascontiguousarray(array)


def paste_reference(normal: np.ndarray, target: np.ndarray, ref_image: np.ndarray, ref_mask: np.ndarray,
                    steps: list[str], region: np.ndarray) -> np.ndarray:
    """A real training defect warped onto ``target``'s bounding box of ``normal`` (SDEdit start).

    The reference's bounding-box crop is flipped/rotated like the planned mask, resized to the
    target's bounding box and copied where ``region`` (the blending support) is set; the rest of
    the image is the normal one. Returns HxWx3 float32 in [0, 1].
    """
    out = normal.astype(np.float32) / 255.0
    top, left, bottom, right = mask_bbox(target)
    rt, rl, rb, rr = mask_bbox(ref_mask)
    pad = max(2, (rb - rt) // 8)
    rt, rl = max(0, rt - pad), max(0, rl - pad)
    rb, rr = min(ref_mask.shape[0], rb + pad), min(ref_mask.shape[1], rr + pad)
    tpad_y = round((bottom - top) * pad / max(1, rb - rt - 2 * pad))
    tpad_x = round((right - left) * pad / max(1, rr - rl - 2 * pad))
    patch = _transform(ref_image[rt:rb, rl:rr].astype(np.float32) / 255.0, steps)
    y0, x0 = top - tpad_y, left - tpad_x
    y1, x1 = bottom + tpad_y, right + tpad_x
    tensor = torch.from_numpy(patch.transpose(2, 0, 1).copy())[None]
    patch = F.interpolate(tensor, size=(y1 - y0, x1 - x0), mode="bilinear", align_corners=False,
                          antialias=True)[0].numpy().transpose(1, 2, 0)
    # clip the pasted box to the image
    cy0, cx0 = max(0, y0), max(0, x0)
    cy1, cx1 = min(out.shape[0], y1), min(out.shape[1], x1)
    patch = patch[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
    where = region[cy0:cy1, cx0:cx1, None]
    out[cy0:cy1, cx0:cx1] = np.where(where, patch, out[cy0:cy1, cx0:cx1])
    return np.clip(out, 0.0, 1.0)
