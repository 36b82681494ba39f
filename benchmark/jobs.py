"""The two steps every executor is built on: run one planned job by its key, and assemble the records.

A run is written down before any job starts, as ``<out>/plan.json`` and ``<out>/plans/<id>.json`` (its
content address, so that commands sharing one ``<out>`` keep their own plans) (:class:`PlanFile`): the request,
the plugin specs its workers must register, and every job (key, kind, label, category, dependencies)
in dependency order. From that file alone, any process that sees ``<out>`` can

* :func:`run_job` one job: it loads the job's category, plans it again, checks that the key is still
  the one in the file (same code, same data), and does the job through :meth:`JobStore.run`
  (one writer per job, partial work private, a dead worker's job picked up again); and
* :func:`assemble` the result records, plots and grids from finished jobs, refusing while any job is
  not done.

The in-process executor (:class:`benchmark.pipeline.LocalExecutor`), the Ray executor
(:mod:`benchmark.ray_executor`) and ``python -m benchmark job run`` in a Slurm array all call these
two functions, so they produce the same files; only *where* a job runs differs.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from benchmark import external, stages
from benchmark.context import CategoryContext, load_category
from benchmark.pipeline import CategoryPlan, RunRequest, assemble as assemble_record, plan_category
from benchmark.protocols import Protocol
from benchmark.results import NO_SYNTHESIS, ResultRecord, write_result_once
from benchmark.store import Job, JobStore
from mvtec_caption.atomic import write_bytes, write_text
from mvtec_caption.loader import DataSource, locate_dataset

PLAN_FILE = "plan.json"
PLANS_DIR = "plans"
PLAN_ID_DIGITS = 16  # of the plan text's SHA-256: its id and the name of its copy under plans/
PLAN_FORMAT = 1
logger = logging.getLogger("benchmark")


class PlannedJob(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    kind: str
    label: str
    category: str
    deps: tuple[str, ...] = ()


class PlanFile(BaseModel):
    """``<out>/plan.json``: what every worker needs to run any job of the run, and nothing machine-specific."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: int = PLAN_FORMAT
    request: RunRequest
    #: plugin classes (``package.module:ClassName``) every worker registers before planning, by what they are
    synthesizer_plugins: list[str] = []
    detector_plugins: list[str] = []
    jobs: list[PlannedJob]

    def job(self, key: str, path: Path) -> PlannedJob:
        for job in self.jobs:
            if job.key == key:
                return job
        raise ValueError(f"{path}: no job with key {key!r} in this plan (`python -m benchmark job list --out "
                       f"{path.parent}` lists them)")

    def counts(self) -> dict[str, int]:
        """Jobs per kind: with the measured seconds of each kind, what the run will cost."""
        counts: dict[str, int] = {}
        for job in self.jobs:
            counts[job.kind] = counts.get(job.kind, 0) + 1
        return counts

    def depths(self) -> dict[str, int]:
        """Each job's wave: 0 for jobs without dependencies, else one more than its deepest dependency
        (a scheduler without dependencies runs wave after wave, e.g. one Slurm array each)."""
        depth: dict[str, int] = {}
        for job in self.jobs:  # dependency order
            depth[job.key] = 1 + max((depth[d] for d in job.deps), default=-1)
        return depth


@dataclass(frozen=True)
class Step:
    """A job and its place in its category's plan (repetition, synthesizer or NO_SYNTHESIS for the reference row,
    detector)."""

    job: Job
    rep: int
    synth: str
    detector: str = ""


def steps(plan: CategoryPlan, request: RunRequest) -> list[Step]:
    """Every distinct job of a category once, in the order the in-process executor has always run them
    (per repetition: each synthesizer's fit, generate, contamination, fidelity; then the detections)."""
    ordered: dict[str, Step] = {}
    for seeds in plan.seeds:
        rep = seeds.index
        for name in request.synthesizers:
            for job in (plan.fits[rep, name], plan.generates[rep, name], plan.contaminations[rep, name],
                        plan.fidelities[rep, name]):
                ordered.setdefault(job.key, Step(job, rep, name))
        for (job_rep, name, detector), job in plan.detections.items():
            if job_rep == rep:
                ordered.setdefault(job.key, Step(job, rep, name, detector))
    return list(ordered.values())


# ---- what each kind of job does ---------------------------------------------------------------------
Work = Callable[[Path], dict[str, Any]]


