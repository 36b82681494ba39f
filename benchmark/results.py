"""The versioned result record: scores plus everything needed to trust them later.

One record per (synthesizer, protocol, dataset, category); the reference row (a detector that
uses no synthesis) is a record with ``synthesizer = None``. Every metric carries its variant
settings, the reference weights it used (with sha256) and whether it is comparable with
published values. A record holds every repetition of the protocol (each with its seeds,
generated-set hash, fidelity and detector results) and, per metric, the summary over
repetitions (mean, standard deviation, 95 % interval; method in ``uncertainty``, see
:mod:`benchmark.statistics`). Older schema versions are upgraded on read (``result_migrations``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from benchmark import strict_json
from benchmark.statistics import CONFIDENCE, INTERVAL_DESCRIPTION, INTERVAL_METHOD, Summary, summarize
from mvtec_caption.atomic import create_once, write_text
from mvtec_caption.migrations import Migrations, SchemaVersionError
from synthesis.contract import FitReport, SynthesizerMeta, canonical_hash

RESULT_SCHEMA_VERSION = 3
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

    #: How a reason starts when the metric has nothing to measure on this set (e.g. no caption states an
    #: attribute): no value, yet nothing failed, so the record's comparability does not depend on it.
    NOT_APPLICABLE: ClassVar[str] = "not applicable"

    @property
    def not_applicable(self) -> bool:
        return not self.computed and (self.reason or "").startswith(self.NOT_APPLICABLE)


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


#: The scores of :class:`DetectionScores`, in table order.
DETECTION_SCORE_NAMES = tuple(DetectionScores.model_fields)


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


class ExternalSetRef(_Model):
    """Where an imported generated set came from (``--synth folder:PATH``): the benchmark did not run its synthesizer."""

    name: str
    source: str | None = Field(description="URL or citation given by the user (--source).")
    layout: str = Field(description="The folder layout it was read in (synthesis.layouts).")
    content_sha256: str = Field(description="Hash of the imported files as found (relative path and bytes).")
    images_per_defect: dict[str, int] = Field(description="Image-mask pairs found per defect type.")
    used_per_defect: dict[str, int] = Field(description="Pairs imported per defect type (at most the protocol's count).")
    source_image_size: list[int] | None = None
    problems: list[str] = Field(default_factory=list, description="Files that could not be paired or read.")
    resize_rule: str
    clean_source: dict[str, int] = Field(description="How many samples each clean-source rule chose.")
    clean_source_rules: dict[str, str]
    synthesizer_run_by_benchmark: Literal[False] = False
    repetitions_note: str = ("an imported set is fixed: every repetition scores the same set; only the detectors' "
                             "seeds vary (base + r)")


class SynthesizerRef(_Model):
    meta: SynthesizerMeta
    config: dict[str, Any]
    config_hash: str
    fit: FitReport
    generated_set_sha256: str
    n_generated_per_defect: int
    n_generated: int
    external: ExternalSetRef | None = Field(default=None, description="Set for imported sets only.")


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


class ContaminationMatch(_Model):
    generated: str = Field(description="The generated image (file in the set).")
    test: str = Field(description="The test image (<defect type>/<image id>).")
    distance: float
    nearest_training_distance: float | None = Field(
        default=None, description="Distance of the generated image to the nearest image the synthesizer was given.")


class ContaminationResult(_Model):
    """The contamination check of one generated set (:mod:`benchmark.contamination`)."""

    settings: dict[str, Any]
    threshold: float
    n_generated: int
    n_test: int
    matches: list[ContaminationMatch] = Field(description="Generated images within the threshold of a test image.")
    closest: ContaminationMatch | None = Field(description="The closest pair found (how far the set is from a match).")

    @property
    def contaminated(self) -> bool:
        return bool(self.matches)


class Repetition(_Model):
    """One run of every random step of the cell, with its own seeds."""

    index: int = Field(description="0-based; seeds follow the protocol's seed_rule.")
    seeds: dict[str, int] = Field(description="fit (when the synthesizer has a seed), generation, detector.")
    synthesizer_config_hash: str | None = None
    generated_set_sha256: str | None = None
    n_generated: int | None = None
    n_redone: int | None = Field(None, description="Generated samples redone with a derived seed to reach the "
                                 "synthesizer's label floor (None: recorded before redoing existed).")
    n_failed: int | None = Field(None, description="Samples still below the label floor after every try, left out "
                                 "of the generated set (n_generated counts the rest).")
    fidelity: list[MetricResult]
    detectors: list[DetectorResult]
    timings: dict[str, float] = Field(default_factory=dict)
    contamination: ContaminationResult | None = Field(default=None, description="Contamination check of the "
                                                      "generated set (None for the reference row and older records).")


class DetectorSummary(_Model):
    overall: dict[str, Summary] = Field(default_factory=dict)
    mean_over_defects: dict[str, Summary] = Field(default_factory=dict)
    per_defect: dict[str, dict[str, Summary]] = Field(default_factory=dict)


class RecordSummary(_Model):
    """Per metric over the repetitions: values, mean, std and interval (see ``ResultRecord.uncertainty``)."""

    fidelity: dict[str, Summary] = Field(default_factory=dict)
    detectors: dict[str, DetectorSummary] = Field(default_factory=dict)


class UncertaintyRef(_Model):
    method: str = INTERVAL_METHOD
    confidence: float = CONFIDENCE
    description: str = INTERVAL_DESCRIPTION
    repetitions: int
    protocol_repetitions: int


def _scores(scores: DetectionScores) -> dict[str, float]:
    return {name: value for name, value in scores.model_dump().items() if value is not None}


def _summaries(per_repetition: list[dict[str, float]]) -> dict[str, Summary]:
    """Summaries of the keys every repetition has (a score missing in one repetition is not summarized)."""
    keys = set.intersection(*(set(values) for values in per_repetition)) if per_repetition else set()
    ordered = [k for k in (*DETECTION_SCORE_NAMES, *sorted(keys)) if k in keys]
    return {key: summarize([values[key] for values in per_repetition]) for key in dict.fromkeys(ordered)}


def summarize_repetitions(repetitions: list[Repetition]) -> RecordSummary:
    """The summary of every metric present in all repetitions."""
    fidelity = _summaries([{m.id: m.value for m in rep.fidelity if m.computed and m.value is not None}
                           for rep in repetitions])
    detectors: dict[str, DetectorSummary] = {}
    names = [d.name for d in repetitions[0].detectors] if repetitions else []
    for name in names:
        results = [next((d for d in rep.detectors if d.name == name), None) for rep in repetitions]
        if any(result is None for result in results):
            continue
        defects = sorted(set.intersection(*(set(r.per_defect) for r in results)))
        detectors[name] = DetectorSummary(
            overall=_summaries([_scores(r.overall) for r in results]),
            mean_over_defects=_summaries([_scores(r.mean_over_defects) for r in results]),
            per_defect={defect: _summaries([_scores(r.per_defect[defect]) for r in results]) for defect in defects},
        )
    return RecordSummary(fidelity=fidelity, detectors=detectors)


class ResultRecord(_Model):
    schema_version: Literal[3] = RESULT_SCHEMA_VERSION
    protocol: ProtocolRef
    dataset: DatasetRef
    synthesizer: SynthesizerRef | None = Field(description="None for the reference row (no synthesis). Its fit, "
                                                "config and generated set are those of the first repetition.")
    repetitions: list[Repetition] = Field(min_length=1)
    summary: RecordSummary
    uncertainty: UncertaintyRef
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

    @property
    def first(self) -> Repetition:
        return self.repetitions[0]

    @property
    def fidelity(self) -> list[MetricResult]:
        """The first repetition's metric results (their settings, weights and comparability are the same in all)."""
        return self.first.fidelity

    @property
    def detectors(self) -> list[DetectorResult]:
        """The first repetition's detector results (configs and weights; scores: use :meth:`detection`)."""
        return self.first.detectors

    @property
    def seeds(self) -> list[dict[str, int]]:
        return [rep.seeds for rep in self.repetitions]

    def detection(self, detector: str, score: str, scope: str = "overall") -> Summary | None:
        """A detector's score over the repetitions (scope ``overall``, ``mean_over_defects`` or a defect type)."""
        summary = self.summary.detectors.get(detector)
        if summary is None:
            return None
        if scope in ("overall", "mean_over_defects"):
            return getattr(summary, scope).get(score)
        return summary.per_defect.get(scope, {}).get(score)

    def classification_accuracy(self, detector: str) -> Summary | None:
        """A classifier's mean per-type accuracy over the repetitions (None unless computed in every one)."""
        values = []
        for repetition in self.repetitions:
            result = next((d for d in repetition.detectors if d.name == detector), None)
            classification = result.classification if result else None
            if classification is None or classification.mean_accuracy is None:
                return None
            values.append(classification.mean_accuracy)
        return summarize(values)

    def metric(self, metric_id: str) -> Summary | None:
        """A fidelity metric over the repetitions (None when not computed)."""
        return self.summary.fidelity.get(metric_id)

    def content_hash(self) -> str:
        """Identity of the scores and their inputs (not of when/where they were computed)."""
        data = self.model_dump(mode="json", exclude={"timings", "environment", "created_utc"})
        for repetition in data["repetitions"]:
            repetition.pop("timings")
            if repetition.get("contamination") is None:  # fields added later: absent ones keep older hashes
                repetition.pop("contamination", None)
            for detector in repetition["detectors"]:
                detector.pop("train_seconds"), detector.pop("eval_seconds")
        if data["synthesizer"]:
            data["synthesizer"]["fit"].pop("seconds")
            if data["synthesizer"].get("external") is None:
                data["synthesizer"].pop("external", None)
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


