"""Plugin classes for the plugin tests: one valid detector and synthesizers/detectors that each miss part
of their contract (named by ``--synth plugin_helpers:ClassName``; the tests folder is on ``sys.path``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel

from benchmark.detectors.base import Detector, DetectorConfig
from synthesis.contract import SampleSpec, SynthesisOutput, Synthesizer

#: A detector plugin module, written as a file into the throwaway package of the entry-point test.
MEAN_DISTANCE_DETECTOR = '''
"""Score = distance to the mean normal training image (no synthesis, no training): a plug-in example."""

import numpy as np

from benchmark.detectors.base import Detector, DetectorConfig, check_images


class MeanDistanceDetector(Detector):
    name = "mean-distance"
    Config = DetectorConfig
    uses_synthesis = False
    summary = "absolute difference to the mean normal image"

    def fit(self, normals, synthetic, progress=True):
        self.mean = check_images(normals).astype(np.float32).mean(0)
        self.fitted = True

    def predict(self, images):
        self._require_fitted()
        maps = np.abs(check_images(images).astype(np.float32) - self.mean).mean(-1) / 255.0
        return maps.reshape(len(maps), -1).max(1), maps

    def _state(self):
        import torch

        return {"mean": torch.from_numpy(self.mean)}

    def _load_state(self, state):
        self.mean = state["mean"].numpy()
'''


class EmptyConfig(BaseModel):
    pass


class NoSynthesize(Synthesizer):
    Config = EmptyConfig
    description = "forgets to implement synthesize"


class NoConfig(Synthesizer):
    description = "declares no Config"

    def synthesize(self, spec: SampleSpec, normal: np.ndarray, rng: np.random.Generator) -> SynthesisOutput:
        return SynthesisOutput(normal.copy(), spec.mask)


class RequiredSetting(BaseModel):
    strength: float  # no default


class NoDefaults(Synthesizer):
    Config = RequiredSetting
    description = "a setting without default"

    def synthesize(self, spec: SampleSpec, normal: np.ndarray, rng: np.random.Generator) -> SynthesisOutput:
        return SynthesisOutput(normal.copy(), spec.mask)


class NotASynthesizer:
    description = "not derived from Synthesizer"


class NamelessDetector(Detector):
    Config = DetectorConfig

    def fit(self, normals: np.ndarray, synthetic: Any, progress: bool = True) -> None:  # pragma: no cover
        pass