def _fit(request: RunRequest, plan: CategoryPlan, store: JobStore, step: Step) -> Work:
    ctx, name = plan.context, step.synth
    if name in request.external:
        ext, content = request.external[name], plan.content_hashes[name]
        return lambda work: external.describe(ctx, ext, content, work)
    return lambda work: stages.fit(ctx, name, step.job.params["config"], request.device, work, request.progress)


def _generate(request: RunRequest, plan: CategoryPlan, store: JobStore, step: Step) -> Work:
    ctx, name = plan.context, step.synth
    if name in request.external:
        ext, content = request.external[name], plan.content_hashes[name]
        return lambda work: external.import_(ctx, ext, content, work)
    fit_folder = store.folder(plan.fits[step.rep, name])
    return lambda work: stages.generate(ctx, name, fit_folder, step.job.params["seed"], request.device, work,
                                        request.progress)


def _generated_set(plan: CategoryPlan, store: JobStore, rep: int, name: str) -> tuple[Path, str]:
    """The samples folder of a finished generate job and the set hash it recorded (checked before any use)."""
    generated = plan.generates[rep, name]
    return store.folder(generated) / "samples", store.output(generated)["set_sha256"]


def _contamination(request: RunRequest, plan: CategoryPlan, store: JobStore, step: Step) -> Work:
    folder, sha256 = _generated_set(plan, store, step.rep, step.synth)
    return lambda work: stages.contamination(plan.context, folder, work, expected_set_sha256=sha256)


def _fidelity(request: RunRequest, plan: CategoryPlan, store: JobStore, step: Step) -> Work:
    folder, sha256 = _generated_set(plan, store, step.rep, step.synth)
    return lambda work: stages.fidelity(plan.context, folder, step.job.params["metrics"], request.weights_dir,
                                        request.allow_download, request.device, work, request.progress,
                                        expected_set_sha256=sha256)


def _detect(request: RunRequest, plan: CategoryPlan, store: JobStore, step: Step) -> Work:
    folder, sha256 = (None, None) if step.synth == NO_SYNTHESIS else _generated_set(plan, store, step.rep, step.synth)
    params = step.job.params
    return lambda work: stages.detect(plan.context, step.detector, params["config"], params["seed"], folder,
                                      request.device, work, request.progress, request.keep_models,
                                      request.weights_dir, request.allow_download, expected_set_sha256=sha256)


#: Job kind -> the work of one such job (given its category's plan); every kind a plan holds is here.
WORK: dict[str, Callable[[RunRequest, CategoryPlan, JobStore, Step], Work]] = {
    "fit": _fit, "generate": _generate, "contamination": _contamination, "fidelity": _fidelity, "detect": _detect,
}


def run_step(request: RunRequest, plan: CategoryPlan, store: JobStore, step: Step) -> dict[str, Any]:
    """Do one job (or find it done, or wait for another process doing it): its output."""
    return store.run(step.job, WORK[step.job.kind](request, plan, store, step))


# ---- the plan file -------------------------------------------------------------------------------------
def plan_path(out: Path, plan_id: str | None = None) -> Path:
    """``<out>/plan.json`` (the latest plan written there), or with ``plan_id`` that plan's own immutable copy
    ``<out>/plans/<plan_id>.json``."""
    if plan_id is None:
        return Path(out) / PLAN_FILE
    if not re.fullmatch(f"[0-9a-f]{{{PLAN_ID_DIGITS}}}", plan_id):
        raise ValueError(f"plan id {plan_id!r}: expected {PLAN_ID_DIGITS} hex digits (as `benchmark plan` prints)")
    return Path(out) / PLANS_DIR / f"{plan_id}.json"


def plan_text(plan_file: PlanFile) -> str:
    return plan_file.model_dump_json(indent=2) + "\n"


def _text_id(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:PLAN_ID_DIGITS]


def plan_id(plan_file: PlanFile) -> str:
    """The content address of a plan: two commands writing into one ``--out`` (one run per category, say)
    each keep their own plan under ``plans/`` while ``plan.json`` holds whichever was written last."""
    return _text_id(plan_text(plan_file))


def build_plan_file(request: RunRequest, plugins: dict[str, list[str]], plans: list[CategoryPlan]) -> PlanFile:
    jobs = [PlannedJob(key=s.job.key, kind=s.job.kind, label=s.job.label, category=plan.context.category,
                       deps=s.job.deps) for plan in plans for s in steps(plan, request)]
    unique = list({job.key: job for job in jobs}.values())
    return PlanFile(request=request, synthesizer_plugins=plugins.get("synthesizers", []),
                    detector_plugins=plugins.get("detectors", []), jobs=unique)


