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
from synthesis.generated_set import generate_set, load_samples, read_info
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
             allow_download: bool, device: str, work: Path, progress: bool) -> dict[str, Any]:
    from benchmark.metrics import DIAGNOSTIC_METRICS, FidelityInputs, GeneratedItem, RealItem, WeightsResolver, compute_fidelity

    normals = {normal.image_id: normal.image for normal in ctx.train.normals}
    generated: dict[str, list[Any]] = {}
    for sample, image, mask in load_samples(set_folder):
        generated.setdefault(sample.defect_type, []).append(
            GeneratedItem(image=image, mask=mask, caption=sample.caption, source=normals.get(sample.normal_id)))
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


def synthetic_set(ctx: CategoryContext, set_folder: Path):  # noqa: ANN201 -> SyntheticSet
    """(clean source, anomalous, mask) triples of a generated set for the detectors."""
    from benchmark.detectors.base import SyntheticSet

    normals = {normal.image_id: normal.image for normal in ctx.train.normals}
    rows = load_samples(set_folder)
    return SyntheticSet(
        clean=np.stack([normals[sample.normal_id] for sample, _, _ in rows]),
        anomalous=np.stack([image for _, image, _ in rows]),
        masks=np.stack([mask for _, _, mask in rows]),
    )


def detect(ctx: CategoryContext, detector_name: str, config: dict[str, Any], seed: int, set_folder: Path | None,
           device: str, work: Path, progress: bool, keep_model: bool) -> dict[str, Any]:
    from benchmark.detectors import create_detector
    from benchmark.evaluation import EVALUATION_SETTINGS, evaluate_detection

    detector = create_detector(detector_name, config, seed=seed, device=device)
    normals = np.stack([normal.image for normal in ctx.train.normals])
    synthetic = synthetic_set(ctx, set_folder) if set_folder is not None else None
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


def set_info(set_folder: Path):  # noqa: ANN201
    return read_info(set_folder)
