"""Plan a benchmark run as content-addressed jobs, execute them locally, assemble result records.

Per category: ``fit`` (synthesizer on the few-shot split) -> ``generate`` (the protocol's number
of images per defect type) -> ``fidelity`` (metrics) and ``detect`` (one job per detector that
uses synthesis); detectors that use no synthesis run once per category as the reference row.
Each job's output is cached by key (see :mod:`benchmark.store`), so re-running a command
resumes; ``--overwrite`` drops the cached outputs of the planned jobs first.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from tqdm.auto import tqdm

from benchmark import stages
from benchmark.context import CategoryContext, load_category
from benchmark.environment import collect_environment
from benchmark.protocols import Protocol
from benchmark.results import (
    DatasetRef,
    DetectorResult,
    EnvironmentRef,
    MetricResult,
    ProtocolRef,
    ResultRecord,
    SynthesizerRef,
    write_result,
)
from benchmark.store import Job, JobStore
from synthesis import registry
from synthesis.checkpoint import read_checkpoint_info

logger = logging.getLogger("benchmark")


class RunRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    protocol_id: str
    subset: str
    data_root: str | None
    caption_source: str | None
    categories: list[str]
    synthesizers: list[str]
    detectors: list[str]
    generation_seed: int
    detector_seed: int
    device: str = "cpu"
    out: str
    overwrite: bool = False
    weights_dir: str | None = None
    allow_download: bool = True
    keep_models: bool = True
    progress: bool = True
    extra_metrics: list[str] = []  # fidelity metrics computed beside the protocol's (recorded, not part of the protocol)


@dataclass
class CategoryPlan:
    context: CategoryContext
    fits: dict[str, Job] = field(default_factory=dict)
    generates: dict[str, Job] = field(default_factory=dict)
    fidelities: dict[str, Job] = field(default_factory=dict)
    detections: dict[tuple[str, str], Job] = field(default_factory=dict)  # (synth or "", detector) -> job

    def jobs(self) -> list[Job]:
        return [*self.fits.values(), *self.generates.values(), *self.fidelities.values(), *self.detections.values()]


def _device_kind(device: str) -> str:
    return "cuda" if device.startswith("cuda") else device


def uses_synthesis(detector: str) -> bool:
    from benchmark.detectors import DETECTORS

    return bool(DETECTORS[detector].uses_synthesis)


def plan_category(request: RunRequest, protocol: Protocol, context: CategoryContext) -> CategoryPlan:
    plan = CategoryPlan(context)
    base = {"protocol": protocol.id, "protocol_hash": protocol.config_hash, "dataset": context.subset,
            "category": context.category, "device": _device_kind(request.device)}
    for name in request.synthesizers:
        config = stages.synthesizer_config(context, name)
        fit = Job(kind="fit", label=f"fit {name} {context.category}",
                  params={**base, "synth": name, "config": config, "train_split": context.train.split_id})
        generate = Job(kind="generate", label=f"generate {name} {context.category}", deps=(fit.key,),
                       params={**base, "synth": name, "n": protocol.n_generated_per_defect, "seed": request.generation_seed})
        fidelity = Job(kind="fidelity", label=f"fidelity {name} {context.category}", deps=(generate.key,),
                       params={**base, "metrics": fidelity_metrics(request, protocol), "weights_dir": request.weights_dir,
                               "allow_download": request.allow_download, "test": context.test.sha256})
        plan.fits[name], plan.generates[name], plan.fidelities[name] = fit, generate, fidelity
        for detector in request.detectors:
            if uses_synthesis(detector):
                plan.detections[(name, detector)] = Job(
                    kind="detect", label=f"detect {detector} {name} {context.category}", deps=(generate.key,),
                    params={**base, "detector": detector, "config": protocol.detectors.get(detector, {}),
                            "seed": request.detector_seed, "split": context.split_sha256,
                            **_weights_params(detector, request)})
    for detector in request.detectors:
        if not uses_synthesis(detector):
            plan.detections[("", detector)] = Job(
                kind="detect", label=f"detect {detector} (no synthesis) {context.category}",
                params={**base, "detector": detector, "config": protocol.detectors.get(detector, {}),
                        "seed": request.detector_seed, "split": context.split_sha256})
    return plan


def fidelity_metrics(request: RunRequest, protocol: Protocol) -> list[str]:
    """The protocol's fidelity metrics, then the request's extra ones (the job key changes only when there are some)."""
    return protocol.fidelity_metrics + [m for m in request.extra_metrics if m not in protocol.fidelity_metrics]


def _weights_params(detector: str, request: RunRequest) -> dict[str, Any]:
    """Where a detector with pretrained weights from the resolver finds them (others: nothing, keys unchanged)."""
    from benchmark.detectors import detector_class

    if not getattr(detector_class(detector), "weights_from_resolver", False):
        return {}
    return {"weights_dir": request.weights_dir, "allow_download": request.allow_download}


class Executor:
    """Runs jobs in dependency order on this machine, skipping those already in the store."""

    def __init__(self, request: RunRequest, store: JobStore):
        self.request = request
        self.store = store

    def run(self, job: Job, work: Any) -> dict[str, Any]:
        if self.store.is_done(job):
            logger.info("cached: %s (%s)", job.label, job.key)
            return self.store.output(job)
        logger.info("running: %s (%s)", job.label, job.key)
        folder = self.store.work_folder(job)
        output = work(folder)
        self.store.complete(job, output)
        return output

    def execute(self, plan: CategoryPlan, bar: tqdm) -> None:
        ctx, request, store = plan.context, self.request, self.store
        for name, fit_job in plan.fits.items():
            self.run(fit_job, lambda work, n=name: stages.fit(ctx, n, request.device, work, request.progress))
            bar.update(1)
            generate_job = plan.generates[name]
            fit_folder = store.folder(fit_job)
            self.run(generate_job, lambda work, n=name: stages.generate(
                ctx, n, fit_folder, request.generation_seed, request.device, work, request.progress))
            bar.update(1)
            set_folder = store.folder(generate_job) / "samples"
            self.run(plan.fidelities[name], lambda work: stages.fidelity(
                ctx, set_folder, plan.fidelities[name].params["metrics"], request.weights_dir, request.allow_download,
                request.device, work, request.progress))
            bar.update(1)
        for (name, detector), job in plan.detections.items():
            set_folder = store.folder(plan.generates[name]) / "samples" if name else None
            self.run(job, lambda work, d=detector, s=set_folder, j=job: stages.detect(
                ctx, d, j.params["config"], request.detector_seed, s, request.device, work, request.progress,
                request.keep_models, request.weights_dir, request.allow_download))
            bar.update(1)


def _comparability(ctx: CategoryContext, fidelity: list[MetricResult]) -> tuple[bool, list[str]]:
    notes = []
    if ctx.is_demo:
        notes.append("demo data (generated, not MVTec): never comparable")
    if ctx.protocol.demo_only:
        notes.append(f"protocol {ctx.protocol.id} is for demos and tests only")
    standard = set(ctx.protocol.fidelity_metrics)
    for metric in fidelity:
        if metric.id in standard and not metric.computed:
            notes.append(f"{metric.id} not computed: {metric.reason}")
        elif metric.id in standard and not metric.comparable:
            notes.append(f"{metric.id} not comparable: {metric.reason}")
    return not notes, notes


def _timings(*outputs: dict[str, Any], detectors: list[DetectorResult]) -> dict[str, float]:
    timings = {}
    for stage, output in zip(("fit", "generate", "fidelity"), outputs):
        if output and "seconds" in output:
            timings[stage] = round(float(output["seconds"]), 3)
    for detector in detectors:
        timings[f"detect_{detector.name}_train"] = detector.train_seconds
        timings[f"detect_{detector.name}_eval"] = detector.eval_seconds
    return timings


def assemble(request: RunRequest, plan: CategoryPlan, store: JobStore, synth: str | None,
             environment: EnvironmentRef) -> ResultRecord:
    ctx = plan.context
    protocol = ctx.protocol
    keys = [k for k in plan.detections if k[0] == (synth or "")]
    detectors = [DetectorResult.model_validate(store.output(plan.detections[k])["result"]) for k in keys]
    synthesizer_ref, fidelity, outputs = None, [], ({}, {}, {})
    if synth:
        fit_out, gen_out, fid_out = (store.output(plan.fits[synth]), store.output(plan.generates[synth]),
                                     store.output(plan.fidelities[synth]))
        outputs = (fit_out, gen_out, fid_out)
        checkpoint = read_checkpoint_info(store.folder(plan.fits[synth]) / "checkpoint")
        synthesizer_ref = SynthesizerRef(
            meta=checkpoint.meta, config=checkpoint.config, config_hash=checkpoint.config_hash, fit=checkpoint.fit,
            generated_set_sha256=gen_out["set_sha256"], n_generated_per_defect=protocol.n_generated_per_defect,
            n_generated=gen_out["n"],
        )
        fidelity = [MetricResult.model_validate(m) for m in fid_out["metrics"]]
    comparable, notes = _comparability(ctx, fidelity)
    return ResultRecord(
        protocol=ProtocolRef(id=protocol.id, config_hash=protocol.config_hash, title=protocol.title,
                             hardware=protocol.hardware, settings=protocol.model_dump(mode="json")),
        dataset=DatasetRef(name=ctx.subset, category=ctx.category, is_demo=ctx.is_demo,
                           caption_source_kind=ctx.caption_source_kind, captions_sha256=ctx.captions_sha256,
                           split_sha256=ctx.split_sha256, split=ctx.split.summary(), good_test_source=ctx.split.good_test_source),
        synthesizer=synthesizer_ref,
        fidelity=fidelity,
        detectors=detectors,
        seeds={"generation": request.generation_seed, "detector": request.detector_seed},
        timings=_timings(*outputs, detectors=detectors),
        environment=environment,
        comparable=comparable,
        comparable_notes=notes,
        created_utc=dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
    )


def run_benchmark(request: RunRequest, protocol: Protocol) -> list[tuple[ResultRecord, Path]]:
    """Execute every job of the request and write one result record per (synthesizer | reference, category)."""
    out = Path(request.out)
    store = JobStore(out)
    environment = collect_environment(request.device)  # the code as it is when the run starts
    written: list[tuple[ResultRecord, Path]] = []
    for category in request.categories:
        ctx = load_category(protocol, request.subset, category, request.data_root, request.caption_source)
        plan = plan_category(request, protocol, ctx)
        logger.info("%s/%s: split %s", request.subset, category, ctx.split.summary())
        if request.overwrite:
            for job in plan.jobs():
                store.forget(job)
        with tqdm(total=len(plan.jobs()), desc=f"{category} jobs", unit="job", disable=not request.progress,
                  position=0) as bar:
            Executor(request, store).execute(plan, bar)
        names: list[str | None] = list(request.synthesizers)
        if any(not k[0] for k in plan.detections):
            names.append(None)
        for name in names:
            record = assemble(request, plan, store, name, environment)
            path = write_result(record, out / "results" / record.relative_path())
            if name:
                _copy_grid(store.folder(plan.generates[name]) / "grid.png", path.with_suffix(".grid.png"))
            written.append((record, path))
            logger.info("wrote %s", path)
    return written


def _copy_grid(source: Path, target: Path) -> None:
    if source.is_file():
        target.write_bytes(source.read_bytes())


def default_out() -> str:
    return os.environ.get("MVTEC_BENCH_OUT", "runs/benchmark")
