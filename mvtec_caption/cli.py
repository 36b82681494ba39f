"""``python -m mvtec_caption``: inspect, validate, analyse and export MVTec Caption.

Subcommands live in :data:`COMMANDS` (name -> :class:`Command`); each one is a function of the
parsed arguments returning the exit status. Heavy libraries (datasets, pandas, matplotlib)
are imported inside the commands that need them, so ``--help`` and ``info`` start quickly.
Expected failures (no captions offline, a missing data root, a stale schema file ...) print one
``error:`` line and exit 2; set ``MVTEC_CAPTION_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mvtec_caption.layout import SUBSETS
from mvtec_caption.output_folder import OutputKind

if TYPE_CHECKING:
    from mvtec_caption.loader import ResolvedDataset
    from mvtec_caption.output_folder import DataRoot
    from mvtec_caption.schema import Problem
    from mvtec_caption.sources import CaptionSet

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
ALL_DATASETS = ("mvtec_ad", "mvtec_loco")

EXIT_CODES = """exit status:
  0  success (warnings alone do not fail unless --strict)
  1  the check failed: validate found errors (or warnings with --strict), export-schema --check found stale files
  2  the command could not run: bad option, captions not found or not verified, data root missing, ...
"""
PARTIAL_COPY = (
    "A partial copy of a dataset (a captioned category, a good split or a defect-type folder missing, "
    "like the LOCO juice_bottle copy without test/good and structural_anomalies) is reported as a "
    "WARNING, not an error: it exits 0 unless --strict is given."
)


#: What ``stats`` and ``export-schema`` write (see :mod:`mvtec_caption.output_folder`); the layouts let
#: folders written before output markers existed be recognised.
STATS_OUTPUT = OutputKind("mvtec_caption", "stats", requires=("stats.md",),
                          layout=("summary.csv", "attributes.csv", "keywords.csv", "stats.md", "categories.png",
                                  "attributes_*.png"))
SCHEMA_OUTPUT = OutputKind("mvtec_caption", "export-schema", layout=("*.v[0-9]*.json",))


class UsageError(ValueError):
    """Options that cannot work together; reported like other user errors."""


@dataclass(frozen=True)
class Command:
    help: str
    description: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    data_options: bool = True
    epilog: str = ""


# --------------------------------------------------------------------------- shared helpers


def _user_errors() -> tuple[type[BaseException], ...]:
    from mvtec_caption.export import ExportError
    from mvtec_caption.loader import DatasetProblemsError
    from mvtec_caption.migrations import SchemaVersionError
    from mvtec_caption.records import RecordsFileError
    from mvtec_caption.sources import CaptionSourceError
    from mvtec_caption.upstream import UpstreamFormatError

    return (CaptionSourceError, UpstreamFormatError, DatasetProblemsError, SchemaVersionError, RecordsFileError,
            ExportError, UsageError, FileNotFoundError, NotADirectoryError, PermissionError, ValueError)


def _datasets(args: argparse.Namespace) -> list[str]:
    return [args.subset] if args.subset else list(ALL_DATASETS)


def _caption_set(args: argparse.Namespace) -> CaptionSet:
    """Captions for the selected subset(s): the demo's own, or the resolved MVTec Caption source."""
    from mvtec_caption.sources import load_json_source, resolve_caption_source

    if args.subset == "demo":
        from mvtec_caption.demo import demo_caption_source

        return load_json_source(Path(args.caption_source) if args.caption_source else demo_caption_source(), kind="demo")
    return resolve_caption_source(args.caption_source, datasets=tuple(_datasets(args)), verify=not args.no_verify)


def _require_subset(args: argparse.Namespace, command: str) -> str:
    if not args.subset:
        raise UsageError(f"{command} needs --subset ({', '.join(SUBSETS)})")
    return args.subset


def _resolve(args: argparse.Namespace, command: str, *, check_files: bool = False) -> ResolvedDataset:
    from mvtec_caption.loader import resolve_dataset

    subset = _require_subset(args, command)
    return resolve_dataset(subset, args.data_root, args.categories, caption_source=args.caption_source,
                           check_files=check_files, progress=not args.no_progress, verify=not args.no_verify)


