"""Crop & Paste: real training-split defects cut with their masks and pasted onto normal images.

The few-shot crop-and-paste augmentation of Lin et al. ("Few-shot defect segmentation leveraging
abundant normal training samples through normal background regularization and crop-and-paste
operation", ICME 2021, arXiv:2007.09438), the Crop&Paste baseline of AnomalyDiffusion
(arXiv:2312.05767) and AnomalyXFusion. Fit keeps, for every anomaly of the training third, the bounding-box crop of its
image and mask and the mean colour just around the defect. Generation fills the plan's mask:

* the plan's mask is an augmented copy of one training mask, and ``spec.mask_origin`` says which
  (``train:<defect>/<id> [flip] [rotN] scaleS atT,L [atT,L ...]``). The crop of that anomaly is
  flipped, turned and resized the same way, and placed at the same spot (at every spot, when the
  caption asked for several components), so the pasted defect pixels line up with the mask. The scale is printed with two decimals, so the exact patch size is
  recovered by trying the sizes that rounding allows and keeping the one whose mask contains
  the planned mask;
* for a user mask, or an origin that cannot be matched, the named (else a seeded) anomaly of
  the same defect type is stretched onto the mask's bounding box;
* a mask the plan grew over the rest of a missing part (``grownN`` in the origin: a "missing"
  caption in an aligned category, :mod:`synthesis.plan`) holds the crop's placement and more; the
  crop is pasted where its mask goes, and the added pixels are inpainted from what surrounds them
  (biharmonic inpainting, ``skimage.restoration.inpaint_biharmonic``) over the pasted result, so
  the part's remaining edge is replaced by the bottle and juice around it rather than kept.

Colour matching shifts the pasted pixels by the difference between the destination's and the
source's surroundings (so a defect keeps its contrast to the surface it sits on), and edge
blending feathers a few pixels inside the mask. The output mask is the planned mask, and
pixels outside it are unchanged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from synthesis.baselines._imaging import bbox, feather_alpha, resize, ring_mean
from synthesis.contract import FitReport, SampleSpec, SynthesisOutput, Synthesizer, TrainSplit
from synthesis.state_files import read_arrays, require_arrays

STATE_FILE = "crops.npz"
SCALE_ROUNDING = 0.005  # mask_origin prints the scale with two decimals


class CropPasteConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    colour_match: float = Field(1.0, ge=0, le=1, description="Share of the surroundings' colour difference applied (0: off).")
    ring_fraction: float = Field(1 / 32, gt=0, description="Width of the surroundings band, as a fraction of the image side.")
    feather_px: float = Field(3.0, ge=0, description="Edge blending ramp inside the mask, in pixels (shortened for thin defects).")


@dataclass(frozen=True)
class Crop:
    key: str  # "<defect>/<image_id>"
    image: np.ndarray  # bbox crop, hxwx3 uint8
    mask: np.ndarray  # bbox crop, hxw bool
    ring: np.ndarray  # mean RGB just outside the defect in its source image

    @property
    def defect_type(self) -> str:
        return self.key.split("/", 1)[0]


@dataclass(frozen=True)
class Steps:
    flip: bool
    rotations: int
    scale: float
    places: tuple[tuple[int, int], ...]  # top-left of every placed copy
    grown: bool = False  # the plan grew the mask beyond the placed copies (a "missing" part's rest)


def parse_origin(origin: str) -> tuple[str, Steps | None]:
    """``train:<defect>/<id> steps`` -> (key, steps); (``""``, None) for other origins."""
    if not origin.startswith("train:"):
        return "", None
    key, _, rest = origin[len("train:"):].partition(" ")
    flip, rotations, scale, places, grown = False, 0, None, [], False
    for token in rest.split():
        if token == "flip":
            flip = True
        elif token.startswith("rot") and token[3:].isdigit():
            rotations = int(token[3:]) // 90
        elif token.startswith("scale"):
            scale = float(token[5:])
        elif token.startswith("grown") and token[5:].isdigit():
            grown = int(token[5:]) > 0
        elif token.startswith("at"):
            top, _, left = token[2:].partition(",")
            places.append((int(top), int(left)))
    if scale is None or not places:
        return key, None
    return key, Steps(flip, rotations, scale, tuple(places), grown)


def _orient(array: np.ndarray, steps: Steps) -> np.ndarray:
    if steps.flip:
        array = array[:, ::-1]
    if steps.rotations:
        array = np.rot90(array, steps.rotations)
    return np.ascontiguousarray(array)


INPAINT_MARGIN_PX = 8  # context around the pixels to inpaint


def _inpaint(image: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """``image`` with ``holes`` filled by biharmonic inpainting from the pixels around them."""
    from skimage.restoration import inpaint_biharmonic

    rows, cols = bbox(holes)
    top, left = max(0, rows.start - INPAINT_MARGIN_PX), max(0, cols.start - INPAINT_MARGIN_PX)
    bottom = min(image.shape[0], rows.stop + INPAINT_MARGIN_PX)
    right = min(image.shape[1], cols.stop + INPAINT_MARGIN_PX)
    window = image[top:bottom, left:right].astype(np.float64) / 255.0
    filled = inpaint_biharmonic(window, holes[top:bottom, left:right], channel_axis=-1)
    out = image.copy()
    region = holes[top:bottom, left:right]
    out[top:bottom, left:right][region] = np.clip(np.rint(filled[region] * 255.0), 0, 255).astype(np.uint8)
    return out


class CropPasteSynthesizer(Synthesizer):
    """Paste the real few-shot defects into the planned masks."""

    Config = CropPasteConfig
    version = "3"  # 2: several copies when the plan places several (caption-planned masks, synthesis.plan 2);
    # 3: masks grown over a missing part's rest (synthesis.plan 3) are inpainted beyond the pasted copies
    description = ("Crop & Paste: the training third's real defects, cut with their masks, transformed like the "
                   "planned mask and pasted into it with colour matching and feathered edges.")
    reference = "Lin et al., crop-and-paste for few-shot defect segmentation, ICME 2021, arXiv:2007.09438"
    uses_text = False
    uses_masks = True
    uses_real_anomalies = True
    keeps_outside_mask = True

    config: CropPasteConfig

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.crops: dict[str, Crop] = {}

    def _ring_width(self, size: int) -> int:
        return max(2, round(size * self.config.ring_fraction))

    def fit(self, train: TrainSplit, progress: bool = True) -> FitReport:
        started = time.perf_counter()
        self.crops = {}
        for anomaly in train.anomalies:
            if not anomaly.mask.any():
                continue
            box = bbox(anomaly.mask)
            key = f"{anomaly.defect_type}/{anomaly.image_id}"
            ring = ring_mean(anomaly.image, anomaly.mask, self._ring_width(train.image_size))
            self.crops[key] = Crop(key, np.array(anomaly.image[box]), np.array(anomaly.mask[box]), ring)
        if not self.crops:
            raise ValueError(f"{self.name}: the training split of {train.category} has no anomalies with non-empty masks")
        return self._record_fit(train, seconds=time.perf_counter() - started, crops=len(self.crops))

    # ---- generation -----------------------------------------------------------------------
    def _aligned_patch(self, crop: Crop, steps: Steps, target: np.ndarray
                       ) -> tuple[np.ndarray, tuple[tuple[int, int], ...], np.ndarray] | None:
        """The crop's image transformed like the planned mask, the top-left of every copy and the pixels the
        copies' masks cover; None if it does not fit."""
        height, width = target.shape
        mask = _orient(crop.mask, steps)
        best = None
        for scale in np.linspace(steps.scale - SCALE_ROUNDING, steps.scale + SCALE_ROUNDING, 11):
            new_h = max(1, min(height, round(mask.shape[0] * scale)))
            new_w = max(1, min(width, round(mask.shape[1] * scale)))
            if best is not None and best[0] == (new_h, new_w):
                continue
            if any(top + new_h > height or left + new_w > width for top, left in steps.places):
                continue
            placed = np.zeros_like(target)
            resized = resize(mask, new_h, new_w)
            for top, left in steps.places:
                placed[top:top + new_h, left:left + new_w] |= resized
            # the planned mask is this placement, maybe clipped to the foreground (or grown beyond it)
            fits = not (placed & ~target).any() if steps.grown else not (target & ~placed).any()
            if fits:
                overlap = (target & placed).sum() / max(1, placed.sum())
                if best is None or overlap > best[1]:
                    best = ((new_h, new_w), overlap, placed)
        if best is None:
            return None
        (new_h, new_w), _, placed = best
        return resize(_orient(crop.image, steps), new_h, new_w), steps.places, placed & target

    def _choose(self, key: str, defect_type: str, rng: np.random.Generator) -> Crop:
        if key in self.crops:
            return self.crops[key]
        same = sorted(k for k, c in self.crops.items() if c.defect_type == defect_type) or sorted(self.crops)
        return self.crops[same[int(rng.integers(len(same)))]]

    def synthesize(self, spec: SampleSpec, normal: np.ndarray, rng: np.random.Generator) -> SynthesisOutput:
        if not self.crops:
            raise RuntimeError(f"{self.name}: no crops; call fit() or load a checkpoint first")
        target = np.asarray(spec.mask, dtype=bool)
        if not target.any():
            raise ValueError(f"{self.name}: {spec.name} has an empty planned mask")
        key, steps = parse_origin(spec.mask_origin)
        crop = self._choose(key, spec.defect_type, rng)
        placed = self._aligned_patch(crop, steps, target) if steps is not None and key == crop.key else None
        if placed is None:  # user mask or unknown origin: stretch the crop onto the mask's bounding box
            rows, cols = bbox(target)
            placed = resize(crop.image, rows.stop - rows.start, cols.stop - cols.start), ((rows.start, cols.start),), target
        patch, places, covered = placed
        source = np.zeros_like(normal, dtype=np.float32)
        for top, left in places:
            source[top:top + patch.shape[0], left:left + patch.shape[1]] = patch
        image = normal.astype(np.float32)
        if self.config.colour_match > 0:
            shift = ring_mean(normal, target, self._ring_width(normal.shape[0])) - crop.ring
            source += self.config.colour_match * shift.astype(np.float32)
        alpha = feather_alpha(target, self.config.feather_px)[..., None]
        blended = image * (1 - alpha) + np.clip(source, 0, 255) * alpha
        out = normal.copy()
        out[target] = np.clip(np.rint(blended[target]), 0, 255).astype(np.uint8)
        rest = target & ~covered
        if rest.any():  # a grown mask: the part's rest is inpainted from the pasted surroundings
            out = _inpaint(out, rest)
        return SynthesisOutput(out, target)  # the planned mask, so the plan's mask_origin stays

    # ---- persistence ----------------------------------------------------------------------
    def save_state(self, folder: Path) -> None:
        keys = sorted(self.crops)
        arrays: dict[str, np.ndarray] = {"keys": np.array(keys), "rings": np.stack([self.crops[k].ring for k in keys])}
        for i, k in enumerate(keys):
            arrays[f"image_{i}"] = self.crops[k].image
            arrays[f"mask_{i}"] = self.crops[k].mask
        np.savez_compressed(Path(folder) / STATE_FILE, **arrays)

    def load_state(self, folder: Path) -> None:
        path = Path(folder) / STATE_FILE
        state = read_arrays(path, required=("keys", "rings"))
        keys = [str(k) for k in state["keys"]]
        require_arrays(path, state, [name for i in range(len(keys)) for name in (f"image_{i}", f"mask_{i}")])
        self.crops = {k: Crop(k, state[f"image_{i}"], state[f"mask_{i}"].astype(bool), state["rings"][i])
                      for i, k in enumerate(keys)}
