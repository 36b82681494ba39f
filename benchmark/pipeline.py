"""Plan a benchmark run as content-addressed jobs, execute them (here or on Ray), assemble result records.

Per category: ``fit`` (synthesizer on the few-shot split) -> ``generate`` (the protocol's number
of images per defect type) -> ``contamination`` (the set against the test images), ``fidelity``
(metrics) and ``detect`` (one job per detector that uses synthesis); detectors that use no
synthesis run once per category as the reference row. An imported set (``folder:PATH``, see
:mod:`benchmark.external`) has a ``fit`` that only describes it and a ``generate`` that imports it.
Each job's output is cached by key (see :mod:`benchmark.store`), so re-running a command
resumes; ``--overwrite`` drops the cached outputs of the planned jobs first. Where jobs run is an
executor's choice (:data:`EXECUTORS`); what a job does and how records are assembled is
:mod:`benchmark.jobs`, the same for every executor.
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
from benchmark.context import CategoryContext
from benchmark.external import ExternalSetRequest
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
)
from benchmark.store import Job, JobStore
from mvtec_caption.loader import DataSource
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
    from benchmark.metrics.label_fidelity import DIAGNOSTIC_METRICS

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


class LocalExecutor:
    """Runs every job in this process, in dependency order (the default executor)."""

    name = "local"

    def __init__(self, address: str | None = None):
        if address:
            raise ValueError("--ray-address is for --executor ray")

    def execute(self, plan_file: Any, out: Path, progress: bool) -> None:  # PlanFile
        from benchmark import jobs

        request, store = plan_file.request, JobStore(out)
        with tqdm(total=len(plan_file.jobs), desc="jobs", unit="job", disable=not progress, position=0) as bar:
            for category in request.categories:
                plan = jobs.category_plan(request, category)
                for step in jobs.steps(plan, request):
                    jobs.run_step(request, plan, store, step)  # cached, done by another process, or done here
                    bar.update(1)


def _ray_executor(address: str | None = None) -> Any:
    from benchmark.ray_executor import RayExecutor  # imports ray: only when asked for

    return RayExecutor(address)


#: ``--executor`` name -> a factory taking ``--ray-address``; each runs the jobs of a plan file (see
#: :mod:`benchmark.jobs`), and assembling the records is the same step for all of them.
EXECUTORS: dict[str, Any] = {"local": LocalExecutor, "ray": _ray_executor}


def plan_run(request: RunRequest, plugins: dict[str, list[str]] | None = None,
             source: DataSource | None = None) -> Any:  # PlanFile
    """Plan every category of the request and write ``<out>/plan.json`` (what workers and ``assemble`` read).

    The data is located once (or ``source``, located by the caller, is reused) and each category scanned
    once; the executor and ``assemble`` of this command reuse the categories loaded here."""
    from benchmark import jobs

    jobs.use_plan("")  # a new command: its categories are loaded afresh
    if source is not None:
        jobs.use_source(request, source)
    plans = []
    for category in request.categories:
        plan = jobs.category_plan(request, category)
        logger.info("%s/%s: split %s", request.subset, category, plan.context.split.summary())
        plans.append(plan)
    plan_file = jobs.build_plan_file(request, plugins or {}, plans)
    jobs.write_plan(plan_file, Path(request.out))
    return plan_file


def run_benchmark(request: RunRequest, source: DataSource | None = None, executor: str = "local",
                  ray_address: str | None = None, plugins: dict[str, list[str]] | None = None,
                  ) -> tuple[list[tuple[ResultRecord, Path]], list[Path]]:
    """Plan the request, execute every job with ``executor``, assemble one result record per (synthesizer |
    reference, category) and the plots: the records and the plots written.

    The data is located once (or ``source`` is reused) and each category scanned once in this process."""
    from benchmark import jobs

    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; known: {', '.join(EXECUTORS)}")
    runner = EXECUTORS[executor](ray_address)  # a bad address fails before any planning
    out = Path(request.out)
    plan_file = plan_run(request, plugins, source)
    if request.overwrite:
        store = JobStore(out)
        for category in request.categories:
            for job in jobs.category_plan(request, category).jobs():
                store.forget(job)
    runner.execute(plan_file, out, request.progress)
    return jobs.assemble(out, jobs.plan_id(plan_file))  # this command's plan, whatever plan.json holds now


def default_out() -> str:
    return os.environ.get("MVTEC_BENCH_OUT", "runs/benchmark")
