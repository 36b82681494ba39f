"""The work of each job kind. Each function reads its inputs, writes into its work folder and
returns a small JSON-able summary (paths relative to the job folder)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.context import CategoryContext
from benchmark.results import DetectorResult
from synthesis import registry
from synthesis.checkpoint import load_checkpoint, save_checkpoint
from synthesis.generated_set import generate_set, load_samples, read_info, require_intact
from synthesis.guard import forbid_reading


def fit_is_seeded(name: str) -> bool:
    """Whether a synthesizer's fit draws random numbers from a ``seed`` in its config (AXF's training does;
    the baselines learn nothing random)."""
    return "seed" in registry.entry(name).load_class().Config.model_fields


def version_params(name: str) -> dict[str, str]:
    """The synthesizer's code version for its fit job's key: a new version (changed outputs) never reuses a cached
    fit. Version "1" is left out, as it was before versions were keyed, so existing caches stay valid."""
    version = registry.entry(name).load_class().version
    return {} if version == "1" else {"version": version}


def planner_params() -> dict[str, int]:
    """The plan's version for a generate job's key (``synthesis.plan.PLANNER_VERSION``): sets planned by other rules
    (masks, captions) are never reused. Version 1 is left out, as it was before the plan was versioned."""
    from synthesis.plan import PLANNER_VERSION

    return {} if PLANNER_VERSION == 1 else {"planner": PLANNER_VERSION}


def synthesizer_config(ctx: CategoryContext, name: str, seed: int | None = None) -> dict[str, Any]:
    """The protocol's pinned config, with the repetition's fit seed when the synthesizer has one."""
    config = ctx.protocol.synthesizer_config(name, registry.entry(name).ablation_of)
    if seed is not None and fit_is_seeded(name):
        config["seed"] = seed
    return config


def fit(ctx: CategoryContext, name: str, config: dict[str, Any], device: str, work: Path, progress: bool) -> dict[str, Any]:
    synthesizer = registry.create(name, config, device=device)
    synthesizer.work_dir = work / "training_state"  # an interrupted fit resumes from its snapshots
    with forbid_reading(ctx.forbidden_paths):
        report = synthesizer.fit(ctx.train, progress=progress)
    save_checkpoint(synthesizer, work / "checkpoint")
    return {"checkpoint": "checkpoint", "config_hash": synthesizer.config_hash, "seconds": report.seconds}


def generate(ctx: CategoryContext, name: str, fit_folder: Path, seed: int, device: str, work: Path,
             progress: bool) -> dict[str, Any]:
    from synthesis.grid import write_grid

    synthesizer = load_checkpoint(fit_folder / "checkpoint", device=device, expect_name=name)
    started = time.perf_counter()
    info = generate_set(synthesizer, ctx.train, work / "samples", n_per_defect=ctx.protocol.n_generated_per_defect,
                        seed=seed, forbidden_paths=ctx.forbidden_paths, progress=progress)
    seconds = time.perf_counter() - started
    write_grid(work / "samples", work / "grid.png", train=ctx.train)
    return {"samples": "samples", "grid": "grid.png", "set_sha256": info.set_sha256, "n": info.samples, "seconds": seconds,
            "redone": info.redone, "failed": len(info.failed)}


def fidelity(ctx: CategoryContext, set_folder: Path, metric_ids: list[str], weights_dir: str | None,
             allow_download: bool, device: str, work: Path, progress: bool, *,
             expected_set_sha256: str | None = None) -> dict[str, Any]:
    from benchmark.metrics import DIAGNOSTIC_METRICS, FidelityInputs, GeneratedItem, RealItem, WeightsResolver, compute_fidelity

    require_intact(set_folder, expected_set_sha256)  # never score a set that differs from the one recorded
    normals = {normal.image_id: normal.image for normal in ctx.train.normals}
    generated: dict[str, list[Any]] = {}
    for sample, image, mask in load_samples(set_folder):
        generated.setdefault(sample.defect_type, []).append(GeneratedItem(image=image, mask=mask, caption=sample.caption,
                                                                          normal=normals.get(sample.normal_id)))
    real_train: dict[str, list[Any]] = {}
    for anomaly in ctx.train.anomalies:
        real_train.setdefault(anomaly.defect_type, []).append(RealItem(image=anomaly.image, mask=anomaly.mask, caption=anomaly.caption))
    real_test: dict[str, list[Any]] = {}
    for image, mask, defect, caption in zip(ctx.test.images, ctx.test.masks, ctx.test.defect_types, ctx.test.captions):
        if defect != "good":
            real_test.setdefault(defect, []).append(RealItem(image=image, mask=mask, caption=caption or ""))
    inputs = FidelityInputs(generated=generated, real_train=real_train, real_test=real_test, image_size=ctx.protocol.image_size)
    resolver = WeightsResolver(weights_dir=Path(weights_dir) if weights_dir else None, allow_download=allow_download)
    started = time.perf_counter()
    metric_ids = [*metric_ids, *(m for m in DIAGNOSTIC_METRICS if m not in metric_ids)]
    results = compute_fidelity(metric_ids, inputs, resolver, device=device, progress=progress,
                               cache_dir=work.parent.parent / "features")
    return {"metrics": [r.model_dump(mode="json") for r in results], "seconds": time.perf_counter() - started}


def detector_config(protocol, name: str) -> dict[str, Any]:  # noqa: ANN001
    """The protocol's pinned config of a detector; a plugin detector the protocol does not pin gets only the
    protocol's image size (and its records are marked not comparable)."""
    return dict(protocol.detectors.get(name, {"image_size": protocol.image_size}))


