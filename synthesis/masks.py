"""Foreground estimates and mask augmentation for planning where defects go.

Masks at generation time come from the training split, augmented (flip, rotation, scale) and
placed on the object's foreground so a defect never floats on the background. The foreground
is estimated per normal image: pixels whose colour differs from the border's median colour by
more than an Otsu threshold. Textures (foreground covering almost everything or nothing) count
as all foreground.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.filters import threshold_otsu

TEXTURE_LIMITS = (0.05, 0.85)  # foreground fractions outside this range mean "texture"


def estimate_foreground(image: np.ndarray) -> np.ndarray:
    """Boolean HxW foreground of an object image (all True for textures)."""
    pixels = image.astype(np.float32)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    distance = np.linalg.norm(pixels - np.median(border, axis=0), axis=-1)
    smooth = ndimage.uniform_filter(distance, size=5)
    foreground = smooth > threshold_otsu(smooth, nbins=128)  # 128 bins: the thresholds of the earlier hand-written version
    foreground = ndimage.binary_opening(foreground, iterations=2)
    foreground = ndimage.binary_fill_holes(foreground)
    fraction = foreground.mean()
    if not TEXTURE_LIMITS[0] <= fraction <= TEXTURE_LIMITS[1]:
        return np.ones(foreground.shape, dtype=bool)
    return foreground


def _bbox(mask: np.ndarray) -> tuple[slice, slice]:
    rows, cols = np.nonzero(mask)
    return slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1)


def augment_mask(mask: np.ndarray, foreground: np.ndarray, rng: np.random.Generator,
                 scale_range: tuple[float, float] = (0.75, 1.25), tries: int = 20,
                 min_on_foreground: float = 0.7, flips: bool = True, quarter_turns: bool = True
                 ) -> tuple[np.ndarray, str]:
    """Flip, rotate, scale and place ``mask`` on the foreground; return the mask and what was done.

    ``flips`` / ``quarter_turns`` False leave those steps out (a category's geometry,
    :mod:`synthesis.geometry`); with both True the random draws are those of version 1.

    The placed mask is clipped to the image and to the foreground (dilated by a few pixels so
    edge defects such as a broken rim survive). Placement is retried until at least
    ``min_on_foreground`` of it lies on the foreground; otherwise the best try is kept.
    """
    if not mask.any():
        raise ValueError("cannot augment an empty mask")
    height, width = mask.shape
    patch = mask[_bbox(mask)]
    steps: list[str] = []
    if flips and rng.random() < 0.5:
        patch, steps = patch[:, ::-1], steps + ["flip"]
    rotations = int(rng.integers(0, 4)) if quarter_turns else 0
    if rotations:
        patch, steps = np.rot90(patch, rotations), steps + [f"rot{90 * rotations}"]
    scale = float(rng.uniform(*scale_range))
    new_h = max(1, min(height, round(patch.shape[0] * scale)))
    new_w = max(1, min(width, round(patch.shape[1] * scale)))
    patch = np.asarray(Image.fromarray(patch.astype(np.uint8) * 255).resize((new_w, new_h), Image.NEAREST)) > 127
    if not patch.any():
        patch = np.ones((1, 1), dtype=bool)
    steps.append(f"scale{scale:.2f}")

    allowed = ndimage.binary_dilation(foreground, iterations=3)
    candidates = np.argwhere(foreground)
    best: tuple[float, np.ndarray, tuple[int, int]] | None = None
    for _ in range(tries):
        cy, cx = candidates[rng.integers(len(candidates))]
        top = int(np.clip(cy - patch.shape[0] // 2, 0, height - patch.shape[0]))
        left = int(np.clip(cx - patch.shape[1] // 2, 0, width - patch.shape[1]))
        placed = np.zeros_like(mask, dtype=bool)
        placed[top:top + patch.shape[0], left:left + patch.shape[1]] = patch
        clipped = placed & allowed
        score = clipped.sum() / max(1, placed.sum())
        if best is None or score > best[0]:
            best = (score, clipped, (top, left))
        if score >= min_on_foreground:
            break
    assert best is not None
    _, placed, (top, left) = best
    if not placed.any():  # foreground too thin for this shape: keep the unclipped placement
        placed = np.zeros_like(mask, dtype=bool)
        placed[top:top + patch.shape[0], left:left + patch.shape[1]] = patch
    steps.append(f"at{top},{left}")
    return placed, " ".join(steps)