def write_plan(plan_file: PlanFile, out: Path) -> Path:
    """Write the plan as ``<out>/plans/<id>.json`` (never changed afterwards) and as ``<out>/plan.json``; the
    id is returned by :func:`plan_id`. A command that runs its own plan reads it back by id, so another
    command planning into the same ``--out`` meanwhile cannot change what it runs or assembles."""
    text = plan_text(plan_file)
    write_text(plan_path(out, _text_id(text)), text)  # same content, same bytes: rewriting is harmless
    path = write_text(plan_path(out), text)
    _CONTEXTS_PLAN[0] = hashlib.sha256(text.encode()).hexdigest()  # the categories just planned serve this plan
    return path


def read_plan(out: Path, plan_id: str | None = None) -> PlanFile:
    """``<out>/plan.json``, or with ``plan_id`` the plan of that id (checked against its content)."""
    path = plan_path(out, plan_id)
    if not path.is_file():
        if plan_id is not None:
            raise FileNotFoundError(f"{path}: no plan {plan_id} in {out} (`benchmark plan` prints the id)")
        raise FileNotFoundError(f"{path}: no plan here; write one with `python -m benchmark plan ... --out {out}` "
                                "(or start `python -m benchmark run`)")
    try:
        text = path.read_text(encoding="utf-8")
        plan_file = PlanFile.model_validate_json(text)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable plan ({str(err).splitlines()[0]})") from None
    if plan_file.format != PLAN_FORMAT:
        raise ValueError(f"{path}: plan format {plan_file.format}, this version reads {PLAN_FORMAT}")
    digest = hashlib.sha256(text.encode()).hexdigest()
    if plan_id is not None and _text_id(text) != plan_id:
        raise ValueError(f"{path}: its content does not match its id {plan_id} (edited after it was written)")
    use_plan(digest)
    return plan_file


def register_plugins(plan_file: PlanFile) -> None:
    """Register the run's plugin synthesizers and detectors in this process (a worker starts with none)."""
    from benchmark.detectors import resolve as resolve_detector
    from synthesis import registry

    for spec in plan_file.synthesizer_plugins:
        registry.resolve(spec)
    for spec in plan_file.detector_plugins:
        resolve_detector(spec)


#: Categories loaded in this process, for one plan at a time (see :func:`use_plan`); four at most: a
#: category of real data holds its decoded training and test images. The located data (one per request's
#: subset, root, captions and categories) is kept with them: a process locates once and scans each
#: category once (see :mod:`mvtec_caption.prepare`).
_CONTEXTS: dict[tuple[str | None, ...], CategoryContext] = {}
_SOURCES: dict[tuple[Any, ...], DataSource] = {}
_CONTEXTS_PLAN: list[str] = [""]
MAX_CONTEXTS = 4


def use_plan(plan_sha256: str) -> None:
    """Keep the loaded categories only while they serve the same plan file: a new plan (a new command, or
    data that changed since) locates the data and loads its categories afresh; a Ray worker serves many
    jobs of one plan."""
    if _CONTEXTS_PLAN[0] != plan_sha256:
        _CONTEXTS.clear()
        _SOURCES.clear()
        _CONTEXTS_PLAN[0] = plan_sha256


def _source_key(request: RunRequest) -> tuple[Any, ...]:
    return request.subset, request.data_root, request.caption_source, tuple(request.categories)


def use_source(request: RunRequest, source: DataSource) -> None:
    """Reuse ``source``, located by the caller (the CLI locates once to list the categories), for this plan."""
    _SOURCES[_source_key(request)] = source


def _source(request: RunRequest) -> DataSource:
    key = _source_key(request)
    if key not in _SOURCES:
        _SOURCES[key] = locate_dataset(request.subset, request.data_root, request.categories,
                                       caption_source=request.caption_source)
    return _SOURCES[key]


def _context(request: RunRequest, category: str) -> CategoryContext:
    key = (request.protocol_id, request.subset, category, request.data_root, request.caption_source)
    if key not in _CONTEXTS:
        while len(_CONTEXTS) >= MAX_CONTEXTS:
            _CONTEXTS.pop(next(iter(_CONTEXTS)))
        _CONTEXTS[key] = load_category(request.protocol, request.subset, category, source=_source(request))
    return _CONTEXTS[key]


def category_plan(request: RunRequest, category: str) -> CategoryPlan:
    """The plan of one category of ``request`` (its data loaded once per process and plan)."""
    return plan_category(request, _context(request, category))


