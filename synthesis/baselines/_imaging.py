"""Small image helpers shared by the baselines (numpy/PIL only, randomness from the caller's rng).

Everything takes a ``numpy.random.Generator`` so a sample's pixels depend only on its seed.
"""

from __future__ import annotations

import numpy as np
from matplotlib.colors import hsv_to_rgb, rgb_to_hsv
from PIL import Image
from scipy import ndimage

from synthesis.masks import estimate_foreground


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def resize(image: np.ndarray, height: int, width: int, resample: int = Image.BICUBIC) -> np.ndarray:
    """Resize an HxWx3 uint8 image (or HxW bool mask with NEAREST)."""
    if image.dtype == bool:
        resized = Image.fromarray(image.astype(np.uint8) * 255).resize((width, height), Image.NEAREST)
        return np.asarray(resized) > 127
    return np.asarray(Image.fromarray(image).resize((width, height), resample))


def bbox(mask: np.ndarray) -> tuple[slice, slice]:
    """Row and column slices of the smallest box holding every True pixel of a non-empty mask."""
    rows, cols = np.nonzero(mask)
    return slice(int(rows.min()), int(rows.max()) + 1), slice(int(cols.min()), int(cols.max()) + 1)


def foreground(image: np.ndarray, enabled: bool = True) -> np.ndarray:
    """The object's foreground (all True for textures, or when ``enabled`` is False)."""
    if not enabled:
        return np.ones(image.shape[:2], dtype=bool)
    return estimate_foreground(image)


def jitter_colour(pixels: np.ndarray, rng: np.random.Generator, brightness: float, contrast: float,
                  saturation: float, hue: float) -> np.ndarray:
    """torchvision-style ColorJitter on float RGB pixels in [0, 255] (any leading shape, last axis 3).

    Factors are drawn uniformly from [1 - x, 1 + x] (hue: a shift in [-hue, hue] turns), applied
    in a fixed order so a seed gives one result.
    """
    out = pixels.astype(np.float32)
    grey_weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    if brightness > 0:
        out = out * rng.uniform(1 - brightness, 1 + brightness)
    if contrast > 0:
        mean = float((np.clip(out, 0, 255) @ grey_weights).mean()) if out.size else 0.0
        out = (out - mean) * rng.uniform(1 - contrast, 1 + contrast) + mean
    if saturation > 0:
        grey = (np.clip(out, 0, 255) @ grey_weights)[..., None]
        out = (out - grey) * rng.uniform(1 - saturation, 1 + saturation) + grey
    if hue > 0 and out.size:
        hsv = rgb_to_hsv(np.clip(out, 0, 255) / 255.0)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-hue, hue)) % 1.0
        out = hsv_to_rgb(hsv) * 255.0
    return np.clip(out, 0, 255)


def ring_mean(image: np.ndarray, mask: np.ndarray, width: int) -> np.ndarray:
    """Mean colour of the band of ``width`` pixels just outside ``mask`` (whole image if empty)."""
    ring = ndimage.binary_dilation(mask, iterations=max(1, width)) & ~mask
    pixels = image[ring] if ring.any() else image.reshape(-1, image.shape[-1])
    return pixels.astype(np.float64).mean(axis=0)


def feather_alpha(mask: np.ndarray, feather_px: float) -> np.ndarray:
    """Opacity inside ``mask``: ramps from the edge to 1 over ``feather_px`` pixels, 0 outside.

    The ramp is shortened for thin regions (at most half their largest inner distance) so a
    crack two pixels wide keeps its full contrast instead of fading out.
    """
    if not mask.any():
        return np.zeros(mask.shape, dtype=np.float32)
    distance = ndimage.distance_transform_edt(mask)
    ramp = min(float(feather_px), float(distance.max()) / 2)
    if ramp <= 1:
        return mask.astype(np.float32)
    return np.clip(distance / ramp, 0, 1).astype(np.float32)
