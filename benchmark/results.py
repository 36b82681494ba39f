"""The versioned result record: scores plus everything needed to trust them later.

One record per (synthesizer, protocol, dataset, category); the reference row (a detector that
uses no synthesis) is a record with ``synthesizer = None``. Every metric carries its variant
settings, the reference weights it used (with sha256) and whether it is comparable with
published values. Older schema versions are upgraded on read (``result_migrations``).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mvtec_caption.migrations import Migrations
from synthesis.contract import FitReport, SynthesizerMeta, canonical_hash

RESULT_SCHEMA_VERSION = 2
NO_SYNTHESIS = "no-synthesis"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WeightsRef(_Model):
    name: str
    source: str = Field(description="Local path, URL or package the weights came from.")
    sha256: str | None = None


class MetricResult(_Model):
    """One fidelity (or caption) metric; ``value`` is None when it could not be computed."""

    id: str = Field(description="Pins the variant, e.g. ic-lpips-ad, ic-lpips-dfmgan, is-effnetlite0-substitute.")
    name: str = Field(description="Human name; standard names only with reference weights.")
    value: float | None
    per_defect: dict[str, float | None] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)
    weights: list[WeightsRef] = Field(default_factory=list)
    computed: bool
    comparable: bool = Field(description="Comparable with published values of the standard metric.")
    reason: str | None = Field(default=None, description="Why not computed, or why not comparable.")
    higher_is_better: bool = True


class DetectionScores(_Model):
    image_auroc: float | None = None
    image_ap: float | None = None
    image_f1max: float | None = None
    pixel_auroc: float | None = None
    pixel_ap: float | None = None
    pixel_f1max: float | None = None
    aupro: float | None = None


class ClassificationResult(_Model):
    """Defect-type classification (the AXF paper's Table 3 task): trained on generated anomalies only, tested on
    the test split's real anomalies. ``applicable`` is False for a category with one defect type (it would score
    100 % by construction); ``computed`` is False when the backbone's weights were unavailable."""

    id: str = Field(description="Pins backbone and budget, e.g. defect-type-resnet34 (the paper's setting, verified "
                                "ImageNet weights) or defect-type-effnetlite0-substitute.")
    name: str
    backbone: str
    comparable: bool = Field(description="The paper's setting (ResNet-34 with verified ImageNet weights).")
    applicable: bool
    computed: bool
    reason: str | None = Field(default=None, description="Why not applicable, not computed, or not comparable.")
    labels: list[str] = Field(default_factory=list, description="Label order of the confusion matrix.")
    mean_accuracy: float | None = Field(default=None, description="Unweighted mean of the per-type accuracies.")
    accuracy: float | None = Field(default=None, description="Share of all test anomalies classified correctly.")
    macro_f1: float | None = None
    per_type_accuracy: dict[str, float | None] = Field(default_factory=dict)
    confusion_matrix: list[list[int]] = Field(default_factory=list, description="Rows: true type; columns: predicted "
                                                                                "type; both in `labels` order.")
    n_test_per_type: dict[str, int] = Field(default_factory=dict)
    n_train_per_type: dict[str, int] = Field(default_factory=dict)
    plot: str | None = Field(default=None, description="File name of the confusion-matrix PNG (job folder).")


class DetectorResult(_Model):
    name: str
    config: dict[str, Any]
    config_hash: str
    uses_synthesis: bool
    seed: int
    overall: DetectionScores = Field(description="All test images of the category.")
    per_defect: dict[str, DetectionScores] = Field(description="Each defect type's test anomalies with all good test images.")
    mean_over_defects: DetectionScores
    weights: list[WeightsRef] = Field(default_factory=list)
    evaluation: dict[str, Any] = Field(default_factory=dict, description="How the scores were computed "
                                       "(metric implementations, AU-PRO FPR limit, aggregation).")
    n_train_normal: int
    n_train_synthetic: int
    n_test_good: int
    n_test_anomalous: int
    train_seconds: float
    eval_seconds: float
    classification: ClassificationResult | None = Field(default=None, description="Set by the defect-type classifier "
                                                         "(its detection scores are then empty).")