def external_content_hash(request, category: str) -> str:  # noqa: ANN001
    from benchmark.external import scan
    from synthesis.importer import content_hash

    return content_hash(scan(request, category))


def plan_import(request, content_sha256: str, base: dict[str, Any], ctx: CategoryContext):  # noqa: ANN001, ANN201
    """The ``fit`` (describe) and ``generate`` (import) jobs of an imported set: keyed by its content, not its path,
    and by no seed (the same jobs serve every repetition)."""
    from benchmark.external import config_hash
    from benchmark.store import Job
    from synthesis.importer import IMPORT_VERSION

    fit = Job(kind="fit", label=f"describe {request.name} {ctx.category} (imported set)",
              params={**base, "synth": request.name, "imported": {"config_hash": config_hash(request, content_sha256),
                                                                  "layout": request.layout},
                      "train_split": ctx.train.split_id})
    generate = Job(kind="generate", label=f"import {request.name} {ctx.category}", deps=(fit.key,),
                   params={**base, "synth": request.name, "n": ctx.protocol.n_generated_per_defect,
                           "import_version": IMPORT_VERSION})
    return fit, generate


def contamination_settings() -> dict[str, Any]:
    from benchmark.contamination import SETTINGS

    return dict(SETTINGS)


def contamination(ctx: CategoryContext, set_folder: Path, work: Path, *,
                  expected_set_sha256: str | None = None) -> dict[str, Any]:
    """Compare the generated set with the test images, here in the benchmark's process (the test pixels are the
    context's, decoded when the category was loaded; no synthesizer runs during the check)."""
    from benchmark import contamination as check
    from benchmark.context import test_image_names

    require_intact(set_folder, expected_set_sha256)
    started = time.perf_counter()
    rows = load_samples(set_folder)
    training = np.stack([n.image for n in ctx.train.normals] + [a.image for a in ctx.train.anomalies])
    result = check.check(np.stack([image for _, image, _ in rows]), [sample.image_file for sample, _, _ in rows],
                         ctx.test.images, test_image_names(ctx), training)
    return {"result": result.model_dump(mode="json"), "seconds": time.perf_counter() - started}


def contamination_notes(repetitions) -> list[str]:  # noqa: ANN001
    """One note per contaminated set, naming its matching pairs (the record lists them in full too)."""
    notes, seen = [], set()
    for repetition in repetitions:
        result = repetition.contamination
        if result is None or not result.matches or repetition.generated_set_sha256 in seen:
            continue
        seen.add(repetition.generated_set_sha256)
        pairs = ", ".join(f"{m.generated} ~ test {m.test}" for m in result.matches[:10])
        more = f" and {len(result.matches) - 10} more" if len(result.matches) > 10 else ""
        notes.append(f"contaminated: the generated set of repetition {repetition.index} holds {len(result.matches)} "
                     f"near-copies of test images ({pairs}{more})")
    return notes


def synthetic_set(ctx: CategoryContext, set_folder: Path, expected_sha256: str | None = None):  # noqa: ANN201 -> SyntheticSet
    """(clean source, anomalous, mask) triples of a generated set for the detectors, once its files are verified."""
    from benchmark.detectors.base import SyntheticSet

    require_intact(set_folder, expected_sha256)
    normals = {normal.image_id: normal.image for normal in ctx.train.normals}
    rows = load_samples(set_folder)
    return SyntheticSet(
        clean=np.stack([normals[sample.normal_id] for sample, _, _ in rows]),
        anomalous=np.stack([image for _, image, _ in rows]),
        masks=np.stack([mask for _, _, mask in rows]),
        defect_types=np.array([sample.defect_type for sample, _, _ in rows]),
    )