def _data_roots(args: argparse.Namespace) -> list[DataRoot]:
    """Data this command reads (arguments, environment, demo data): outputs are refused in and around it."""
    from mvtec_caption.output_folder import data_roots

    return data_roots([("--data-root", getattr(args, "data_root", None)),
                       ("--caption-source", getattr(args, "caption_source", None))])


def _is_manifest(path: Path) -> bool:
    """An existing file ``--write-manifest`` may replace: a DatasetManifest it wrote before."""
    from mvtec_caption.manifest import read_manifest

    try:
        read_manifest(path)
    except (OSError, ValueError):
        return False
    return True


def _relative(path: str | None, root: Path) -> str:
    if not path:
        return ""
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path


def _problems_table(problems: list[Problem], root: Path) -> str:
    import pandas as pd

    from mvtec_caption.tables import console_table

    frame = pd.DataFrame(
        [{"severity": p.severity, "kind": p.kind, "category": p.category, "defect_type": p.defect_type or "",
          "path": _relative(p.path, root), "detail": p.detail} for p in problems],
        columns=["severity", "kind", "category", "defect_type", "path", "detail"],
    )
    return console_table(frame)


def _print_problems(problems: list[Problem], root: Path) -> None:
    if problems:
        print(f"\nproblems (paths relative to {root}):")
        print(_problems_table(problems, root))


def _failed(problems: list[Problem], strict: bool) -> bool:
    return any(p.severity == "error" or strict for p in problems)


# --------------------------------------------------------------------------- info


def _print_source(caption_set: CaptionSet, datasets: list[str]) -> None:
    from mvtec_caption.manifest import matches_pinned_upstream

    info = caption_set.info
    print(f"caption source: {info.kind}  {info.location}")
    if info.upstream_commit:
        print(f"  upstream: {info.upstream_repository} @ {info.upstream_commit}")
    for name, item in sorted(info.upstream_files.items()):
        print(f"  file {name}: {item.path}  sha256 {item.sha256}  ({item.captions} captions)")
    for name in datasets:
        print(f"  captions sha256 {name}: {info.captions_sha256.get(name, '?')}")
    if info.kind != "demo":
        same = matches_pinned_upstream(info, datasets)
        print(f"  identical to the pinned upstream captions: {'yes' if same else 'NO'}")
        if same and not info.upstream_files:  # e.g. a JSON copy: name the files it is identical to
            from mvtec_caption.manifest import pinned_upstream_info

            pinned = pinned_upstream_info(datasets)
            print(f"  pinned upstream: {pinned.upstream_repository} @ {pinned.upstream_commit}")
            for name, item in sorted(pinned.upstream_files.items()):
                print(f"  pinned file {name}: {item.path}  sha256 {item.sha256}  ({item.captions} captions)")


def _print_counts(caption_set: CaptionSet, datasets: list[str], categories: list[str] | None) -> None:
    from mvtec_caption.manifest import build_manifest

    manifest = build_manifest(caption_set, datasets, categories)
    for name, counts in manifest.datasets.items():
        print(f"\n{name}: {counts.total} captions, {len(counts.categories)} categories")
        for category, item in counts.categories.items():
            defects = ", ".join(f"{d} {n}" for d, n in item.defect_types.items())
            print(f"  {category:<20} {item.total:>4}  ({defects})")


def _print_found(resolved: ResolvedDataset) -> None:
    from collections import Counter

    scan = resolved.scan
    print(f"\ndata root {resolved.root} ({resolved.subset.name}):")
    records = Counter(r.category for r in scan.records)
    good = Counter((g.category, g.split) for g in scan.good)
    for category in scan.categories:
        splits = ", ".join(f"{split} {good[(category, split)]}" for split in resolved.subset.good_splits)
        print(f"  {category:<20} {records[category]:>4} captioned anomalous images; good images: {splits}")
        if good[(category, "test")] == 0:
            print(f"  hint: {category} has no good test images; where a good test set is needed, use held-out "
                  "good images (validation/good or part of train/good) and say so")
    print(f"  {len(scan.records)} records, {len(scan.good)} good images, "
          f"{len(scan.errors)} error(s), {len(scan.warnings)} warning(s)")


