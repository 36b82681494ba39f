"""``python -m benchmark run | list | plan | job run | job list | assemble | table | compare``.

``run`` trains/fits each synthesizer on the few-shot split of each category, generates the
protocol's number of anomalies, checks the set for copies of test images, scores fidelity and
downstream detectors, and writes one versioned result JSON per (synthesizer, category) under
``<out>/results/`` (the leaderboard layout), with the qualitative grid and metric plots beside it.
With no data root it runs on the embedded demo data under the smoke protocol and says so.
Re-running resumes from the job cache in ``<out>/cache``. ``plan`` writes the run's jobs to
``<out>/plan.json``; ``job run --out DIR KEY`` runs one of them anywhere that sees ``DIR`` (a Slurm array,
Kubernetes) and ``assemble --out DIR`` writes the records from the finished jobs: ``run`` does the same
three steps, its jobs in this process or, with ``--executor ray``, as Ray tasks.

``--synth`` takes a registered name, a plugin class (``package.module:ClassName``) or a generated
set made elsewhere (``folder:PATH`` with ``--layout``), which is imported and scored the same way.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, NamedTuple

from mvtec_caption.arguments import bounded_int, seed
from mvtec_caption.output_folder import OutputKind


#: What ``run`` writes (see :mod:`mvtec_caption.output_folder`); the layout lets run folders written
#: before output markers existed be recognised.
RUN_OUTPUT = OutputKind("benchmark", "run", layout=("cache", "results", "plots", "logs", "plan.json", "plans"),
                        requires=("logs/benchmark.log",))


#: ``--plan`` of ``job run``, ``job list`` and ``assemble``.
PLAN_ID_HELP = ("the plan's id (`plan` prints it as plan_id): read OUT/plans/ID.json instead of OUT/plan.json, which "
                "holds the plan written last into OUT (pin the id when several plans share one OUT)")

_HANDLERS: list[logging.Handler] = []


def _configure_logging(out: Path) -> Path:
    """Log to ``<out>/logs/benchmark.log`` and warnings to stderr; a second call in one process (tests, notebooks)
    replaces the handlers of the first instead of writing every line twice."""
    log_dir = out / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / "benchmark.log"
    root = logging.getLogger()
    for old in _HANDLERS:
        root.removeHandler(old)
        old.close()
    _HANDLERS.clear()
    handler = logging.FileHandler(log_file)
    # the process id tells apart runs that share an --out (they may run at the same time)
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    root.setLevel(logging.INFO)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING)
    for new in (handler, console):
        root.addHandler(new)
        _HANDLERS.append(new)
    return log_file


def _categories(args: argparse.Namespace, source) -> list[str]:  # noqa: ANN001 (a mvtec_caption DataSource)
    """The requested categories, every one checked against what the data root holds (before any work; no file is
    scanned here: each category is scanned once, when it is prepared)."""
    available = source.categories()
    where = f"{source.subset.name} under {args.data_root}" if args.data_root else source.subset.name
    if not available:
        raise ValueError(f"no usable captioned category in {where}")
    unknown = [c for c in args.categories or [] if c not in available]
    if unknown:
        raise ValueError(f"unknown category {', '.join(map(repr, unknown))} for {where}; known: {', '.join(available)}")
    return list(dict.fromkeys(args.categories)) if args.categories else available


def _check_out(args: argparse.Namespace, out: str) -> Path:
    from mvtec_caption.output_folder import check_output_folder, data_roots

    roots = data_roots([("--data-root", args.data_root), ("--caption-source", args.caption_source)])
    return check_output_folder(out, RUN_OUTPUT, roots)


class RunSetup(NamedTuple):
    """A checked request (its protocol is ``request.protocol``), notes for the user, and the located data (reused by
    every category of the run, so the data root and captions are resolved once)."""

    request: Any  # benchmark.pipeline.RunRequest
    notes: list[str]
    source: Any  # mvtec_caption.loader.DataSource


def build_request(args: argparse.Namespace) -> RunSetup:
    from benchmark.pipeline import RunRequest, default_out
    from benchmark.protocols import DEFAULT_PROTOCOLS, get_protocol
    from mvtec_caption.layout import get_subset, resolve_root
    from synthesis import registry

    notes = []
    out = str(args.out or default_out())
    _check_out(args, out)  # before anything is loaded
    if args.data_root and not Path(args.data_root).expanduser().is_dir():
        raise FileNotFoundError(f"--data-root {args.data_root}: no such folder")
    subset = args.dataset
    if subset != "demo" and resolve_root(get_subset(subset), args.data_root) is None:
        notes.append(f"no --data-root (nor ${get_subset(subset).root_env}): running on the embedded DEMO DATA "
                     "(generated, not MVTec); its numbers only show the machinery works")
        subset = "demo"
    if args.protocol:
        protocol = get_protocol(args.protocol)
    elif subset == "demo":
        protocol = get_protocol(DEFAULT_PROTOCOLS["demo"])
    else:
        protocol = get_protocol(DEFAULT_PROTOCOLS["gpu" if args.device.startswith("cuda") else "cpu"])
    if args.repetitions is not None and args.repetitions < 1:
        raise ValueError(f"--repetitions must be at least 1, got {args.repetitions}")
    if args.repetitions is not None and args.repetitions < protocol.repetitions:
        notes.append(f"--repetitions {args.repetitions} is fewer than the {protocol.repetitions} that protocol "
                     f"{protocol.id} pins: results will be marked not comparable")
    if protocol.demo_only and subset != "demo":
        notes.append(f"protocol {protocol.id} is for demos and tests: results will be marked not comparable")
    from benchmark import external
    from benchmark.results import NO_SYNTHESIS

    # unknown names and plugins that miss part of the contract fail before any work
    synthesizers = [spec if external.is_external(spec) else registry.resolve(spec) for spec in args.synth]
    if not any(external.is_external(spec) for spec in args.synth) and (args.set_name or args.source):
        raise ValueError("--set-name and --source describe an imported set: give --synth folder:PATH")
    taken = set(registry.available()) | {name for name in synthesizers if not external.is_external(name)} | {NO_SYNTHESIS}
    imported = external.parse_requests(args.synth, args.layout, args.set_name, args.source, taken)
    from mvtec_caption.loader import locate_dataset

    source = locate_dataset(subset, args.data_root, args.categories, caption_source=args.caption_source)
    categories = _categories(args, source)
    for ext in imported.values():
        for category in categories:
            scan = external.scan(ext, category)  # a folder without pairs fails here, naming the folder
            counts = ", ".join(f"{defect} {n}" for defect, n in scan.per_defect().items())
            notes.append(f"imported set {ext.name} ({ext.layout} layout, {scan.folder}): {category}: {counts}"
                         + (f"; {len(scan.problems)} file(s) not imported, e.g. {scan.problems[0]} (all listed in the "
                            "record)" if scan.problems else ""))
    from benchmark.detectors import resolve as resolve_detector

    detectors = [resolve_detector(d) for d in (args.detectors or protocol.default_detectors)]
    from benchmark.metrics import METRICS

    unknown = [m for m in args.metrics or [] if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(sorted(METRICS))}")
    request = RunRequest(
        protocol_id=protocol.id, subset=subset, data_root=args.data_root, caption_source=args.caption_source,
        categories=categories, synthesizers=synthesizers, detectors=detectors, external=imported,
        generation_seed=protocol.generation_seed if args.seed is None else args.seed,
        detector_seed=protocol.detector_seed if args.seed is None else args.seed,
        repetitions=protocol.repetitions if args.repetitions is None else args.repetitions,
        device=args.device, out=out, overwrite=args.overwrite,
        weights_dir=args.weights_dir or os.environ.get("MVTEC_BENCH_WEIGHTS_DIR"),
        allow_download=not args.no_download, keep_models=not args.no_keep_models, progress=not args.no_progress,
        extra_metrics=args.metrics or [],
    )
    return RunSetup(request, notes, source)


def _plugin_specs(args: argparse.Namespace) -> dict[str, list[str]]:
    """The plugin classes (``package.module:ClassName``) of a run, which every worker registers again."""
    from synthesis import plugins

    return {"synthesizers": [spec for spec in args.synth if plugins.is_class_spec(spec)],
            "detectors": [spec for spec in args.detectors or [] if plugins.is_class_spec(spec)]}


def _claim_out(args: argparse.Namespace, out: str) -> Path:
    from mvtec_caption.output_folder import claim_output_folder, data_roots

    roots = data_roots([("--data-root", args.data_root), ("--caption-source", args.caption_source)])
    return claim_output_folder(out, RUN_OUTPUT, roots)


def _print_results(written, plots) -> None:  # noqa: ANN001
    from benchmark.report import format_table

    for plot in plots:
        print(f"plot: {plot}", file=sys.stderr)
    print(format_table([record for record, _ in written]))
    for _, path in written:
        print(f"result: {path}")


def cmd_run(args: argparse.Namespace) -> int:
    from benchmark.pipeline import EXECUTORS, run_benchmark

    if args.executor not in EXECUTORS:
        raise ValueError(f"unknown --executor {args.executor!r}; known: {', '.join(EXECUTORS)}")
    if args.ray_address and args.executor != "ray":
        raise ValueError("--ray-address is for --executor ray")
    request, notes, source = build_request(args)
    protocol = request.protocol
    from mvtec_caption.runtime import set_threads

    set_threads(args.threads)
    out = _claim_out(args, request.out)
    log_file = _configure_logging(out)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    shown = [request.external[s].name if s in request.external else s for s in request.synthesizers]
    print(f"protocol {protocol.id}: {protocol.title} ({protocol.image_size}px, {protocol.n_generated_per_defect} "
          f"generated per defect type); {request.subset} {', '.join(request.categories)}; synthesizers "
          f"{', '.join(shown)}; detectors {', '.join(request.detectors)}; executor {args.executor}; out {out}; "
          f"log {log_file}", file=sys.stderr)
    written, plots = run_benchmark(request, source, args.executor, args.ray_address, _plugin_specs(args))
    _print_results(written, plots)
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """Write ``<out>/plan.json`` and print the jobs of a run (kind, key, deps, params, wave) as JSON, with the
    job count of each kind: what ``job run``, ``assemble`` and other executors work from."""
    from benchmark.jobs import steps
    from benchmark.pipeline import plan_run

    request, notes, source = build_request(args)
    _claim_out(args, request.out)
    plan_file = plan_run(request, _plugin_specs(args), source)
    from benchmark import jobs as job_steps

    waves = plan_file.depths()
    jobs = []
    for category in request.categories:
        for step in steps(job_steps.category_plan(request, category), request):
            job = step.job
            jobs.append({"key": job.key, "wave": waves[job.key], **job.model_dump(mode="json")})
    this_plan = job_steps.plan_id(plan_file)
    print(json.dumps({"request": request.model_dump(mode="json"), "notes": notes, "plan_file": str(
        job_steps.plan_path(Path(request.out))), "plan_id": this_plan, "plan_copy": str(
        job_steps.plan_path(Path(request.out), this_plan)), "counts": plan_file.counts(), "jobs": jobs}, indent=2))
    return 0


def cmd_job(args: argparse.Namespace) -> int:
    """``job run --out DIR KEY``: one job of ``DIR/plan.json`` here; ``job list --out DIR``: its jobs in order."""
    from benchmark.jobs import plan_path, read_plan, run_job

    out = Path(args.out)
    if args.job_command == "list":
        plan_file = read_plan(out, args.plan)
        waves = plan_file.depths()
        for job in plan_file.jobs:
            print(job.key if args.keys else f"{job.key}\t{waves[job.key]}\t{job.kind}\t{job.label}")
        return 0
    from mvtec_caption.runtime import set_threads

    set_threads(args.threads)
    read_plan(out, args.plan)  # a missing or bad plan is one error line, before the log is touched
    _configure_logging(out)
    result = run_job(out, args.key, args.plan)
    print(f"{'cached' if result['cached'] else 'done'}: {result['label']} ({result['key']}) in {plan_path(out).parent}",
          file=sys.stderr)
    return 0


def cmd_assemble(args: argparse.Namespace) -> int:
    """Write the result records and plots of ``DIR/plan.json`` from its finished jobs (after ``job run``)."""
    from benchmark.jobs import assemble, read_plan

    out = Path(args.out)
    read_plan(out, args.plan)
    _configure_logging(out)
    written, plots = assemble(out, args.plan)
    _print_results(written, plots)
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    """Print the table of every result record below a folder (terminal text or Markdown)."""
    from benchmark.report import format_markdown, format_table
    from benchmark.results import ResultFileError, load_result

    paths = sorted(Path(args.results).rglob("*.json"))
    records, unreadable = [], []
    for path in paths:
        if path.name == "meta.json":
            continue
        try:
            records.append(load_result(path))
        except ResultFileError as err:  # list the others, name every bad one, exit 2
            unreadable.append(str(err))
    if records:
        records.sort(key=lambda r: (r.protocol.id, r.dataset.name, r.dataset.category, r.synthesizer_name))
        print(format_markdown(records) if args.markdown else format_table(records))
    for message in unreadable:
        print(f"error: {message}", file=sys.stderr)
    if not records and not unreadable:
        raise FileNotFoundError(f"no result records below {args.results}")
    return 2 if unreadable else 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Paired comparison of two synthesizers per category and overall, with interval and verdict."""
    from benchmark.compare import compare_records, format_comparison, load_records

    if len(args.synth) != 2:
        raise ValueError(f"compare needs exactly two --synth (A and B), got {len(args.synth)}")
    records = load_records(Path(args.results))
    tables = compare_records(records, args.synth[0], args.synth[1], metric=args.metric, detector=args.detector,
                             protocol=args.protocol)
    print(format_comparison(tables, markdown=args.markdown))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from benchmark.detectors import DETECTORS, PLUGIN_PROBLEMS, available
    from benchmark.protocols import PROTOCOLS
    from synthesis import registry
    from synthesis.layouts import LAYOUTS

    print("synthesizers:")
    for name in registry.available():
        item = registry.entry(name)
        print(f"  {name:<22} {item.summary}{f' [ablation of {item.ablation_of}]' if item.ablation_of else ''}")
    for name, problem in sorted(registry.PLUGIN_PROBLEMS.items()):
        print(f"  {name:<22} NOT USABLE: {problem}")
    print("detectors:")
    for name in available():
        print(f"  {name:<22} {'uses synthesis' if DETECTORS[name].uses_synthesis else 'reference: no synthesis'}")
    for name, problem in sorted(PLUGIN_PROBLEMS.items()):
        print(f"  {name:<22} NOT USABLE: {problem}")
    print("layouts of imported sets (--synth folder:PATH --layout NAME):")
    for name, layout in sorted(LAYOUTS.items()):
        print(f"  {name:<22} {layout.summary}")
    print("metrics:")
    try:
        from benchmark.metrics import METRICS

        for metric_id, spec in sorted(METRICS.items()):
            print(f"  {metric_id:<34} {getattr(spec, 'name', '')}")
    except ImportError as err:  # pragma: no cover - listed when the metrics package is importable
        print(f"  (unavailable: {err})")
    print("protocols:")
    for protocol_id, protocol in sorted(PROTOCOLS.items()):
        print(f"  {protocol_id:<26} {protocol.hardware}  {protocol.image_size}px  {protocol.n_generated_per_defect}/type  "
              f"{protocol.title}")
    return 0


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--synth", action="append", required=True,
                        help="registered synthesizer, plugin class package.module:ClassName, or a generated set made "
                             "elsewhere, folder:PATH (repeatable)")
    parser.add_argument("--layout", default="native",
                        help="folder layout of the folder:PATH sets: native, anomalydiffusion, seas (default: native; "
                             "`list` shows them)")
    parser.add_argument("--set-name", help="name of the one imported set in records and on the leaderboard "
                                           "(default: its folder's name)")
    parser.add_argument("--source", help="URL or citation of the one imported set (recorded with its results)")
    parser.add_argument("--dataset", default="mvtec_ad", choices=["mvtec_ad", "mvtec_loco", "demo"])
    parser.add_argument("--categories", nargs="+", help="default: every captioned category under the data root")
    parser.add_argument("--detectors", nargs="+", help="default: the protocol's default detectors")
    parser.add_argument("--metrics", nargs="+", help="fidelity metrics to compute in addition to the protocol's (e.g. "
                                                     "kid caption-attribute-faithfulness-v1); recorded with the result, "
                                                     "the protocol is unchanged")
    parser.add_argument("--data-root", help="folder holding the categories (default: $MVTEC_AD_ROOT / $MVTEC_LOCO_ROOT; "
                                            "none: the embedded demo data)")
    parser.add_argument("--caption-source", help="captions file/folder (default: $MVTEC_CAPTION_SOURCE, cache, download)")
    parser.add_argument("--protocol", help="protocol id (default: smoke on demo data, the CPU protocol on CPU, the GPU protocol on cuda)")
    parser.add_argument("--out", help="output folder (default: $MVTEC_BENCH_OUT or runs/benchmark)")
    parser.add_argument("--seed", type=seed, help="base seed of fit, generation and detector, 0 to 2**32-1; "
                                                  "repetition r uses seed + r (default: the protocol's)")
    parser.add_argument("--repetitions", type=bounded_int(1, 100, "repetitions"),
                        help="repetitions to run, 1 to 100 (default: the protocol's; more adds jobs and redoes none, "
                             "fewer marks the results not comparable)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--weights-dir", help="folder with reference metric weights (default: $MVTEC_BENCH_WEIGHTS_DIR)")
    parser.add_argument("--no-download", action="store_true", help="never download reference weights")
    parser.add_argument("--overwrite", action="store_true", help="recompute the planned jobs instead of resuming")
    parser.add_argument("--no-keep-models", action="store_true", help="do not keep trained detector weights in the cache")
    parser.add_argument("--no-progress", action="store_true")
    from mvtec_caption.runtime import THREADS_HELP

    parser.add_argument("--threads", type=bounded_int(1, 1024, "CPU threads"), help=THREADS_HELP)