def detect(ctx: CategoryContext, detector_name: str, config: dict[str, Any], seed: int, set_folder: Path | None,
           device: str, work: Path, progress: bool, keep_model: bool, weights_dir: str | None = None,
           allow_download: bool = True, *, expected_set_sha256: str | None = None) -> dict[str, Any]:
    from benchmark.detectors import create_detector
    from benchmark.detectors.classifier import DefectTypeClassifier
    from benchmark.evaluation import EVALUATION_SETTINGS, evaluate_detection

    detector = create_detector(detector_name, config, seed=seed, device=device)
    normals = np.stack([normal.image for normal in ctx.train.normals])
    synthetic = synthetic_set(ctx, set_folder, expected_set_sha256) if set_folder is not None else None
    if isinstance(detector, DefectTypeClassifier):
        return classify(ctx, detector, normals, synthetic, work, progress, keep_model, weights_dir, allow_download)
    started = time.perf_counter()
    detector.fit(normals, synthetic, progress=progress)
    train_seconds = time.perf_counter() - started
    if keep_model:
        detector.save(work / "model")
    started = time.perf_counter()
    scores, maps = detector.predict(ctx.test.images)
    eval_seconds = time.perf_counter() - started
    overall, per_defect, mean = evaluate_detection(scores, maps, ctx.test.labels, ctx.test.masks, ctx.test.defect_types)
    result = DetectorResult(
        name=detector_name, config=detector.config.model_dump(mode="json"), config_hash=detector.config_hash,
        uses_synthesis=detector.uses_synthesis, seed=seed, overall=overall, per_defect=per_defect, mean_over_defects=mean,
        weights=detector.weights(), evaluation=dict(EVALUATION_SETTINGS), n_train_normal=len(normals), n_train_synthetic=0 if synthetic is None else len(synthetic.masks),
        n_test_good=int((ctx.test.labels == 0).sum()), n_test_anomalous=int((ctx.test.labels == 1).sum()),
        train_seconds=round(train_seconds, 3), eval_seconds=round(eval_seconds, 3),
    )
    np.savez_compressed(work / "predictions.npz", scores=scores.astype(np.float32), maps=maps.astype(np.float16))
    return {"result": result.model_dump(mode="json")}


def classify(ctx: CategoryContext, classifier: Any, normals: np.ndarray, synthetic: Any, work: Path, progress: bool,
             keep_model: bool, weights_dir: str | None, allow_download: bool) -> dict[str, Any]:
    """The defect-type classifier's job: train on the generated set, test on the real test anomalies.

    Its DetectorResult carries the ``classification`` and empty detection scores; the confusion-matrix
    PNG is written into the job folder.
    """
    from benchmark.classification import evaluate_classifier
    from benchmark.metrics.weights import WeightsResolver
    from benchmark.results import DetectionScores

    classifier.resolver = WeightsResolver(weights_dir=Path(weights_dir) if weights_dir else None,
                                          allow_download=allow_download)
    synthetic = classifier._require_synthetic(synthetic)
    started = time.perf_counter()
    classification = evaluate_classifier(classifier, normals, synthetic, ctx.test.images, ctx.test.defect_types, work,
                                         progress, title=f"{ctx.category}: {classifier.name}")
    seconds = time.perf_counter() - started
    if keep_model and classifier.fitted:
        classifier.save(work / "model")
    result = DetectorResult(
        name=classifier.name, config=classifier.config.model_dump(mode="json"), config_hash=classifier.config_hash,
        uses_synthesis=True, seed=classifier.seed, overall=DetectionScores(), per_defect={},
        mean_over_defects=DetectionScores(), weights=classifier.weights(),
        evaluation={"task": "defect-type classification: trained on the generated anomalies only, tested on the test "
                            "split's real anomalies", "scores": "scikit-learn balanced_accuracy_score (mean accuracy), "
                            "accuracy_score, f1_score(average='macro'), confusion_matrix"},
        n_train_normal=0, n_train_synthetic=len(synthetic), n_test_good=0,
        n_test_anomalous=sum(t != "good" for t in ctx.test.defect_types),
        train_seconds=round(seconds, 3), eval_seconds=0.0, classification=classification,
    )
    return {"result": result.model_dump(mode="json"), "plot": classification.plot}


def set_info(set_folder: Path):  # noqa: ANN201
    return read_info(set_folder)
