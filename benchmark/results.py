"""The versioned result record: scores plus everything needed to trust them later.

One record per (synthesizer, protocol, dataset, category); the reference row (a detector that
uses no synthesis) is a record with ``synthesizer = None``. Every metric carries its variant
settings, the reference weights it used (with sha256) and whether it is comparable with
published values. Older schema versions are upgraded on read (``result_migrations``).
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from benchmark import strict_json
from mvtec_caption.migrations import Migrations, SchemaVersionError
from synthesis.contract import FitReport, SynthesizerMeta, canonical_hash

RESULT_SCHEMA_VERSION = 2
NO_SYNTHESIS = "no-synthesis"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class ScoreRange:
    """The values a score can take by its definition; anything else is a bug or a forgery.

    Each metric declares its range where it is defined (detection scores below, fidelity metrics
    in their ``MetricSpec``), so the leaderboard checks every number against what the metric
    *can* produce instead of keeping its own list. ``TOLERANCE`` absorbs float rounding of the
    implementations (an AUROC summed in float32 may end a few ulps above 1).
    """

    low: float
    high: float  # math.inf when the definition gives no upper bound
    why: str
    TOLERANCE: ClassVar[float] = 1e-6

    def text(self) -> str:
        high = "inf" if math.isinf(self.high) else f"{self.high:g}"
        return f"[{self.low:g}, {high}]"

    def problem(self, value: float) -> str | None:
        """Why ``value`` cannot be a value of this score (None when it can)."""
        if not math.isfinite(value):
            return f"{value} is not a finite number"
        if value < self.low - self.TOLERANCE or value > self.high + self.TOLERANCE:
            return f"{value} is outside {self.text()} ({self.why})"
        return None


#: Every detection score (AUROC, AP, F1-max, AU-PRO normalised by its FPR limit) is in [0, 1].
UNIT_INTERVAL = ScoreRange(0.0, 1.0, "an area under a curve, a precision or an F1 score, normalised to [0, 1]")


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
    """The detection scores of one set of test images (see :mod:`benchmark.evaluation`); None: single class."""

    RANGE: ClassVar[ScoreRange] = UNIT_INTERVAL

    image_auroc: float | None = None
    image_ap: float | None = None
    image_f1max: float | None = None
    pixel_auroc: float | None = None
    pixel_ap: float | None = None
    pixel_f1max: float | None = None
    aupro: float | None = None


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


class ResultFileError(ValueError):
    """A result file that cannot be read as a result record; the message names the file."""


def load_result(path: Path) -> ResultRecord:
    """Read one record (older schema versions upgraded); any problem is a :class:`ResultFileError` naming the file."""
    path = Path(path)
    try:
        data = strict_json.loads(path.read_bytes())
    except OSError as err:
        raise ResultFileError(f"{path}: cannot read it ({err.strerror or err})") from err
    except UnicodeDecodeError as err:
        raise ResultFileError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    except ValueError as err:  # JSONDecodeError, NonFiniteNumberError
        raise ResultFileError(f"{path}: not a valid JSON result record ({err})") from err
    if not isinstance(data, dict):
        raise ResultFileError(f"{path}: holds a JSON {type(data).__name__}, expected a result record (an object)")
    try:
        return ResultRecord.model_validate(result_migrations.upgrade(data))
    except SchemaVersionError as err:
        raise ResultFileError(f"{path}: {err}") from err
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in err.errors()[:5])
        raise ResultFileError(f"{path}: does not match the result schema ({problems})") from err


def dump_result(record: ResultRecord) -> str:
    """Standard JSON only: a non-finite number is an error naming where it is, never a NaN token."""
    try:
        return strict_json.dumps(record.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
    except strict_json.NonFiniteNumberError as err:
        raise strict_json.NonFiniteNumberError(f"result {record.relative_path()} {err}") from err


def write_result(record: ResultRecord, path: Path) -> Path:
    """Atomic write: a reader never sees half a result."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, prefix=f".{path.name}.") as handle:
        handle.write(dump_result(record))
    os.replace(handle.name, path)
    return path
