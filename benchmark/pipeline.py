"""Plan a benchmark run as content-addressed jobs, execute them locally, assemble result records.

Per category: ``fit`` (synthesizer on the few-shot split) -> ``generate`` (the protocol's number
of images per defect type) -> ``contamination`` (the set against the test images), ``fidelity``
(metrics) and ``detect`` (one job per detector that uses synthesis); detectors that use no
synthesis run once per category as the reference row. An imported set (``folder:PATH``, see
:mod:`benchmark.external`) has a ``fit`` that only describes it and a ``generate`` that imports it.
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

from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from benchmark import external, stages
from benchmark.context import CategoryContext, load_category
from benchmark.external import ExternalSetRequest
from benchmark.environment import collect_environment
from benchmark.protocols import Protocol, get_protocol
from benchmark.results import (
    NO_SYNTHESIS,
    ContaminationResult,
    DatasetRef,
    DetectorResult,
    EnvironmentRef,
    MetricResult,
    ProtocolRef,
    Repetition,
    ResultRecord,
    SynthesizerRef,
    UncertaintyRef,
    summarize_repetitions,
    write_result_once,
)
from benchmark.store import Job, JobStore
from mvtec_caption.atomic import write_bytes
from mvtec_caption.loader import DataSource, locate_dataset
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
    generation_seed: int = Field(description="Base seed of generation (and of the fit); repetition r adds r.")
    detector_seed: int = Field(description="Base seed of detector training; repetition r adds r.")
    repetitions: int = Field(ge=1, description="Repetitions to run (the protocol's unless asked otherwise).")
    device: str = "cpu"
    out: str
    overwrite: bool = False
    weights_dir: str | None = None
    allow_download: bool = True
    keep_models: bool = True
    progress: bool = True
    extra_metrics: list[str] = []  # fidelity metrics computed beside the protocol's (recorded, not part of the protocol)
    external: dict[str, ExternalSetRequest] = Field(
        default_factory=dict, description="The synthesizers that are imported sets (folder:PATH), by spec.")

    @property
    def protocol(self) -> Protocol:
        """The run's protocol: the one handle every stage uses (the id is what a serialised request carries)."""
        return get_protocol(self.protocol_id)


@dataclass(frozen=True)
class RepetitionSeeds:
    index: int
    generation: int
    detector: int

    def for_synthesizer(self, name: str, imported: bool = False) -> dict[str, int]:
        """The seeds a record shows for this synthesizer's cell (``fit`` only when its fit is seeded; an
        imported set has only the detector's)."""
        if imported:
            return {"detector": self.detector}
        fit = {"fit": self.generation} if stages.fit_is_seeded(name) else {}
        return {**fit, "generation": self.generation, "detector": self.detector}


def repetition_seeds(request: RunRequest) -> list[RepetitionSeeds]:
    protocol = request.protocol
    generation = protocol.repetition_seeds(request.generation_seed, request.repetitions)
    detector = protocol.repetition_seeds(request.detector_seed, request.repetitions)
    return [RepetitionSeeds(index, g, d) for index, (g, d) in enumerate(zip(generation, detector))]


@dataclass
class CategoryPlan:
    """Every job of one category; keys of the dicts start with the repetition index.

    Jobs that no seed touches (the fit of a deterministic synthesizer) have the same key in every
    repetition and run once.
    """

    context: CategoryContext
    seeds: list[RepetitionSeeds]
    fits: dict[tuple[int, str], Job] = field(default_factory=dict)
    generates: dict[tuple[int, str], Job] = field(default_factory=dict)
    fidelities: dict[tuple[int, str], Job] = field(default_factory=dict)
    detections: dict[tuple[int, str, str], Job] = field(default_factory=dict)  # (rep, synth or NO_SYNTHESIS, detector)
    contaminations: dict[tuple[int, str], Job] = field(default_factory=dict)
    content_hashes: dict[str, str] = field(default_factory=dict)  # imported sets: spec -> content hash

    def jobs(self) -> list[Job]:
        """Each distinct job once, in dependency order."""
        unique: dict[str, Job] = {}
        for job in [*self.fits.values(), *self.generates.values(), *self.contaminations.values(),
                    *self.fidelities.values(), *self.detections.values()]:
            unique.setdefault(job.key, job)
        return list(unique.values())

    def reference_detectors(self) -> list[str]:
        return sorted({detector for (_, synth, detector) in self.detections if synth == NO_SYNTHESIS})


def _device_kind(device: str) -> str:
    return "cuda" if device.startswith("cuda") else device


def uses_synthesis(detector: str) -> bool:
    from benchmark.detectors import DETECTORS

    return bool(DETECTORS[detector].uses_synthesis)