def run_job(out: Path, key: str, plan_id: str | None = None) -> dict[str, Any]:
    """Run the job ``key`` of ``<out>/plan.json`` (or of the plan ``plan_id``) here (``python -m benchmark
    job run``; a Ray task).

    Its dependencies must be done; the job is planned again from the data and must have the same key
    (otherwise the code, the data or the plan changed since the plan was written, and nothing runs).
    Returns ``{"key", "kind", "label", "cached"}``.
    """
    out = Path(out)
    plan_file = read_plan(out, plan_id)
    register_plugins(plan_file)
    planned = plan_file.job(key, plan_path(out, plan_id))
    store = JobStore(out)
    request = plan_file.request
    plan = category_plan(request, planned.category)
    step = next((s for s in steps(plan, request) if s.job.key == key), None)
    if step is None:
        raise ValueError(f"{plan_path(out, plan_id)}: job {planned.label} ({key}) is not in the plan made again "
                         f"from the data and code here (they changed since the plan was written); write the plan again")
    inputs = {job.key: job for job in plan.jobs()}  # a job's dependencies are in its own category
    waiting = [inputs[d].label for d in step.job.deps if not store.is_done(inputs[d])]
    if waiting:
        raise ValueError(f"{store.folder(step.job)}: {planned.label} needs {', '.join(waiting)} done first "
                         "(run the jobs in the order `job list` gives)")
    cached = store.is_done(step.job)
    run_step(request, plan, store, step)
    return {"key": key, "kind": planned.kind, "label": planned.label, "cached": cached}


# ---- assembling the records ----------------------------------------------------------------------------
def assemble_category(request: RunRequest, plan: CategoryPlan, store: JobStore, environment: Any,
                      ) -> list[tuple[ResultRecord, Path]]:
    """Write one record per synthesizer (and the reference row) of a category whose jobs are all done."""
    out = store.root.parent
    missing = [s.job for s in steps(plan, request) if not store.is_done(s.job)]
    if missing:
        shown = "; ".join(f"{job.label} ({job.key})" for job in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise ValueError(f"{store.root}: {len(missing)} job(s) of {plan.context.category} not done: {shown}{more}")
    names = list(request.synthesizers)
    if plan.reference_detectors():
        names.append(NO_SYNTHESIS)
    written = []
    for name in names:
        record = assemble_record(request, plan, store, name, environment)
        sets = {r.generated_set_sha256: r.contamination for r in record.repetitions if r.contamination}
        copies = sum(len(result.matches) for result in sets.values())  # an imported set counts once
        if copies:
            logger.warning("%s/%s %s: its generated set(s) hold %d near-copies of test images (listed in the "
                           "record): not comparable", request.subset, plan.context.category, record.synthesizer_name,
                           copies)
        path = out / "results" / record.relative_path()
        if write_result_once(record, path):
            logger.info("wrote %s", path)
        else:
            logger.info("kept %s: an identical record (same content hash) is already there", path)
        if name != NO_SYNTHESIS:
            _copy_grid(store.folder(plan.generates[0, name]) / "grid.png", path.with_suffix(".grid.png"))
        written.append((record, path))
    return written


def write_plots(records: list[ResultRecord], out: Path, protocol: Protocol, subset: str) -> list[Path]:
    """One metric plot per synthesizer over its categories, under ``<out>/plots``."""
    from benchmark.report import write_metric_plots

    plots = []
    for name in sorted({r.synthesizer_name for r in records}):
        mine = [r for r in records if r.synthesizer_name == name]
        plot = write_metric_plots(mine, Path(out) / "plots" / f"{name}--{protocol.slug}--{subset}.png")
        if plot:
            plots.append(plot)
    return plots


def assemble(out: Path, plan_id: str | None = None) -> tuple[list[tuple[ResultRecord, Path]], list[Path]]:
    """``python -m benchmark assemble``: the records and plots of ``<out>/plan.json`` (or of the plan
    ``plan_id``: what ``run`` assembles, its own plan) from its finished jobs."""
    from benchmark.environment import collect_environment

    out = Path(out)
    plan_file = read_plan(out, plan_id)
    register_plugins(plan_file)
    request = plan_file.request
    store = JobStore(out)
    environment = collect_environment(request.device)
    written = []
    for category in request.categories:
        written += assemble_category(request, category_plan(request, category), store, environment)
    plots = write_plots([record for record, _ in written], out, request.protocol, request.subset)
    return written, plots


def _copy_grid(source: Path, target: Path) -> None:
    if source.is_file():
        write_bytes(target, source.read_bytes())  # a concurrent run of the same command never sees half a grid