class ProtocolRef(_Model):
    id: str
    config_hash: str
    title: str
    hardware: str
    settings: dict[str, Any]


class DatasetRef(_Model):
    name: str
    category: str
    is_demo: bool
    caption_source_kind: str
    captions_sha256: str
    split_sha256: str
    split: dict[str, Any]
    good_test_source: str


class SynthesizerRef(_Model):
    meta: SynthesizerMeta
    config: dict[str, Any]
    config_hash: str
    fit: FitReport
    generated_set_sha256: str
    n_generated_per_defect: int
    n_generated: int


class EnvironmentRef(_Model):
    package_version: str
    git_commit: str | None
    python: str
    platform: str
    cpu: str
    cpu_cores: int
    device: str
    gpu: str | None
    packages: dict[str, str]


class ResultRecord(_Model):
    schema_version: Literal[2] = RESULT_SCHEMA_VERSION
    protocol: ProtocolRef
    dataset: DatasetRef
    synthesizer: SynthesizerRef | None = Field(description="None for the reference row (no synthesis).")
    fidelity: list[MetricResult]
    detectors: list[DetectorResult]
    seeds: dict[str, int]
    timings: dict[str, float]
    environment: EnvironmentRef
    comparable: bool = Field(description="True only when every reported standard metric used reference weights "
                                         "and the data is real.")
    comparable_notes: list[str] = Field(default_factory=list)
    created_utc: str

    @property
    def synthesizer_name(self) -> str:
        return self.synthesizer.meta.name if self.synthesizer else NO_SYNTHESIS

    @property
    def synthesizer_version(self) -> str:
        return self.synthesizer.meta.version if self.synthesizer else "0"

    def content_hash(self) -> str:
        """Identity of the scores and their inputs (not of when/where they were computed)."""
        data = self.model_dump(mode="json", exclude={"timings", "environment", "created_utc"})
        for detector in data["detectors"]:
            detector.pop("train_seconds"), detector.pop("eval_seconds")
        if data["synthesizer"]:
            data["synthesizer"]["fit"].pop("seconds")
        return canonical_hash(data)

    def relative_path(self) -> Path:
        """``<synthesizer>/<version>/<protocol slug>/<dataset>/<category>.json`` (the leaderboard layout)."""
        slug = self.protocol.id.replace("/", "--")
        return Path(self.synthesizer_name) / self.synthesizer_version / slug / self.dataset.name / f"{self.dataset.category}.json"


result_migrations = Migrations(what="benchmark result", current=RESULT_SCHEMA_VERSION)


@result_migrations.register(1)
def _result_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v1 kept fidelity as ``{metric id: value}`` with no settings or comparability per metric."""
    data = dict(data)
    fidelity = data.get("fidelity", {})
    if isinstance(fidelity, dict):
        data["fidelity"] = [
            {"id": key, "name": key, "value": value, "computed": value is not None, "comparable": False,
             "reason": "upgraded from schema v1, which did not record the metric's variant or weights"}
            for key, value in sorted(fidelity.items())
        ]
    data["comparable"] = False
    data.setdefault("comparable_notes", []).append("upgraded from result schema v1")
    return data


def load_result(path: Path) -> ResultRecord:
    data = json.loads(Path(path).read_text())
    return ResultRecord.model_validate(result_migrations.upgrade(data))


def dump_result(record: ResultRecord) -> str:
    return json.dumps(record.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def write_result(record: ResultRecord, path: Path) -> Path:
    """Atomic write: a reader never sees half a result."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, prefix=f".{path.name}.") as handle:
        handle.write(dump_result(record))
    os.replace(handle.name, path)
    return path