def plan_category(request: RunRequest, context: CategoryContext) -> CategoryPlan:
    """The jobs of one category for every repetition.

    A job's key hashes what determines its output (settings, seeds, the split, the keys of its inputs),
    not the whole protocol, so a protocol version that only adds a metric or a repetition reuses every
    job it shares with what is cached.
    """
    from benchmark.metrics.registry import DIAGNOSTIC_METRICS

    protocol = request.protocol
    if context.protocol is not protocol:
        raise ValueError(f"{context.category} was loaded for protocol {context.protocol.id}, the request is for "
                         f"{protocol.id}")
    plan = CategoryPlan(context, repetition_seeds(request))
    base = {"protocol": protocol.id, "dataset": context.subset, "category": context.category,
            "device": _device_kind(request.device)}
    for spec, ext in request.external.items():
        if spec in request.synthesizers:
            plan.content_hashes[spec] = stages.external_content_hash(ext, context.category)
    for seeds in plan.seeds:
        rep = seeds.index
        for name in request.synthesizers:
            if name in request.external:
                fit, generate = stages.plan_import(request.external[name], plan.content_hashes[name], base, context)
                seed_label = ""
            else:
                config = stages.synthesizer_config(context, name, seed=seeds.generation)
                fit = Job(kind="fit", label=f"fit {name} {context.category}",
                          params={**base, "synth": name, **stages.version_params(name), "config": config,
                                  "train_split": context.train.split_id})
                generate = Job(kind="generate", label=f"generate {name} {context.category} seed {seeds.generation}",
                               deps=(fit.key,), params={**base, "synth": name, "n": protocol.n_generated_per_defect,
                                                        "seed": seeds.generation, **stages.planner_params()})
                seed_label = f" seed {seeds.generation}"
            shown = request.external[name].name if name in request.external else name
            plan.contaminations[rep, name] = Job(
                kind="contamination", label=f"contamination {shown} {context.category}{seed_label}", deps=(generate.key,),
                params={**base, "check": stages.contamination_settings(), "test": context.test.sha256})
            fidelity = Job(kind="fidelity", label=f"fidelity {shown} {context.category}{seed_label}",
                           deps=(generate.key,),
                           params={**base, "metrics": fidelity_metrics(request),
                                   "diagnostics": list(DIAGNOSTIC_METRICS), "weights_dir": request.weights_dir,
                                   "allow_download": request.allow_download, "test": context.test.sha256})
            plan.fits[rep, name], plan.generates[rep, name], plan.fidelities[rep, name] = fit, generate, fidelity
            for detector in request.detectors:
                if uses_synthesis(detector):
                    plan.detections[rep, name, detector] = Job(
                        kind="detect", label=f"detect {detector} {shown} {context.category} seed {seeds.detector}",
                        deps=(generate.key,),
                        params={**base, "detector": detector, "config": stages.detector_config(protocol, detector),
                                "seed": seeds.detector, "split": context.split_sha256,
                                **_weights_params(detector, request)})
        for detector in request.detectors:
            if not uses_synthesis(detector):
                plan.detections[rep, NO_SYNTHESIS, detector] = Job(
                    kind="detect", label=f"detect {detector} (no synthesis) {context.category} seed {seeds.detector}",
                    params={**base, "detector": detector, "config": stages.detector_config(protocol, detector),
                            "seed": seeds.detector, "split": context.split_sha256})
    return plan


def fidelity_metrics(request: RunRequest) -> list[str]:
    """The protocol's fidelity metrics, then the request's extra ones (the job key changes only when there are some)."""
    protocol = request.protocol
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
        return self.store.run(job, work)  # cached, done by another process meanwhile, or done here under its lock

    def execute(self, plan: CategoryPlan, bar: tqdm) -> None:
        ctx, request, store = plan.context, self.request, self.store
        seen: set[str] = set()

        def once(job: Job, work: Any) -> None:
            if job.key not in seen:
                seen.add(job.key)
                self.run(job, work)
                bar.update(1)

        for seeds in plan.seeds:
            rep = seeds.index
            for name in request.synthesizers:
                fit_job, generate_job = plan.fits[rep, name], plan.generates[rep, name]
                if name in request.external:
                    ext, content = request.external[name], plan.content_hashes[name]
                    once(fit_job, lambda work, e=ext, c=content: external.describe(ctx, e, c, work))
                    once(generate_job, lambda work, e=ext, c=content: external.import_(ctx, e, c, work))
                else:
                    once(fit_job, lambda work, n=name, j=fit_job: stages.fit(
                        ctx, n, j.params["config"], request.device, work, request.progress))
                    fit_folder = store.folder(fit_job)
                    once(generate_job, lambda work, n=name, f=fit_folder, s=seeds.generation: stages.generate(
                        ctx, n, f, s, request.device, work, request.progress))
                set_folder = store.folder(generate_job) / "samples"
                set_sha256 = store.output(generate_job)["set_sha256"]
                once(plan.contaminations[rep, name], lambda work, f=set_folder, h=set_sha256: stages.contamination(
                    ctx, f, work, expected_set_sha256=h))
                fidelity_job = plan.fidelities[rep, name]
                once(fidelity_job, lambda work, f=set_folder, h=set_sha256, j=fidelity_job: stages.fidelity(
                    ctx, f, j.params["metrics"], request.weights_dir, request.allow_download,
                    request.device, work, request.progress, expected_set_sha256=h))
            for (job_rep, name, detector), job in plan.detections.items():
                if job_rep != rep:
                    continue
                generated = None if name == NO_SYNTHESIS else plan.generates[rep, name]
                set_folder = store.folder(generated) / "samples" if generated else None
                set_sha256 = store.output(generated)["set_sha256"] if generated else None
                once(job, lambda work, d=detector, s=set_folder, h=set_sha256, j=job: stages.detect(
                    ctx, d, j.params["config"], j.params["seed"], s, request.device, work, request.progress,
                    request.keep_models, request.weights_dir, request.allow_download, expected_set_sha256=h))


