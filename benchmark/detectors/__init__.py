"""Downstream anomaly detectors by name.

Entries name their class lazily ("module:Class"), so listing names costs no torch / anomalib
import; :func:`create_detector` and :func:`describe` import the classes they need.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmark.detectors.base import Detector


@dataclass(frozen=True)
class RegisteredDetector:
    name: str
    target: str  # "package.module:ClassName"
    uses_synthesis: bool

    def load_class(self) -> type[Detector]:
        from benchmark.detectors.base import Detector

        module_name, _, class_name = self.target.partition(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        if not (isinstance(cls, type) and issubclass(cls, Detector)) or cls.name != self.name:
            raise TypeError(f"{self.target} is not the Detector registered as {self.name!r}")
        return cls


DETECTORS: dict[str, RegisteredDetector] = {}


def register(name: str, target: str, uses_synthesis: bool) -> RegisteredDetector:
    entry = RegisteredDetector(name, target, uses_synthesis)
    if name in DETECTORS and DETECTORS[name] != entry:
        raise ValueError(f"detector {name!r} is already registered as {DETECTORS[name].target}")
    DETECTORS[name] = entry
    return entry


register("unet", "benchmark.detectors.unet:UNetDetector", uses_synthesis=True)
register("draem", "benchmark.detectors.draem:DraemDetector", uses_synthesis=True)
register("padim-effnetlite0", "benchmark.detectors.padim:PadimDetector", uses_synthesis=False)
register("classifier", "benchmark.detectors.classifier:DefectTypeClassifier", uses_synthesis=True)


def available() -> list[str]:
    return sorted(DETECTORS)


def detector_class(name: str) -> type[Detector]:
    if name not in DETECTORS:
        raise KeyError(f"unknown detector {name!r}; registered: {', '.join(available())}")
    return DETECTORS[name].load_class()


def create_detector(name: str, config: dict[str, Any] | None = None, seed: int = 0, device: str = "cpu") -> Detector:
    """Instantiate a registered detector; ``config`` is validated by its ``Config`` (unknown keys fail)."""
    return detector_class(name)(config or {}, seed=seed, device=device)


def describe() -> list[dict[str, Any]]:
    """One entry per detector for ``benchmark list``: name, synthesis use, summary, config defaults and meaning."""
    rows = []
    for name in available():
        cls = detector_class(name)
        fields = {key: {"default": field.default, "description": field.description or ""}
                  for key, field in cls.Config.model_fields.items()}
        rows.append({"name": name, "uses_synthesis": cls.uses_synthesis, "version": cls.version,
                     "summary": cls.summary, "config": fields})
    return rows
