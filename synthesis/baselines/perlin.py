"""DRAEM-style Perlin-noise anomalies (Zavrtanik et al., ICCV 2021, arXiv:2108.07610).

Mask: a 2-D Perlin noise with a random lattice scale ``2^kx x 2^ky`` (DRAEM: k in 0..5), rotated
by a random angle and thresholded at 0.5, then clipped to the object's foreground
(:func:`synthesis.masks.estimate_foreground`) so defects do not float on the background. An
empty (or too small) mask is redrawn from the same rng.

Fill: a texture blended inside the mask with opacity ``beta`` of the original, exactly DRAEM's
``img * (1 - m) + (1 - beta) * texture * m + beta * img * m`` with ``beta ~ U(beta_range)``.
Pixels outside the mask are left unchanged.

Noise: anomalib 2.7.0's ``generate_perlin_noise`` (the generator DRAEM's anomalib port uses).
It pads to the next power of two and crops, so any image size works; we ask it for a square
``sqrt(2)`` larger than the image so that rotating and cropping the centre leaves no empty
corners, with the lattice scale multiplied to keep DRAEM's cell size relative to the image.
Its only randomness is ``torch.rand`` for the lattice gradients: we draw it inside
``torch.random.fork_rng`` seeded from the sample's rng, so the global torch RNG is untouched
and a seed gives one mask.

Texture source (see :mod:`synthesis.baselines.textures`): DTD is not available offline, so by
default the textures are the category's own normal training images, drawn from a fixed pool,
zoomed, turned and recoloured with three of DRAEM's augmentations. The recoloured texture is kept
inside the category's colours (:func:`synthesis.colour.conform`, version 2): a grey category gets
grey textures (DRAEM's per-channel gamma and hue shifts would otherwise add colour no real
anomaly has), a colour category no colour more saturated than its training images. ``texture_dir`` names a
folder of texture images (e.g. DTD ``images/``) to use instead; the pool is read at fit time
and stored in the checkpoint.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from synthesis.baselines._imaging import foreground
from synthesis.baselines.textures import augment_texture, pool_from_folder, pool_from_normals
from synthesis.colour import conform
from synthesis.contract import FitReport, SampleSpec, SynthesisOutput, Synthesizer, TrainSplit
from synthesis.state_files import read_arrays

STATE_FILE = "textures.npz"


class PerlinConfig(BaseModel):
    """Defaults follow DRAEM's released training code at 256 px."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scale_exponents: tuple[int, int] = Field((0, 6), description="Lattice scale 2^k per axis, k drawn from [lo, hi) (DRAEM: 0..5).")
    threshold: float = Field(0.5, description="Noise above this is anomalous (DRAEM: 0.5).")
    rotation: tuple[float, float] = Field((-90.0, 90.0), description="Rotation of the noise in degrees.")
    beta_range: tuple[float, float] = Field((0.0, 0.8), description="Opacity of the original inside the mask (DRAEM: U(0, 0.8)).")
    on_foreground: bool = Field(True, description="Clip the mask to the estimated object foreground.")
    min_area: float = Field(0.001, description="Smallest accepted mask, as a fraction of the image; smaller masks are redrawn.")
    max_tries: int = Field(30, ge=1, description="Noise redraws before falling back to the strongest noise on the foreground.")
    texture_dir: str | None = Field(None, description="Folder of texture images (e.g. DTD); default: the category's normal images.")
    texture_pool: int = Field(32, ge=1, description="Textures kept at fit time (evenly spaced over the source).")
    texture_zoom: tuple[float, float] = Field((0.25, 1.0), description="Side of the random texture crop, as a fraction.")
    texture_ops: int = Field(3, ge=0, description="Photometric augmentations per texture (DRAEM: 3).")


def _next_pow2(value: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(1, value))))