def _comparability(ctx: CategoryContext, fidelity: list[MetricResult],
                   detectors: list[str] | None = None) -> tuple[bool, list[str]]:
    notes = []
    if ctx.is_demo:
        notes.append("demo data (generated, not MVTec): never comparable")
    if ctx.protocol.demo_only:
        notes.append(f"protocol {ctx.protocol.id} is for demos and tests only")
    standard = set(ctx.protocol.fidelity_metrics)
    for metric in fidelity:
        if metric.not_applicable:
            continue
        if metric.id in standard and not metric.computed:
            notes.append(f"{metric.id} not computed: {metric.reason}")
        elif metric.id in standard and not metric.comparable:
            notes.append(f"{metric.id} not comparable: {metric.reason}")
    for detector in detectors or []:
        if detector not in ctx.protocol.detectors:
            notes.append(f"detector {detector} is not pinned by protocol {ctx.protocol.id} (a plugin)")
    return not notes, notes


def _timings(outputs: dict[str, dict[str, Any]], detectors: list[DetectorResult]) -> dict[str, float]:
    timings = {}
    for stage, output in outputs.items():
        if output and "seconds" in output:
            timings[stage] = round(float(output["seconds"]), 3)
    for detector in detectors:
        timings[f"detect_{detector.name}_train"] = detector.train_seconds
        timings[f"detect_{detector.name}_eval"] = detector.eval_seconds
    return timings


def _repetition(plan: CategoryPlan, store: JobStore, synth: str, seeds: RepetitionSeeds,
                imported: bool = False) -> Repetition:
    rep = seeds.index
    keys = [k for k in plan.detections if k[0] == rep and k[1] == synth]
    detectors = [DetectorResult.model_validate(store.output(plan.detections[k])["result"]) for k in keys]
    if synth == NO_SYNTHESIS:
        return Repetition(index=rep, seeds={"detector": seeds.detector}, fidelity=[], detectors=detectors,
                          timings=_timings({}, detectors))
    outputs = {"fit": store.output(plan.fits[rep, synth]), "generate": store.output(plan.generates[rep, synth]),
               "fidelity": store.output(plan.fidelities[rep, synth])}
    contamination = store.output(plan.contaminations[rep, synth])
    return Repetition(
        index=rep, seeds=seeds.for_synthesizer(synth, imported), synthesizer_config_hash=outputs["fit"]["config_hash"],
        generated_set_sha256=outputs["generate"]["set_sha256"], n_generated=outputs["generate"]["n"],
        n_redone=outputs["generate"].get("redone"), n_failed=outputs["generate"].get("failed"),
        fidelity=[MetricResult.model_validate(m) for m in outputs["fidelity"]["metrics"]], detectors=detectors,
        timings=_timings({**outputs, "contamination": contamination}, detectors),
        contamination=ContaminationResult.model_validate(contamination["result"]),
    )


def _total_timings(repetitions: list[Repetition]) -> dict[str, float]:
    """Seconds per stage summed over repetitions (a cached job shared by repetitions counts once)."""
    totals: dict[str, float] = {}
    for repetition in repetitions:
        same_set = repetition.index and repetition.generated_set_sha256 == repetitions[0].generated_set_sha256
        for stage, seconds in repetition.timings.items():
            if stage == "fit" and repetition.index and repetition.synthesizer_config_hash == repetitions[0].synthesizer_config_hash:
                continue
            if stage in ("generate", "contamination", "fidelity") and same_set:  # an imported set: one job serves all
                continue
            totals[stage] = round(totals.get(stage, 0.0) + seconds, 3)
    return totals


