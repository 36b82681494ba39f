"""CutPaste anomalies (Li et al., CVPR 2021, arXiv:2104.04015), with the pasted region as mask.

``normal``: a rectangle with area ratio ``U(area_ratio)`` of the image and aspect ratio drawn
log-uniformly from ``[aspect_ratio, 1 / aspect_ratio]`` is cut from the normal image,
colour-jittered and pasted elsewhere. ``scar``: a thin strip (width 2-16 px, length 10-25 px at
256 px, scaled with the image) rotated by ``U(-45, 45)`` degrees.

Placement (a choice the paper does not need, since it trains a classifier): CutPaste places its
own patch (it ignores the planned masks, ``uses_masks=False``). The destination is drawn on the
object's foreground (:func:`synthesis.masks.estimate_foreground`) and kept where most of the patch
lies on it; the patch is then clipped to the (slightly dilated) foreground, so defects never
float on the background. The source rectangle is also drawn where it lies mostly on the
foreground, and its background pixels are not pasted, so the patch is object material: without
this, a large patch cut near a bottle's rim pastes a white corner of backdrop onto the bottle.

The mask is exact: every destination pixel is mapped back into the source rectangle (rotation
included) and sampled there, so the mask is precisely the set of changed pixels' footprint and
a rotated strip has no fill-colour fringe. Pixels outside it are unchanged.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy import ndimage

from synthesis.baselines._imaging import foreground, jitter_colour, to_uint8
from synthesis.contract import SampleSpec, SynthesisOutput, Synthesizer

REFERENCE_SIZE = 256  # the paper's scar sizes are in pixels at this resolution


class CutPasteConfig(BaseModel):
    """Defaults are the paper's (and its reference implementation's) at 256 px."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    variant: Literal["normal", "scar"] = Field("normal", description="Rectangle patch or thin rotated scar.")
    area_ratio: tuple[float, float] = Field((0.02, 0.15), description="Normal patch area as a fraction of the image.")
    aspect_ratio: float = Field(0.3, gt=0, le=1, description="Normal patch aspect drawn log-uniformly in [a, 1/a].")
    scar_width: tuple[float, float] = Field((2.0, 16.0), description="Scar width in pixels at 256 px (scaled with size).")
    scar_length: tuple[float, float] = Field((10.0, 25.0), description="Scar length in pixels at 256 px (scaled with size).")
    scar_rotation: tuple[float, float] = Field((-45.0, 45.0), description="Scar rotation in degrees.")
    jitter: float = Field(0.1, ge=0, description="ColorJitter strength for brightness, contrast, saturation and hue.")
    on_foreground: bool = Field(True, description="Paste on the object's foreground and clip the patch to it.")
    cut_from_foreground: bool = Field(True, description="Cut the patch from the foreground too (object material).")
    min_on_foreground: float = Field(0.9, ge=0, le=1, description="Stop searching once this share of the patch is on the foreground.")
    tries: int = Field(30, ge=1, description="Destination draws when searching for a foreground placement.")


def _aligned_centre(candidate: float, length: int, limit: int) -> float:
    """Centre of an axis-aligned run of ``length`` pixels near ``candidate``, kept inside the image."""
    start = int(np.clip(round(candidate - (length - 1) / 2), 0, max(0, limit - length)))
    return start + (length - 1) / 2


def _free_centre(candidate: float, half_extent: float, limit: int) -> float:
    low, high = half_extent - 0.5, limit - 0.5 - half_extent
    return float(np.clip(candidate, low, high)) if low <= high else (limit - 1) / 2