def perlin_noise(size: int, scale: tuple[int, int], angle: float, seed: int) -> np.ndarray:
    """Rotated Perlin noise of ``size x size`` (values about [-1, 1]) from anomalib's generator."""
    import torch
    from anomalib.data.utils.generators.perlin import generate_perlin_noise

    side = _next_pow2(math.ceil(size * math.sqrt(2)))
    factor = side // _next_pow2(size)  # keep the cell size anomalib would use at the image's own size
    threads = torch.get_num_threads()
    try:  # small tensors: one thread is several times faster than a contended pool (2-core machines)
        torch.set_num_threads(1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            noise = generate_perlin_noise(side, side, scale=(scale[0] * factor, scale[1] * factor), device=torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)
    rotated = Image.fromarray(noise.numpy().astype(np.float32)).rotate(angle, resample=Image.BILINEAR)
    offset = (side - size) // 2
    return np.asarray(rotated)[offset:offset + size, offset:offset + size]


class PerlinSynthesizer(Synthesizer):
    """DRAEM's Perlin-noise masks filled with an augmented texture."""

    Config = PerlinConfig
    version = "2"
    description = ("DRAEM-style anomalies: a thresholded, rotated Perlin-noise mask on the object's foreground, filled "
                   "with a texture blended at random opacity. Textures: the category's own normal training images, "
                   "zoomed and recoloured (no DTD offline), or the images in config texture_dir.")
    reference = "Zavrtanik et al., DRAEM, ICCV 2021, arXiv:2108.07610"
    uses_text = False
    uses_masks = False
    uses_real_anomalies = False
    keeps_outside_mask = True

    config: PerlinConfig

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.textures: np.ndarray | None = None
        self.texture_names: list[str] = []

    @classmethod
    def tiny_config(cls) -> dict:
        return {"texture_pool": 4}

    def fit(self, train: TrainSplit, progress: bool = True) -> FitReport:
        started = time.perf_counter()
        if self.config.texture_dir:
            self.textures, self.texture_names = pool_from_folder(Path(self.config.texture_dir), train.image_size, self.config.texture_pool)
            source = f"texture_dir ({len(self.texture_names)} images)"
        else:
            self.textures, self.texture_names = pool_from_normals(train, self.config.texture_pool)
            source = f"normal training images ({len(self.texture_names)} of {len(train.normals)})"
        return self._record_fit(train, seconds=time.perf_counter() - started, texture_source=source)

    # ---- generation -----------------------------------------------------------------------
    def _mask(self, size: int, allowed: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
        cfg = self.config
        min_pixels = max(1, round(cfg.min_area * size * size))
        noise = None
        for attempt in range(cfg.max_tries):
            scale = (2 ** int(rng.integers(*cfg.scale_exponents)), 2 ** int(rng.integers(*cfg.scale_exponents)))
            angle = float(rng.uniform(*cfg.rotation))
            noise = perlin_noise(size, scale, angle, int(rng.integers(0, 2**31 - 1)))
            mask = (noise > cfg.threshold) & allowed
            if mask.sum() >= min_pixels:
                retry = f" retry{attempt}" if attempt else ""
                return mask, f"perlin scale{scale[0]}x{scale[1]} rot{angle:.0f}{retry}"
        # Rare (tiny foreground): keep the strongest noise on the foreground instead.
        assert noise is not None
        cut = np.quantile(noise[allowed], max(0.0, 1 - min_pixels / max(1, allowed.sum())))
        return (noise >= cut) & allowed, f"perlin fallback-quantile scale{scale[0]}x{scale[1]}"

    def synthesize(self, spec: SampleSpec, normal: np.ndarray, rng: np.random.Generator) -> SynthesisOutput:
        if self.textures is None:
            raise RuntimeError(f"{self.name}: no textures; call fit() or load a checkpoint first")
        size = normal.shape[0]
        mask, mask_info = self._mask(size, foreground(normal, self.config.on_foreground), rng)
        pick = int(rng.integers(len(self.textures)))
        texture, texture_info = augment_texture(self.textures[pick], size, rng, self.config.texture_zoom, self.config.texture_ops)
        beta = float(rng.uniform(*self.config.beta_range))
        image = normal.astype(np.float32)
        blended = (1 - beta) * texture.astype(np.float32) + beta * image
        image[mask] = blended[mask]
        out = conform(np.clip(np.rint(image), 0, 255).astype(np.uint8), normal, mask, self.colour)
        origin = f"{mask_info} beta{beta:.2f} texture:{self.texture_names[pick]} {texture_info}"
        return SynthesisOutput(out, mask, mask_origin=origin)

    # ---- persistence ----------------------------------------------------------------------
    def save_state(self, folder: Path) -> None:
        np.savez(Path(folder) / STATE_FILE, textures=self.textures, names=np.array(self.texture_names))

    def load_state(self, folder: Path) -> None:
        state = read_arrays(Path(folder) / STATE_FILE, required=("textures", "names"))
        self.textures = state["textures"]
        self.texture_names = [str(n) for n in state["names"]]