@result_migrations.register(2)
def _result_v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    """v2 held one run per record (``fidelity``, ``detectors``, ``seeds`` at the top): it becomes repetition 0."""
    data = dict(data)
    seeds = data.pop("seeds", {})
    synthesizer = data.get("synthesizer") or {}
    repetition = Repetition.model_validate({
        "index": 0, "seeds": seeds, "synthesizer_config_hash": synthesizer.get("config_hash"),
        "generated_set_sha256": synthesizer.get("generated_set_sha256"), "n_generated": synthesizer.get("n_generated"),
        "fidelity": data.pop("fidelity", []), "detectors": data.pop("detectors", []),
    })
    data["repetitions"] = [repetition.model_dump(mode="json")]
    data["summary"] = summarize_repetitions([repetition]).model_dump(mode="json")
    data["uncertainty"] = UncertaintyRef(repetitions=1, protocol_repetitions=1).model_dump(mode="json")
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


def write_result_once(record: ResultRecord, path: Path) -> bool:
    """Write ``record`` unless ``path`` already holds one with the same content hash; True when written.

    The file is created with an atomic link, so of two processes finishing the same run at once
    exactly one writes it and the other finds the identical record; a record with other scores
    (after ``--overwrite``) replaces it.
    """
    path = Path(path)
    text = dump_result(record)
    if create_once(path, text.encode("utf-8")):
        return True
    try:
        same = load_result(path).content_hash() == record.content_hash()
    except (OSError, ValueError):
        same = False
    if same:
        return False
    write_text(path, text)
    return True


def write_result(record: ResultRecord, path: Path) -> Path:
    """Atomic write: a reader never sees half a result."""
    return write_text(path, dump_result(record))