def run_info(args: argparse.Namespace) -> int:
    from mvtec_caption.output_folder import check_output_file

    target = None
    if args.write_manifest:
        target = check_output_file(args.write_manifest, _data_roots(args), flag="--write-manifest",
                                   is_own=_is_manifest, what="DatasetManifest JSON")
    datasets = _datasets(args)
    caption_set = _caption_set(args)
    _print_source(caption_set, datasets)
    _print_counts(caption_set, datasets, args.categories)
    status = EXIT_OK
    if args.data_root:
        resolved = _resolve(args, "info with --data-root")
        _print_found(resolved)
        _print_problems(resolved.scan.problems, resolved.root)
        status = EXIT_FAILED if args.strict and resolved.scan.problems else EXIT_OK
    if target is not None:
        from mvtec_caption.manifest import build_manifest, write_manifest

        write_manifest(build_manifest(caption_set, datasets, args.categories), target)
        print(f"\nwrote manifest {target}")
    return status


def _configure_info(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--write-manifest", metavar="PATH", type=Path,
                        help="write the DatasetManifest JSON (counts + provenance) to PATH")


# --------------------------------------------------------------------------- validate


def run_validate(args: argparse.Namespace) -> int:
    resolved = _resolve(args, "validate", check_files=True)
    scan = resolved.scan
    print(f"validated {resolved.subset.name} at {resolved.root}: categories {', '.join(scan.categories) or 'none'}")
    print(f"captions: {resolved.caption_set.info.kind} source, sha256 "
          f"{resolved.caption_set.info.captions_sha256.get(resolved.subset.name, '?')}")
    _print_problems(scan.problems, resolved.root)
    failed = _failed(scan.problems, args.strict) or not scan.categories
    verdict = "FAILED" if failed else "OK"
    print(f"\n{verdict}: {len(scan.records)} usable captioned images, {len(scan.good)} good images; "
          f"{len(scan.errors)} error(s), {len(scan.warnings)} warning(s)" + (" (--strict)" if args.strict else ""))
    return EXIT_FAILED if failed else EXIT_OK


def _configure_validate(parser: argparse.ArgumentParser) -> None:
    del parser  # only the common options


# --------------------------------------------------------------------------- stats


def run_stats(args: argparse.Namespace) -> int:
    from mvtec_caption.output_folder import check_output_folder, claim_output_folder
    from mvtec_caption.stats import write_stats

    roots = _data_roots(args)
    check_output_folder(args.out, STATS_OUTPUT, roots)
    caption_set = _caption_set(args)
    out = claim_output_folder(args.out, STATS_OUTPUT, roots)
    files = write_stats(caption_set, out, _datasets(args), args.categories)
    print(f"wrote {len(files)} files into {out}:")
    for path in files:
        print(f"  {path.name}")
    return EXIT_OK


def _configure_stats(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for the tables and figures")


# --------------------------------------------------------------------------- export


def run_export(args: argparse.Namespace) -> int:
    from mvtec_caption.export import EXPORT_OUTPUT, export_dataset
    from mvtec_caption.loader import DatasetProblemsError
    from mvtec_caption.output_folder import check_output_folder

    check_output_folder(args.out, EXPORT_OUTPUT, _data_roots(args), reuse=False)  # before scanning the data
    resolved = _resolve(args, "export")
    problems = resolved.scan.problems
    _print_problems(problems, resolved.root)
    if args.strict and problems:
        raise DatasetProblemsError(f"{len(problems)} problem(s) in {resolved.root} (--strict); nothing exported", problems)
    if not resolved.scan.categories:
        raise DatasetProblemsError(f"no usable category under {resolved.root}; nothing exported", problems)
    result = export_dataset(resolved, args.out, args.format, progress=not args.no_progress)
    rows = ", ".join(f"{split} {n}" for split, n in sorted(result.rows.items()))
    print(f"\nexported {resolved.subset.name} as {result.format} to {result.out}: {rows}; "
          f"{result.records} records, {len(result.files)} files")
    print(f"load it with: datasets.load_dataset({str(result.out)!r})")
    return EXIT_OK


def _configure_export(parser: argparse.ArgumentParser) -> None:
    from mvtec_caption.export import EXPORTERS

    parser.add_argument("--format", required=True, choices=sorted(EXPORTERS), help="parquet or imagefolder")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="new (or empty) folder for the export")


# --------------------------------------------------------------------------- export-schema


