"""The synthesis contract every synthesizer implements.

A synthesizer sees only a :class:`TrainSplit`: decoded pixels of the normal training images
and of the few-shot training third of each defect type (with masks and captions), held in
read-only arrays. It has no path, dataset object or caption source to reach test data through
(and :mod:`synthesis.guard` makes file reads of test data fail while it runs).

Generation is planned outside the synthesizer (:mod:`synthesis.plan`): the runner decides for
every sample the normal source image, a proposed mask, the caption and a seed, so all
synthesizers are scored on the same requests. A synthesizer turns one batch of
:class:`SampleSpec` into images and masks; it may return its own mask when its method defines
one (Perlin noise, CutPaste patches) and says so in its metadata.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

# the view a synthesizer receives is defined in the dataset layer (it builds it); these names are the contract's
from mvtec_caption.fewshot import FewShotAnomaly, NormalImage, TrainSplit  # noqa: F401
from synthesis.colour import ColourProfile, colour_profile

if TYPE_CHECKING:
    from synthesis.plan import SamplePlan

CONTRACT_VERSION = 1


@dataclass(frozen=True)
class SampleSpec:
    """One generation request, decided by the plan (see :mod:`synthesis.plan`)."""

    defect_type: str
    index: int  # within the defect type
    caption: str
    caption_origin: Literal["train", "user"]
    normal_id: str
    mask: np.ndarray  # HxW bool: the proposed defect region
    mask_origin: str  # e.g. "train:broken_large/003 flip rot90 scale0.8" or "user:mask.png"
    seed: int
    attempt: int = 0  # > 0: a redo of a sample below the synthesizer's label floor, with a derived seed
    plan: SamplePlan | None = None  # what the caption asked of the mask and what was planned (synthesis.plan)

    def redo(self, attempt: int) -> SampleSpec:
        """The same request with a seed derived from this one's for attempt ``attempt``."""
        seed = int(np.random.SeedSequence([self.seed, attempt]).generate_state(1)[0] % (2**31 - 1))
        return replace(self, seed=seed, attempt=attempt)

    @property
    def name(self) -> str:
        return f"{self.defect_type}/{self.index:04d}"


@dataclass(frozen=True)
class SynthesisOutput:
    image: np.ndarray  # HxWx3 uint8
    mask: np.ndarray  # HxW bool: where the image was changed into a defect
    mask_origin: str | None = None  # set when the synthesizer made its own mask


