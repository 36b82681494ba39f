"""The category's colour: grey-level categories found from the training images, and outputs kept inside it.

Real anomalies never add a colour that their category does not have, so a synthesizer that adds
one (a network's colour speckles, a hue-shifted texture) teaches the detector a shortcut that
fails on the test set: "colour means anomaly". The profile is measured once per fit from every
training image (normal images and the few-shot anomalies, so a category's real coloured defects
count as its colours) and recorded in the fit report:

* **chroma** of a pixel: its largest minus its smallest channel, in grey levels;
* **grey**: at least ``1 - GREY_QUANTILE`` of the training pixels have a chroma of at most
  ``GREY_TOLERANCE`` levels (MVTec's grey categories are stored as 8-bit grey PNGs, chroma 0; the
  tolerance allows for compressed copies);
* **chroma limit**: the largest chroma of any training pixel plus ``LIMIT_MARGIN`` levels, the most
  saturated colour the category is allowed: every colour its training images show stays possible
  (Crop&Paste pastes real pixels; bottle's reach 151 levels in a few highlights), anything beyond
  is a colour the category never had.

:func:`conform` brings an output inside the profile: grey categories get the luminance in every
channel; colour categories get every pixel whose chroma exceeds both the limit and its normal
source's chroma pulled back towards its own grey value (hue kept) until it is at that bound.
Pixels outside the output mask are never touched.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

GREY_TOLERANCE = 3.0
GREY_QUANTILE = 0.999
LIMIT_MARGIN = 8.0
SAMPLE_PIXELS = 20_000  # per image, evenly strided: the profile costs milliseconds
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601


class ColourProfile(BaseModel):
    """A category's colour statistics (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    grey: bool = Field(description="Every training image is grey-level (chroma at most grey_tolerance).")
    chroma_quantile: float = Field(description="The grey_quantile quantile of the training pixels' chroma, levels.")
    chroma_max: float = Field(description="The largest chroma of any training pixel, levels.")
    chroma_limit: float = Field(description="The highest chroma an output may have (chroma_max + margin), levels.")
    mean_rgb: list[float] = Field(description="Mean colour of the training pixels.")
    images: int
    grey_tolerance: float = GREY_TOLERANCE


def chroma(image: np.ndarray) -> np.ndarray:
    """Largest minus smallest channel (HxW float32, grey levels); 0 for single-channel images."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        return np.zeros(image.shape, dtype=np.float32)
    return image.max(axis=-1) - image.min(axis=-1)


def colour_profile(images: Iterable[np.ndarray]) -> ColourProfile:
    """The profile of a category's training images (HxWx3 uint8 each)."""
    samples, largest, count = [], 0.0, 0
    for image in images:
        pixels = np.asarray(image).reshape(-1, 3)
        spread = pixels.max(axis=1).astype(np.int16) - pixels.min(axis=1)
        largest = max(largest, float(spread.max()))
        step = max(1, len(pixels) // SAMPLE_PIXELS)  # quantile and mean from evenly strided pixels
        samples.append((spread[::step], pixels[::step].astype(np.float64)))
        count += 1
    if not count:
        raise ValueError("no training images to measure the category's colours from")
    spread = np.concatenate([s for s, _ in samples])
    quantile = float(np.quantile(spread, GREY_QUANTILE))
    mean = np.concatenate([p for _, p in samples]).mean(axis=0)
    return ColourProfile(grey=quantile <= GREY_TOLERANCE, chroma_quantile=round(quantile, 3), chroma_max=largest,
                         chroma_limit=largest + LIMIT_MARGIN, mean_rgb=[round(float(v), 3) for v in mean], images=count)


def to_grey(image: np.ndarray) -> np.ndarray:
    """The luminance in all three channels (HxWx3 uint8); grey pixels stay exactly as they are."""
    lum = np.asarray(image, dtype=np.float32) @ LUMA
    grey = np.clip(np.rint(lum), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def conform(image: np.ndarray, source: np.ndarray, mask: np.ndarray, profile: ColourProfile | None) -> np.ndarray:
    """``image`` brought inside the category's colours where ``mask`` is set (a new array; unchanged if already inside)."""
    if profile is None:
        return image
    image = np.asarray(image)
    mask = np.asarray(mask, dtype=bool)
    out = image.copy()
    if profile.grey:
        out[mask] = to_grey(image[mask][None])[0]
        return out
    bound = np.maximum(profile.chroma_limit, chroma(source))
    current = chroma(image)
    over = mask & (current > bound)
    if not over.any():
        return out
    pixels = image[over].astype(np.float32)
    lum = (pixels @ LUMA)[:, None]
    scale = (bound[over] / current[over])[:, None]
    out[over] = np.clip(np.rint(lum + (pixels - lum) * scale), 0, 255).astype(np.uint8)
    return out


def added_chroma(image: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Chroma an image gained over its normal source, per pixel (HxW float32, levels, >= 0)."""
    return np.maximum(0.0, chroma(image) - chroma(source))
