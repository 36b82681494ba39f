"""The contract every downstream anomaly detector implements.

A detector is trained on the category's normal training images and (when it uses synthesis)
on one synthesizer's generated set, for a fixed budget: ``fit`` never receives test data, so
nothing can be selected on test. The harness then calls ``predict`` on the test images and
scores the output with :mod:`benchmark.evaluation`. ``save`` / ``load`` let the harness cache a
trained detector under its ``config_hash`` and seed.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from benchmark.results import WeightsRef
from synthesis.contract import canonical_hash

STATE_FILE = "state.pt"
META_FILE = "detector.json"


class DetectorConfig(BaseModel):
    """Base of every detector's ``Config``: unknown keys are errors, so a typo never goes unnoticed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image_size: int


@dataclass(frozen=True)
class SyntheticSet:
    """A synthesizer's generated set as a detector sees it.

    Each anomalous image comes with the clean normal image it was made from (DRAEM's
    reconstruction target), its binary defect mask and, when known, the defect type it was
    generated for (the defect-type classifier's label).
    """

    clean: np.ndarray  # [M,H,W,3] uint8
    anomalous: np.ndarray  # [M,H,W,3] uint8
    masks: np.ndarray  # [M,H,W] bool
    defect_types: np.ndarray | None = None  # [M] str

    def __post_init__(self) -> None:
        m = len(self.anomalous)
        if self.clean.shape != self.anomalous.shape or self.anomalous.ndim != 4 or self.anomalous.shape[-1] != 3:
            raise ValueError(f"clean {self.clean.shape} and anomalous {self.anomalous.shape} must both be [M,H,W,3]")
        if self.masks.shape != self.anomalous.shape[:3]:
            raise ValueError(f"masks {self.masks.shape} must be [M,H,W] matching the images {self.anomalous.shape}")
        if m == 0:
            raise ValueError("a synthetic set needs at least one sample")
        if self.clean.dtype != np.uint8 or self.anomalous.dtype != np.uint8:
            raise ValueError("images must be uint8")
        if self.defect_types is not None and len(self.defect_types) != m:
            raise ValueError(f"defect_types has {len(self.defect_types)} entries for {m} samples")
        object.__setattr__(self, "masks", self.masks.astype(bool, copy=False))

    def __len__(self) -> int:
        return len(self.anomalous)


def check_images(images: np.ndarray, what: str = "images") -> np.ndarray:
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8 or len(images) == 0:
        raise ValueError(f"{what} must be a non-empty [N,H,W,3] uint8 array, got {images.shape} {images.dtype}")
    return images


class Detector(ABC):
    """Base class: subclasses declare ``name``, ``Config``, ``uses_synthesis`` and implement the hooks.

    Determinism: for a given seed, config and inputs, ``fit`` gives the same model on the CPU
    (initialisation under ``torch.manual_seed(seed)`` in a forked RNG, a numpy ``Generator``
    for the sampling order). Bump ``version`` when a change alters trained models, so cached
    detectors are not reused across implementations.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    Config: ClassVar[type[DetectorConfig]] = DetectorConfig
    uses_synthesis: ClassVar[bool]
    summary: ClassVar[str] = ""
    #: Config overrides that make fit take a second or two at 32 px (tests, smoke runs).
    tiny_config: ClassVar[dict[str, Any]] = {}

    def __init__(self, config: dict[str, Any] | DetectorConfig, seed: int, device: str = "cpu") -> None:
        self.config = config if isinstance(config, self.Config) else self.Config(**dict(config))
        self.seed = int(seed)
        self.device = device
        self.fitted = False
        #: Mean training loss per epoch (empty for detectors without gradient training).
        self.history: list[float] = []

    # -- identity ---------------------------------------------------------------------------
    @property
    def config_hash(self) -> str:
        """Identity of what is trained (name, implementation version, config); the seed is kept apart."""
        return canonical_hash({"detector": self.name, "version": self.version, "config": self.config.model_dump(mode="json")})

    def weights(self) -> list[WeightsRef]:
        """Pretrained weights the detector depends on (none for detectors trained from scratch)."""
        return []

    # -- the contract ------------------------------------------------------------------------
    @abstractmethod
    def fit(self, normals: np.ndarray, synthetic: SyntheticSet | None, progress: bool = True) -> None:
        """Train on normal training images [N,H,W,3] uint8 and, if used, a synthetic set; never on test data."""

    @abstractmethod
    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Image scores [N] and anomaly maps [N,H,W] (float, higher = more anomalous) at the input resolution."""

    @abstractmethod
    def _state(self) -> dict[str, Any]:
        """Tensors (and plain values) that restore a fitted detector."""

    @abstractmethod
    def _load_state(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`_state`."""

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError(f"detector {self.name!r} is not fitted: call fit() or load() first")

    def _require_synthetic(self, synthetic: SyntheticSet | None) -> SyntheticSet:
        if synthetic is None:
            raise ValueError(f"detector {self.name!r} trains on synthesized anomalies: pass a SyntheticSet")
        return synthetic

    # -- caching -----------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "config": self.config.model_dump(mode="json"),
                "config_hash": self.config_hash, "seed": self.seed, "history": self.history}

    def save(self, folder: str | Path) -> Path:
        """Write ``detector.json`` (identity, history) and ``state.pt`` (tensors) into ``folder``."""
        import torch

        self._require_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self._state(), folder / STATE_FILE)
        (folder / META_FILE).write_text(json.dumps(self.meta(), indent=2, sort_keys=True) + "\n")
        return folder

    def load(self, folder: str | Path) -> None:
        """Restore a saved detector; refuses one saved with another name, config or seed."""
        import torch

        folder = Path(folder)
        meta = json.loads((folder / META_FILE).read_text())
        mine = self.meta()
        for key in ("name", "version", "config_hash", "seed"):
            if meta.get(key) != mine[key]:
                raise ValueError(f"{folder}: saved {key} {meta.get(key)!r} differs from this detector's {mine[key]!r}")
        self._load_state(torch.load(folder / STATE_FILE, map_location=self.device, weights_only=True))
        self.history = list(meta.get("history", []))
        self.fitted = True