COMMANDS = {"run": cmd_run, "list": cmd_list, "plan": cmd_plan, "table": cmd_table, "compare": cmd_compare,
            "job": cmd_job, "assemble": cmd_assemble}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the benchmark")
    _run_options(run)
    run.add_argument("--executor", default="local", help="where jobs run: local (this process, the default) or ray")
    run.add_argument("--ray-address", help="with --executor ray: the cluster to join (auto, or HOST:PORT of "
                                           "`ray start --head`); default: a local Ray sized to this machine")
    commands.add_parser("list", help="synthesizers, detectors, metrics and protocols")
    _run_options(commands.add_parser("plan", help="write OUT/plan.json and print the jobs of a run as JSON, with "
                                                  "job counts per kind (for job run, assemble and other executors)"))
    job = commands.add_parser("job", help="the jobs of a plan: run one (any scheduler), or list them in order")
    job_commands = job.add_subparsers(dest="job_command", required=True)
    job_run = job_commands.add_parser("run", help="run one job of OUT/plan.json by its key (its dependencies done)")
    job_run.add_argument("--out", required=True, help="the run folder holding plan.json (shared by every worker)")
    job_run.add_argument("key", help="the job's key (`job list --out OUT`)")
    job_run.add_argument("--plan", metavar="ID", help=PLAN_ID_HELP)
    from mvtec_caption.runtime import THREADS_HELP

    job_run.add_argument("--threads", type=bounded_int(1, 1024, "CPU threads"), help=THREADS_HELP)
    job_list = job_commands.add_parser("list", help="the jobs of OUT/plan.json in dependency order: key, wave, kind, "
                                                    "label (tab-separated); a wave only needs earlier waves done")
    job_list.add_argument("--out", required=True, help="the run folder holding plan.json")
    job_list.add_argument("--keys", action="store_true", help="only the keys, one a line")
    job_list.add_argument("--plan", metavar="ID", help=PLAN_ID_HELP)
    assemble = commands.add_parser("assemble", help="write the result records and plots of OUT/plan.json from its "
                                                    "finished jobs")
    assemble.add_argument("--out", required=True, help="the run folder holding plan.json")
    assemble.add_argument("--plan", metavar="ID", help=PLAN_ID_HELP)
    table = commands.add_parser("table", help="the table of the result records below a folder")
    table.add_argument("results", help="a folder of result JSON (e.g. runs/benchmark/results or leaderboard/results)")
    table.add_argument("--markdown", action="store_true", help="Markdown instead of terminal text")
    compare = commands.add_parser("compare", help="paired comparison of two synthesizers over repetitions")
    compare.add_argument("results", help="a folder of result JSON")
    compare.add_argument("--synth", action="append", required=True,
                         help="synthesizer A, then B (give twice); `no-synthesis` is the reference row; NAME@VERSION "
                              "picks one version where the folder holds several (axf@2 vs axf@5)")
    compare.add_argument("--metric", default="pixel_ap",
                         help="a detection score (pixel_ap, aupro, image_auroc, ...) or a fidelity metric id")
    compare.add_argument("--detector", help="detector of the detection score (default: the first one both rows have)")
    compare.add_argument("--protocol", help="only records of this protocol id")
    compare.add_argument("--markdown", action="store_true", help="Markdown instead of terminal text")
    return parser


def main(argv: list[str] | None = None) -> int:
    import warnings

    # Deprecation chatter from anomalib's own imports of timm/dinov2 says nothing about the run.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(timm|anomalib)\..*")
    from mvtec_caption.loader import DatasetProblemsError
    from mvtec_caption.sources import CaptionSourceError

    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ValueError, KeyError, FileNotFoundError, FileExistsError, CaptionSourceError, DatasetProblemsError) as err:
        # ValueError covers OutputFolderError, CheckpointError, GeneratedSetError and ResultFileError; these and the
        # data layer's user errors (captions, data root) all name their file
        print(f"error: {err}", file=sys.stderr)
        return 2