class CutPasteSynthesizer(Synthesizer):
    """Cut a patch of the normal image, jitter its colours, paste it elsewhere on the object."""

    Config = CutPasteConfig
    version = "1"
    description = ("CutPaste: a colour-jittered patch of the normal image (rectangle, or thin rotated scar) pasted "
                   "elsewhere on the object's foreground; the mask is the pasted footprint.")
    reference = "Li et al., CutPaste, CVPR 2021, arXiv:2104.04015"
    uses_text = False
    uses_masks = False
    uses_real_anomalies = False
    keeps_outside_mask = True

    config: CutPasteConfig

    def _patch_shape(self, height: int, width: int, rng: np.random.Generator) -> tuple[int, int, float]:
        """Patch height, width (source rectangle) and rotation in degrees."""
        cfg = self.config
        if cfg.variant == "scar":
            factor = min(height, width) / REFERENCE_SIZE
            # At least 2 px a side: a rotated 2x2 square always covers a pixel centre, so the mask is never empty.
            patch_w = max(2, round(rng.uniform(*cfg.scar_width) * factor))
            patch_h = max(2, round(rng.uniform(*cfg.scar_length) * factor))
            return min(patch_h, height), min(patch_w, width), float(rng.uniform(*cfg.scar_rotation))
        area = rng.uniform(*cfg.area_ratio) * height * width
        aspect = math.exp(rng.uniform(math.log(cfg.aspect_ratio), -math.log(cfg.aspect_ratio)))
        patch_w = int(np.clip(round(math.sqrt(area * aspect)), 1, width))
        patch_h = int(np.clip(round(math.sqrt(area / aspect)), 1, height))
        return patch_h, patch_w, 0.0

    def _source(self, object_mask: np.ndarray, fg_points: np.ndarray, patch_h: int, patch_w: int,
                rng: np.random.Generator) -> tuple[float, float]:
        """Centre of the source rectangle: on the foreground, mostly covering it, when asked."""
        cfg = self.config
        height, width = object_mask.shape
        if not cfg.cut_from_foreground:
            return (_aligned_centre(rng.uniform(0, height), patch_h, height),
                    _aligned_centre(rng.uniform(0, width), patch_w, width))
        table = np.pad(object_mask.cumsum(0).cumsum(1), ((1, 0), (1, 0)))  # summed-area table
        best: tuple[float, tuple[float, float]] | None = None
        for _ in range(cfg.tries):
            cy, cx = fg_points[rng.integers(len(fg_points))]
            centre = (_aligned_centre(cy, patch_h, height), _aligned_centre(cx, patch_w, width))
            top, left = int(centre[0] - (patch_h - 1) / 2), int(centre[1] - (patch_w - 1) / 2)
            inside = (table[top + patch_h, left + patch_w] - table[top, left + patch_w]
                      - table[top + patch_h, left] + table[top, left])
            share = inside / (patch_h * patch_w)
            if best is None or share > best[0]:
                best = (share, centre)
            if share >= cfg.min_on_foreground:
                break
        assert best is not None
        return best[1]

    def synthesize(self, spec: SampleSpec, normal: np.ndarray, rng: np.random.Generator) -> SynthesisOutput:
        cfg = self.config
        height, width = normal.shape[:2]
        object_mask = foreground(normal, cfg.on_foreground or cfg.cut_from_foreground)
        fg_points = np.argwhere(object_mask)
        patch_h, patch_w, angle = self._patch_shape(height, width, rng)
        theta = math.radians(angle)
        cos, sin = math.cos(theta), math.sin(theta)

        src = self._source(object_mask, fg_points, patch_h, patch_w, rng)

        yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
        half_y = (abs(sin) * patch_w + abs(cos) * patch_h) / 2
        half_x = (abs(cos) * patch_w + abs(sin) * patch_h) / 2
        best: tuple[float, np.ndarray, np.ndarray, np.ndarray, tuple[float, float]] | None = None
        for _ in range(cfg.tries):
            if cfg.on_foreground:
                cy, cx = (float(v) for v in fg_points[rng.integers(len(fg_points))])
            else:
                cy, cx = rng.uniform(0, height), rng.uniform(0, width)
            if angle == 0.0:  # keep integer offsets: the pasted pixels are exact copies
                dst = (_aligned_centre(cy, patch_h, height), _aligned_centre(cx, patch_w, width))
            else:
                dst = (_free_centre(cy, half_y, height), _free_centre(cx, half_x, width))
            dy, dx = yy - dst[0], xx - dst[1]
            u, v = cos * dx + sin * dy, -sin * dx + cos * dy  # destination pixel in the patch's own frame
            footprint = (np.abs(u) < patch_w / 2) & (np.abs(v) < patch_h / 2)
            moved = abs(dst[0] - src[0]) + abs(dst[1] - src[1]) >= 1
            score = (footprint & object_mask).sum() / max(1, footprint.sum()) if cfg.on_foreground else 1.0
            score = score if moved else -1.0
            if best is None or score > best[0]:
                best = (score, footprint, u, v, dst)
            if score >= cfg.min_on_foreground:
                break
        assert best is not None
        score, footprint, u, v, dst = best
        mask = footprint
        if cfg.on_foreground and score > 0:
            mask = footprint & ndimage.binary_dilation(object_mask, iterations=3)
        if cfg.cut_from_foreground:  # paste object material only, never the background around it
            source_y = np.clip(np.rint(src[0] + v), 0, height - 1).astype(int)
            source_x = np.clip(np.rint(src[1] + u), 0, width - 1).astype(int)
            on_object = mask & object_mask[source_y, source_x]
            mask = on_object if on_object.any() else mask

        coords = np.stack([src[0] + v[mask], src[1] + u[mask]])
        pixels = np.stack([ndimage.map_coordinates(normal[..., c].astype(np.float32), coords, order=1, mode="nearest")
                           for c in range(3)], axis=-1)
        j = cfg.jitter
        pixels = jitter_colour(pixels, rng, brightness=j, contrast=j, saturation=j, hue=j)
        out = normal.copy()
        out[mask] = to_uint8(pixels)
        origin = (f"cutpaste-{cfg.variant} {patch_h}x{patch_w} rot{angle:.0f} from{src[0]:.1f},{src[1]:.1f} "
                  f"to{dst[0]:.1f},{dst[1]:.1f}")
        return SynthesisOutput(out, mask, mask_origin=origin)
