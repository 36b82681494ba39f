"""``python -m benchmark run | list | plan | table``.

``run`` trains/fits each synthesizer on the few-shot split of each category, generates the
protocol's number of anomalies, scores fidelity and downstream detectors, and writes one
versioned result JSON per (synthesizer, category) under ``<out>/results/`` (the leaderboard
layout), with the qualitative grid and metric plots beside it. With no data root it runs on
the embedded demo data under the smoke protocol and says so. Re-running resumes from the
job cache in ``<out>/cache``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path


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
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.setLevel(logging.INFO)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING)
    for new in (handler, console):
        root.addHandler(new)
        _HANDLERS.append(new)
    return log_file


def _default_categories(subset: str, data_root: str | None, caption_source: str | None) -> list[str]:
    from mvtec_caption.loader import resolve_dataset

    return resolve_dataset(subset, data_root, None, caption_source=caption_source, progress=False).scan.categories


def build_request(args: argparse.Namespace):  # noqa: ANN201 -> (RunRequest, Protocol, notes)
    from benchmark.pipeline import RunRequest, default_out
    from benchmark.protocols import DEFAULT_PROTOCOLS, get_protocol
    from mvtec_caption.layout import get_subset, resolve_root
    from synthesis import registry

    notes = []
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
    for name in args.synth:
        registry.entry(name)  # unknown names fail before any work
    categories = args.categories or _default_categories(subset, args.data_root, args.caption_source)
    if not categories:
        raise ValueError(f"no categories found for {subset} under {args.data_root}")
    detectors = args.detectors or protocol.default_detectors
    from benchmark.detectors import DETECTORS

    unknown = [d for d in detectors if d not in DETECTORS]
    if unknown:
        raise ValueError(f"unknown detector(s) {', '.join(unknown)}; known: {', '.join(sorted(DETECTORS))}")
    request = RunRequest(
        protocol_id=protocol.id, subset=subset, data_root=args.data_root, caption_source=args.caption_source,
        categories=categories, synthesizers=args.synth, detectors=detectors,
        generation_seed=protocol.generation_seed if args.seed is None else args.seed,
        detector_seed=protocol.detector_seed if args.seed is None else args.seed,
        repetitions=protocol.repetitions if args.repetitions is None else args.repetitions,
        device=args.device, out=str(args.out or default_out()), overwrite=args.overwrite,
        weights_dir=args.weights_dir or os.environ.get("MVTEC_BENCH_WEIGHTS_DIR"),
        allow_download=not args.no_download, keep_models=not args.no_keep_models, progress=not args.no_progress,
    )
    return request, protocol, notes


def cmd_run(args: argparse.Namespace) -> int:
    from benchmark.pipeline import run_benchmark
    from benchmark.report import format_table, write_metric_plots

    request, protocol, notes = build_request(args)
    from mvtec_caption.runtime import set_threads

    set_threads(args.threads)
    out = Path(request.out)
    log_file = _configure_logging(out)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"protocol {protocol.id}: {protocol.title} ({protocol.image_size}px, {protocol.n_generated_per_defect} "
          f"generated per defect type); {request.subset} {', '.join(request.categories)}; synthesizers "
          f"{', '.join(request.synthesizers)}; detectors {', '.join(request.detectors)}; out {out}; log {log_file}",
          file=sys.stderr)
    written = run_benchmark(request, protocol)
    records = [record for record, _ in written]
    for name in {r.synthesizer_name for r in records}:
        mine = [r for r in records if r.synthesizer_name == name]
        plot = write_metric_plots(mine, out / "plots" / f"{name}--{protocol.slug}--{request.subset}.png")
        if plot:
            print(f"plot: {plot}", file=sys.stderr)
    print(format_table(records))
    for _, path in written:
        print(f"result: {path}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """Print the jobs of a run (kind, key, deps, params) as JSON, for other executors."""
    from benchmark.context import load_category
    from benchmark.pipeline import plan_category

    request, protocol, notes = build_request(args)
    jobs = []
    for category in request.categories:
        ctx = load_category(protocol, request.subset, category, request.data_root, request.caption_source)
        for job in plan_category(request, protocol, ctx).jobs():
            jobs.append({"key": job.key, **job.model_dump(mode="json")})
    print(json.dumps({"request": request.model_dump(mode="json"), "notes": notes, "jobs": jobs}, indent=2))
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    """Print the table of every result record below a folder (terminal text or Markdown)."""
    from benchmark.report import format_markdown, format_table
    from benchmark.results import load_result

    paths = sorted(Path(args.results).rglob("*.json"))
    records = [load_result(path) for path in paths if path.name != "meta.json"]
    if not records:
        raise FileNotFoundError(f"no result records below {args.results}")
    records.sort(key=lambda r: (r.protocol.id, r.dataset.name, r.dataset.category, r.synthesizer_name))
    print(format_markdown(records) if args.markdown else format_table(records))
    return 0


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
    from benchmark.detectors import DETECTORS
    from benchmark.protocols import PROTOCOLS
    from synthesis import registry

    print("synthesizers:")
    for name in registry.available():
        item = registry.entry(name)
        print(f"  {name:<22} {item.summary}{f' [ablation of {item.ablation_of}]' if item.ablation_of else ''}")
    print("detectors:")
    for name, cls in sorted(DETECTORS.items()):
        print(f"  {name:<22} {'uses synthesis' if cls.uses_synthesis else 'reference: no synthesis'}")
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
    parser.add_argument("--synth", action="append", required=True, help="registered synthesizer (repeatable)")
    parser.add_argument("--dataset", default="mvtec_ad", choices=["mvtec_ad", "mvtec_loco", "demo"])
    parser.add_argument("--categories", nargs="+", help="default: every captioned category under the data root")
    parser.add_argument("--detectors", nargs="+", help="default: the protocol's default detectors")
    parser.add_argument("--data-root", help="folder holding the categories (default: $MVTEC_AD_ROOT / $MVTEC_LOCO_ROOT; "
                                            "none: the embedded demo data)")
    parser.add_argument("--caption-source", help="captions file/folder (default: $MVTEC_CAPTION_SOURCE, cache, download)")
    parser.add_argument("--protocol", help="protocol id (default: smoke on demo data, the CPU protocol on CPU, the GPU protocol on cuda)")
    parser.add_argument("--out", help="output folder (default: $MVTEC_BENCH_OUT or runs/benchmark)")
    parser.add_argument("--seed", type=int, help="base seed of fit, generation and detector; repetition r uses "
                                                  "seed + r (default: the protocol's)")
    parser.add_argument("--repetitions", type=int, help="repetitions to run (default: the protocol's; more adds jobs "
                                                         "and redoes none, fewer marks the results not comparable)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--weights-dir", help="folder with reference metric weights (default: $MVTEC_BENCH_WEIGHTS_DIR)")
    parser.add_argument("--no-download", action="store_true", help="never download reference weights")
    parser.add_argument("--overwrite", action="store_true", help="recompute the planned jobs instead of resuming")
    parser.add_argument("--no-keep-models", action="store_true", help="do not keep trained detector weights in the cache")
    parser.add_argument("--no-progress", action="store_true")
    from mvtec_caption.runtime import THREADS_HELP

    parser.add_argument("--threads", type=int, help=THREADS_HELP)


COMMANDS = {"run": cmd_run, "list": cmd_list, "plan": cmd_plan, "table": cmd_table, "compare": cmd_compare}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    _run_options(commands.add_parser("run", help="run the benchmark"))
    commands.add_parser("list", help="synthesizers, detectors, metrics and protocols")
    _run_options(commands.add_parser("plan", help="print the jobs of a run as JSON (for other executors)"))
    table = commands.add_parser("table", help="the table of the result records below a folder")
    table.add_argument("results", help="a folder of result JSON (e.g. runs/benchmark/results or leaderboard/results)")
    table.add_argument("--markdown", action="store_true", help="Markdown instead of terminal text")
    compare = commands.add_parser("compare", help="paired comparison of two synthesizers over repetitions")
    compare.add_argument("results", help="a folder of result JSON")
    compare.add_argument("--synth", action="append", required=True,
                         help="synthesizer A, then B (give twice); `no-synthesis` is the reference row")
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
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ValueError, KeyError, FileNotFoundError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