class SynthesizerMeta(BaseModel):
    """Declarative description of a registered synthesizer (listed by the CLIs)."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    description: str
    reference: str | None = None
    uses_text: bool
    uses_masks: bool = Field(description="Uses the planned masks (False: makes its own, e.g. Perlin).")
    uses_real_anomalies: bool = Field(description="Learns from the training third's real anomalies.")
    keeps_outside_mask: bool = Field(description="Promises pixels outside the output mask are unchanged.")
    ablation_of: str | None = None


class FitReport(BaseModel):
    """What a fit saw and cost; stored with the checkpoint and every generated set."""

    split_id: str
    protocol_id: str
    dataset: str
    category: str
    image_size: int
    normal_images_seen: int
    real_anomalies_seen: int
    seconds: float
    details: dict[str, Any] = Field(default_factory=dict)
    colour: ColourProfile | None = Field(None, description="The category's colours, measured from the training images "
                                         "(None in fits made before it was recorded).")


def train_colour(train: TrainSplit) -> ColourProfile:
    """The colour profile of every training image of a split (normal images and few-shot anomalies)."""
    return colour_profile([n.image for n in train.normals] + [a.image for a in train.anomalies])


def canonical_hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


class Synthesizer(ABC):
    """Base class: subclasses declare ``Config`` and implement fit and synthesis.

    ``fit`` may be a no-op for methods without learning; it must still call
    ``self._record_fit`` (via ``super().fit`` or directly) so the checkpoint says what was seen.

    ``tiny_config`` is a test hook: config overrides (a dict for ``registry.create``) that make
    fit and generation fast enough for the contract tests, which run every registered
    synthesizer on 64 px demo data. Methods with a training budget (steps, widths, sampling
    steps) should return their smallest sensible settings; the default changes nothing.
    """

    Config: ClassVar[type[BaseModel]]
    version: ClassVar[str] = "1"
    description: ClassVar[str] = ""
    reference: ClassVar[str | None] = None
    uses_text: ClassVar[bool] = False
    uses_masks: ClassVar[bool] = True
    uses_real_anomalies: ClassVar[bool] = False
    keeps_outside_mask: ClassVar[bool] = True

    def __init__(self, name: str, config: BaseModel | None = None, device: str = "cpu", ablation_of: str | None = None):
        self.name = name
        self.config = config if config is not None else self.Config()
        self.device = device
        self.ablation_of = ablation_of
        self.fit_report: FitReport | None = None
        #: Where fit may keep resumable training state (set by the caller: the benchmark's job folder).
        self.work_dir: Path | None = None

    # ---- identity -------------------------------------------------------------------------
    @property
    def meta(self) -> SynthesizerMeta:
        return SynthesizerMeta(
            name=self.name, version=self.version, description=self.description, reference=self.reference,
            uses_text=self.uses_text, uses_masks=self.uses_masks, uses_real_anomalies=self.uses_real_anomalies,
            keeps_outside_mask=self.keeps_outside_mask, ablation_of=self.ablation_of,
        )

    @property
    def config_hash(self) -> str:
        return canonical_hash({"name": self.name, "version": self.version, "config": self.config.model_dump(mode="json")})

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        """Config overrides for a fast smoke run (used by the contract tests); see the class doc."""
        return {}

    # ---- learning -------------------------------------------------------------------------
    def fit(self, train: TrainSplit, progress: bool = True) -> FitReport:
        """Learn from the training split; the default learns nothing."""
        return self._record_fit(train, seconds=0.0)

    def _record_fit(self, train: TrainSplit, seconds: float, **details: Any) -> FitReport:
        self.fit_report = FitReport(
            split_id=train.split_id, protocol_id=train.protocol_id, dataset=train.dataset, category=train.category,
            image_size=train.image_size, normal_images_seen=len(train.normals),
            real_anomalies_seen=len(train.anomalies) if self.uses_real_anomalies else 0,
            seconds=seconds, details=details, colour=train_colour(train),
        )
        return self.fit_report

    @property
    def colour(self) -> ColourProfile | None:
        """The fitted category's colour profile (see :mod:`synthesis.colour`)."""
        return self.fit_report.colour if self.fit_report is not None else None

    @property
    def label_floor(self) -> float | None:
        """Visible share (:mod:`synthesis.fidelity`) below which the runner redoes a sample with a derived seed
        (``SampleSpec.attempt`` counts the tries) and, after ``max_attempts``, records it as failed; None: never."""
        return None

    @property
    def max_attempts(self) -> int:
        return 1

    def require_fit(self, train: TrainSplit) -> None:
        if self.fit_report is None:
            raise RuntimeError(f"{self.name}: call fit() (or load a checkpoint) before generating")
        if self.fit_report.category != train.category or self.fit_report.image_size != train.image_size:
            raise ValueError(
                f"{self.name}: fitted on {self.fit_report.category} at {self.fit_report.image_size}px, "
                f"asked to generate for {train.category} at {train.image_size}px"
            )

    # ---- generation -----------------------------------------------------------------------
    @abstractmethod
    def synthesize(self, spec: SampleSpec, normal: np.ndarray, rng: np.random.Generator) -> SynthesisOutput:
        """Turn one normal image into an anomalous one for ``spec``."""

    def synthesize_batch(self, specs: list[SampleSpec], normals: list[np.ndarray]) -> list[SynthesisOutput]:
        """Batch entry point; override for batched models (the default loops over ``synthesize``)."""
        return [self.synthesize(s, n, np.random.default_rng(s.seed)) for s, n in zip(specs, normals)]

    @property
    def batch_size(self) -> int:
        return 1

    # ---- persistence ----------------------------------------------------------------------
    def save_state(self, folder: Path) -> None:
        """Write learned state into ``folder`` (the default has none)."""

    def load_state(self, folder: Path) -> None:
        """Read what ``save_state`` wrote."""