def assemble(request: RunRequest, plan: CategoryPlan, store: JobStore, synth: str,
             environment: EnvironmentRef) -> ResultRecord:
    ctx = plan.context
    protocol = ctx.protocol
    imported = synth in request.external
    repetitions = [_repetition(plan, store, synth, seeds, imported) for seeds in plan.seeds]
    synthesizer_ref = None
    extra_notes: list[str] = []
    if synth != NO_SYNTHESIS:
        checkpoint = read_checkpoint_info(store.folder(plan.fits[0, synth]) / "checkpoint")
        first = repetitions[0]
        external_ref = external.external_ref(request.external[synth], store.output(plan.generates[0, synth])) \
            if imported else None
        synthesizer_ref = SynthesizerRef(
            meta=checkpoint.meta, config=checkpoint.config, config_hash=checkpoint.config_hash, fit=checkpoint.fit,
            generated_set_sha256=first.generated_set_sha256, n_generated_per_defect=protocol.n_generated_per_defect,
            n_generated=first.n_generated, external=external_ref,
        )
        if external_ref is not None:
            extra_notes += external.comparability_notes(external_ref, ctx.train.defect_types,
                                                        protocol.n_generated_per_defect)
        extra_notes += stages.contamination_notes(repetitions)
    comparable, notes = _comparability(ctx, repetitions[0].fidelity, [d.name for d in repetitions[0].detectors])
    if extra_notes:
        comparable = False
        notes += extra_notes
    if len(repetitions) < protocol.repetitions:
        comparable = False
        notes.append(f"{len(repetitions)} of the protocol's {protocol.repetitions} repetitions")
    return ResultRecord(
        protocol=ProtocolRef(id=protocol.id, config_hash=protocol.config_hash, title=protocol.title,
                             hardware=protocol.hardware, settings=protocol.model_dump(mode="json")),
        dataset=DatasetRef(name=ctx.subset, category=ctx.category, is_demo=ctx.is_demo,
                           caption_source_kind=ctx.caption_source_kind, captions_sha256=ctx.captions_sha256,
                           split_sha256=ctx.split_sha256, split=ctx.split.summary(), good_test_source=ctx.split.good_test_source),
        synthesizer=synthesizer_ref,
        repetitions=repetitions,
        summary=summarize_repetitions(repetitions),
        uncertainty=UncertaintyRef(repetitions=len(repetitions), protocol_repetitions=protocol.repetitions),
        timings=_total_timings(repetitions),
        environment=environment,
        comparable=comparable,
        comparable_notes=notes,
        created_utc=dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
    )


def run_benchmark(request: RunRequest, source: DataSource | None = None) -> list[tuple[ResultRecord, Path]]:
    """Execute every job of the request and write one result record per (synthesizer | reference, category).

    The data is located once (or ``source``, located by the caller, is reused) and each category scanned once."""
    out = Path(request.out)
    store = JobStore(out)
    environment = collect_environment(request.device)  # the code as it is when the run starts
    written: list[tuple[ResultRecord, Path]] = []
    if source is None:
        source = locate_dataset(request.subset, request.data_root, request.categories,
                                caption_source=request.caption_source)
    for category in request.categories:
        ctx = load_category(request.protocol, request.subset, category, source=source)
        plan = plan_category(request, ctx)
        logger.info("%s/%s: split %s", request.subset, category, ctx.split.summary())
        if request.overwrite:
            for job in plan.jobs():
                store.forget(job)
        with tqdm(total=len(plan.jobs()), desc=f"{category} jobs", unit="job", disable=not request.progress,
                  position=0) as bar:
            Executor(request, store).execute(plan, bar)
        names = list(request.synthesizers)
        if plan.reference_detectors():
            names.append(NO_SYNTHESIS)
        for name in names:
            record = assemble(request, plan, store, name, environment)
            sets = {r.generated_set_sha256: r.contamination for r in record.repetitions if r.contamination}
            copies = sum(len(result.matches) for result in sets.values())  # an imported set counts once
            if copies:
                logger.warning("%s/%s %s: its generated set(s) hold %d near-copies of test images (listed in the "
                               "record): not comparable", request.subset, category, record.synthesizer_name, copies)
            path = out / "results" / record.relative_path()
            if write_result_once(record, path):
                logger.info("wrote %s", path)
            else:
                logger.info("kept %s: an identical record (same content hash) is already there", path)
            if name != NO_SYNTHESIS:
                _copy_grid(store.folder(plan.generates[0, name]) / "grid.png", path.with_suffix(".grid.png"))
            written.append((record, path))
    return written


def _copy_grid(source: Path, target: Path) -> None:
    if source.is_file():
        write_bytes(target, source.read_bytes())  # a concurrent run of the same command never sees half a grid


def default_out() -> str:
    return os.environ.get("MVTEC_BENCH_OUT", "runs/benchmark")