def run_export_schema(args: argparse.Namespace) -> int:
    from mvtec_caption.schema_files import default_schema_dir, stale_schema_files, write_schema_files

    from mvtec_caption.output_folder import check_output_folder

    directory = args.dir or default_schema_dir()
    if not args.check:
        check_output_folder(directory, SCHEMA_OUTPUT, _data_roots(args), flag="--dir")
    if args.check:
        stale = stale_schema_files(directory)
        for path in stale:
            print(f"stale or missing: {path}")
        print("schema files are current" if not stale else "run `python -m mvtec_caption export-schema` and commit the result")
        return EXIT_FAILED if stale else EXIT_OK
    for path in write_schema_files(directory):
        print(f"wrote {path}")
    return EXIT_OK


def _configure_export_schema(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, default=None, help="target folder (default: annotations/schemas of this checkout)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a file is missing or out of date")


# --------------------------------------------------------------------------- registry and parser

COMMANDS: dict[str, Command] = {
    "info": Command(
        help="caption source, hashes and counts (and what a data root holds)",
        description="Resolve the caption source and print where it came from (kind, location, upstream commit, "
                    "per-file sha256, captions sha256 per dataset) and the caption counts per dataset, category and "
                    "defect type. With --data-root (and --subset), also what was found there.",
        configure=_configure_info, run=run_info,
    ),
    "validate": Command(
        help="open every image and mask of a data root and report problems",
        description="Pair captions with files under --data-root, decode every image and mask, and print every "
                    "problem (missing or unreadable image/mask, mask size mismatch, caption count mismatch, unknown "
                    "or missing category, missing split). Writes nothing anywhere. " + PARTIAL_COPY,
        configure=_configure_validate, run=run_validate,
    ),
    "stats": Command(
        help="caption attribute statistics: CSV + Markdown tables and PNG figures",
        description="Keyword and attribute frequencies (colours, counts, positions, parts, relations, defect words, "
                    "structural vs logical) per dataset and category, from the caption source alone (no images).",
        configure=_configure_stats, run=run_stats,
    ),
    "export": Command(
        help="portable copy (parquet or imagefolder) that datasets.load_dataset(DIR) reads offline",
        description="Export the loaded subset with README.md configs, records.jsonl and manifest.json. "
                    "Never writes into the dataset folder; problems of a partial copy are listed and the usable part "
                    "is exported (--strict refuses instead).",
        configure=_configure_export, run=run_export,
    ),
    "export-schema": Command(
        help="write (or --check) annotations/schemas/<Model>.v<version>.json",
        description="JSON Schema of CaptionRecord, DatasetManifest and CaptionAttributes from the pydantic models.",
        configure=_configure_export_schema, run=run_export_schema, data_options=False,
    ),
}


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("data options")
    group.add_argument("--subset", choices=sorted(SUBSETS), default=None,
                       help="mvtec_ad, mvtec_loco or demo (generated DEMO DATA); default for info/stats: both MVTec datasets")
    group.add_argument("--data-root", type=Path, default=None, metavar="DIR",
                       help="folder holding <category>/train, test, ground_truth (default: $MVTEC_AD_ROOT / $MVTEC_LOCO_ROOT)")
    group.add_argument("--categories", nargs="+", default=None, metavar="NAME", help="only these categories (space separated)")
    group.add_argument("--caption-source", default=None, metavar="PATH",
                       help="upstream caption script(s), a folder of them, or a captions JSON (default: $MVTEC_CAPTION_SOURCE, "
                            "the cache, then a download of the pinned upstream files)")
    group.add_argument("--no-verify", action="store_true",
                       help="accept an upstream script whose sha256 differs from the pinned one (a different caption set)")
    group.add_argument("--strict", action="store_true", help="treat warnings (e.g. a partial copy) as failures")
    group.add_argument("--no-progress", action="store_true", help="no progress bars")
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mvtec_caption", description="MVTec Caption: captions paired with MVTec AD / LOCO AD images and masks.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common_options()
    for name, command in COMMANDS.items():
        sub = subparsers.add_parser(name, help=command.help, description=textwrap.fill(command.description, 88), epilog=EXIT_CODES,
                                    parents=[common] if command.data_options else [],
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        command.configure(sub)
        sub.set_defaults(handler=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except _user_errors() as err:
        if os.environ.get("MVTEC_CAPTION_DEBUG"):
            raise
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
