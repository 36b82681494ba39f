"""Per-sample sampler settings that keep small and thin defects visible.

AXF starts every sample SDEdit-style from a real training defect pasted into the planned mask.
At the bottle-tuned default (strength 0.6 of the noise schedule) the noise drowns anything a few
pixels wide: on a grey-level category with holes and thin cracks the outputs kept the masks but
showed almost nothing inside them (see ``synthesis/axf/README.md``). So each sample's settings
follow its mask's **thickness**, twice the largest distance from a mask pixel to the mask's border
(a disc's diameter, a crack's width), measured in model-window pixels (image pixels times
``window_size / window side``, since that is the scale the network sees):

* **SDEdit strength**: ``thin_strength`` at or below ``thin_px``, ``sdedit_strength`` at or above
  ``thick_px``, linear in between: thin defects are only lightly re-noised, large ones are still
  harmonised and varied as before;
* **detail transfer**: the paste's fine detail (its high-pass band, image minus a Gaussian blur of
  ``detail_sigma`` image pixels) replaces the generated one inside the mask with weight
  ``thin_detail`` at or below ``thin_px``, fading to 0 at ``thick_px``. The network keeps the
  low frequencies (shading, brightness matched to the new surroundings); the crack's edges come
  from the real defect. Windows larger than the model's resolution also get back the detail the
  round trip through the window lost (``detail_transfer``, as before);
* **a redo** (``attempt`` > 0, after a sample fell below the label floor): the strength is
  multiplied by ``retry_strength`` per attempt and the fine detail is transferred in full.

The constants were chosen on training-split generations of bottle and fibreboard (label fidelity
of the generated sets; see the README), never on test data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage


@dataclass(frozen=True)
class SampleSettings:
    thickness: float  # model-window pixels
    strength: float  # SDEdit start, fraction of the schedule
    detail: float  # weight of the paste's high-pass band inside the mask


def mask_thickness(mask: np.ndarray, side: int, window: int) -> float:
    """Twice the mask's largest inner distance, in model-window pixels."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return 0.0
    inner = float(ndimage.distance_transform_edt(np.pad(mask, 1)).max())
    return 2.0 * inner * window / max(side, 1)


def _ramp(value: float, low: float, high: float) -> float:
    """0 at or below ``low``, 1 at or above ``high``, linear in between."""
    if high <= low:
        return float(value >= high)
    return float(np.clip((value - low) / (high - low), 0.0, 1.0))


def settings_for(mask: np.ndarray, side: int, window: int, *, strength: float, thin_strength: float,
                 thin_px: float, thick_px: float, thin_detail: float, retry_strength: float, attempt: int = 0,
                 adapt: bool = True, steps: int = 50) -> SampleSettings:
    """One sample's settings (see the module docstring); strengths snap to the sampler's step grid."""
    thickness = mask_thickness(mask, side, window)
    t = _ramp(thickness, thin_px, thick_px) if adapt else 1.0
    chosen = min(strength, thin_strength + (strength - thin_strength) * t) if adapt else strength
    detail = thin_detail * (1.0 - t) if adapt else 0.0
    if attempt > 0:
        chosen *= retry_strength ** attempt
        detail = max(detail, thin_detail)
    chosen = max(1.0 / steps, round(chosen * steps) / steps) if chosen < 1.0 else 1.0
    return SampleSettings(thickness=round(thickness, 3), strength=chosen, detail=detail)


def high_pass(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """``image`` minus its Gaussian blur (``[C, H, W]``), the band a thin defect lives in."""
    array = image.numpy()
    blurred = ndimage.gaussian_filter(array, sigma=(0, sigma, sigma), mode="reflect")
    return torch.from_numpy(array - blurred)
