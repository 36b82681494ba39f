"""A minimal third-party synthesizer: the planned defect region of a normal image, blurred and darkened.

It plugs into mvtec-caption-bench without forking it: the entry point in ``pyproject.toml`` registers
it as ``blur``, so after ``pip install -e .`` it is listed by ``python -m benchmark list`` and runs with
``python -m benchmark run --synth blur``.
"""

import numpy as np
from pydantic import BaseModel, Field
from scipy.ndimage import gaussian_filter

from synthesis.contract import SampleSpec, SynthesisOutput, Synthesizer


class BlurConfig(BaseModel):
    """Every setting has a default: the benchmark's protocols pin values by name when they need to."""

    sigma: float = Field(3.0, gt=0, description="Gaussian blur inside the defect region, in pixels.")
    darken: float = Field(0.6, gt=0, le=1, description="Brightness factor inside the defect region.")


class BlurSynthesizer(Synthesizer):
    Config = BlurConfig
    version = "1"
    description = "Blurs and darkens the planned defect region of a normal image (a plug-in example)"
    uses_masks = True  # it fills the planned masks (the plan's augmented training masks)
    keeps_outside_mask = True  # pixels outside the mask are the normal image's

    # fit() is inherited: this method learns nothing, the default records what it was given.

    def synthesize(self, spec: SampleSpec, normal: np.ndarray, rng: np.random.Generator) -> SynthesisOutput:
        sigma = self.config.sigma * rng.uniform(0.8, 1.2)  # seeded per sample by the plan
        blurred = gaussian_filter(normal.astype(np.float32), sigma=(sigma, sigma, 0)) * self.config.darken
        image = normal.copy()
        image[spec.mask] = np.clip(blurred[spec.mask], 0, 255).astype(np.uint8)
        return SynthesisOutput(image=image, mask=spec.mask)
