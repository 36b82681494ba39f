"""``submit RESULT_DIR``: check a run's result records and copy them into the leaderboard layout.

All or nothing: every record is checked by the same record rules CI runs (:mod:`leaderboard.validate`),
and every destination path (each folder on the way must be a real folder, each target a regular
file or absent, nothing a symbolic link) before a single file is written; a write that still
fails rolls back what this submission wrote (:mod:`leaderboard.transaction`) and nothing else. A
different result already in place is never overwritten without ``--replace``, and an identical
one is a no-op, so re-submitting a run is safe. A missing ``meta.json`` is drafted from the
records, with ``TODO`` where only the submitter knows the answer (``validate`` fails until those
are filled).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import ValidationError

from benchmark import strict_json
from benchmark.results import ResultRecord, dump_result, result_migrations
from leaderboard.layout import (
    DEFAULT_ROOT,
    MAX_FILE_BYTES,
    ResultKey,
    UnsafePathError,
    default_manifest,
    meta_path,
    result_path,
    results_dir,
)
from leaderboard.meta import SynthesizerVersionMeta, draft_meta, dump_meta, load_meta
from leaderboard.transaction import FileTransaction
from leaderboard.validate import Problem, check_record, validate_tree
from mvtec_caption.migrations import SchemaVersionError

#: Files bigger than this below RESULT_DIR are not even opened (generated images, checkpoints, ...).
SCAN_LIMIT_BYTES = 64 * MAX_FILE_BYTES


@dataclass
class Planned:
    source: Path
    record: ResultRecord
    text: str
    destination: Path
    action: Literal["add", "replace", "unchanged"] = "add"


@dataclass
class SubmitReport:
    planned: list[Planned] = field(default_factory=list)
    metas_created: dict[Path, ResultRecord] = field(default_factory=dict)  # meta.json to draft -> from record
    skipped: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    written: bool = False

    @property
    def ok(self) -> bool:
        return not any(p.level == "error" for p in self.problems)

    def count(self, action: str) -> int:
        return sum(1 for p in self.planned if p.action == action)


def _looks_like_result(data: Any) -> bool:
    """The benchmark's run folder also holds job records and manifests; results have these keys."""
    return (isinstance(data, dict) and {"schema_version", "protocol", "dataset"} <= data.keys()
            and bool({"detectors", "repetitions"} & data.keys()))


def find_result_files(result_dir: Path, report: SubmitReport) -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for folder, dirnames, filenames in os.walk(result_dir, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(folder) / name
            if not name.endswith(".json"):
                continue
            if path.is_symlink() or path.stat().st_size > SCAN_LIMIT_BYTES:
                report.skipped.append(f"{path} (symbolic link or over {SCAN_LIMIT_BYTES} bytes)")
                continue
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                report.skipped.append(f"{path} (not JSON)")
                continue
            if _looks_like_result(data):
                try:
                    strict_json.check_finite(data)
                except strict_json.NonFiniteNumberError as err:
                    report.problems.append(Problem(str(path), "valid-json", f"is not standard JSON: it {err}"))
                    continue
                found.append((path, data))
            else:
                report.skipped.append(f"{path} (not a result record)")
    return found


def _plan(result_dir: Path, root: Path, manifest: Path | None, replace: bool, report: SubmitReport) -> None:
    files = find_result_files(result_dir, report)
    if not files:
        report.problems.append(Problem(str(result_dir), "submit", "no result records found below this folder"))
        return
    by_key: dict[ResultKey, Planned] = {}
    for source, data in files:
        shown = str(source)
        try:
            record = ResultRecord.model_validate(result_migrations.upgrade(data))
        except (SchemaVersionError, ValidationError) as err:
            report.problems.append(Problem(shown, "schema", f"not a valid result record: {err}"))
            continue
        text = dump_result(record)
        if len(text.encode()) > MAX_FILE_BYTES:
            report.problems.append(Problem(shown, "max-size", f"is {len(text.encode())} bytes, over {MAX_FILE_BYTES}"))
            continue
        try:
            destination = result_path(root, record)
        except UnsafePathError as err:
            report.problems.append(Problem(shown, "safe-names", str(err)))
            continue
        report.problems += check_record(record, root, manifest, shown)
        key = ResultKey.of(record)
        if key in by_key:
            if by_key[key].text != text:
                report.problems.append(Problem(shown, "no-duplicates", f"{by_key[key].source} is the same result "
                                                                      f"({key.relative()}) with different content"))
            else:
                report.skipped.append(f"{source} (identical to {by_key[key].source})")
            continue
        by_key[key] = Planned(source, record, text, destination)
    report.planned = [by_key[key] for key in sorted(by_key, key=lambda k: k.names())]

    existing = validate_tree(root, manifest)
    hashes = {record.content_hash(): entry for entry, record in existing.records()}
    for item in report.planned:
        # A file there with the record's content hash holds the same scores from the same inputs,
        # recomputed later or elsewhere (only commit, date or timings differ): it is kept.
        twin = hashes.get(item.record.content_hash())
        already_there = twin is not None and twin.path.resolve() == item.destination.resolve()
        if item.destination.is_symlink() or (item.destination.exists() and not item.destination.is_file()):
            report.problems.append(Problem(str(item.source), "no-symlinks", f"{item.destination} is not a regular file"))
        elif item.destination.is_file():
            if already_there or item.destination.read_text(encoding="utf-8", errors="replace") == item.text:
                item.action = "unchanged"
            elif replace:
                item.action = "replace"
            else:
                report.problems.append(Problem(
                    str(item.source), "no-overwrite",
                    f"refusing to overwrite {item.destination}: it holds a different result; "
                    "pass --replace to replace it (the old file stays in git history)"))
        if twin is not None and not already_there:
            report.problems.append(Problem(str(item.source), "no-duplicates",
                                           f"the same content is already in the leaderboard at {twin.shown}"))
    _plan_metas(root, report)


def _plan_metas(root: Path, report: SubmitReport) -> None:
    """Drafts for missing meta.json; an existing one must agree with every submitted record."""
    checked: dict[Path, SynthesizerVersionMeta | None] = {}
    for item in report.planned:
        key = ResultKey.of(item.record)
        path = meta_path(root, key.synthesizer, key.version)
        if path not in checked:
            if path.is_symlink() or (path.exists() and not path.is_file()):
                report.problems.append(Problem(str(path), "destination", "is in the way: not a regular file "
                                                                         "(a folder or a symbolic link)"))
                checked[path] = None
            elif path.is_file():
                try:
                    checked[path] = load_meta(path)
                except (ValueError, SchemaVersionError) as err:
                    report.problems.append(Problem(str(path), "schema", f"existing meta.json is invalid: {err}"))
                    checked[path] = None
            else:
                checked[path] = None
                report.metas_created[path] = item.record
        meta = checked[path]
        if meta is not None:
            for message in meta.disagreements(item.record):
                report.problems.append(Problem(str(item.source), "meta-consistent", f"{message} ({path})"))


def _path_problem(root: Path, rel: PurePosixPath) -> str | None:
    """Why ``root/results/rel`` cannot be written safely, or None.

    Every folder on the way must be a real folder (not a file, not a symbolic link that could
    lead elsewhere) and the target a regular file or absent; the nearest existing folder must be
    writable. Checked for every destination before the first write.
    """
    base = results_dir(root)
    folders = [base] + [base.joinpath(*rel.parts[:i]) for i in range(1, len(rel.parts))]
    for folder in folders:
        if folder.is_symlink():
            return f"{folder} is a symbolic link"
        if folder.exists() and not folder.is_dir():
            return f"{folder} is in the way: it is a file, not a folder"
    target = base / rel
    if target.is_symlink() or (target.exists() and not target.is_file()):
        return f"{target} is not a regular file"
    nearest = next((f for f in reversed(folders) if f.exists()), None) or next(p for p in base.parents if p.exists())
    if not os.access(nearest, os.W_OK | os.X_OK):
        return f"{nearest} is not writable"
    return None


def _check_destinations(root: Path, report: SubmitReport) -> None:
    """Every file the submission would write, checked before the first one is."""
    targets = [(item.source, ResultKey.of(item.record).relative()) for item in report.planned if item.action != "unchanged"]
    sources = {id(item.record): item.source for item in report.planned}
    targets += [(sources[id(record)], ResultKey.of(record).meta_relative()) for record in report.metas_created.values()]
    for source, rel in targets:
        problem = _path_problem(root, rel)
        if problem is not None:
            report.problems.append(Problem(str(source), "destination", f"cannot write results/{rel}: {problem}"))


def _write(report: SubmitReport) -> None:
    """Write everything planned, or roll back what was written and say why."""
    transaction = FileTransaction()
    try:
        for item in report.planned:
            if item.action != "unchanged":
                transaction.write_text(item.destination, item.text)
        for path, record in report.metas_created.items():
            transaction.write_text(path, dump_meta(draft_meta(record)))
    except OSError as err:
        written = len(transaction.written)
        failures = transaction.rollback()
        undone = (f"the {written} file(s) this submission had written were rolled back" if not failures
                  else "rolling back failed: " + "; ".join(failures))
        report.problems.append(Problem(str(getattr(err, "filename", None) or "leaderboard"), "write",
                                       f"writing failed ({err.strerror or err}); {undone}"))
        return
    report.written = True


def submit(result_dir: Path, root: Path = DEFAULT_ROOT, *, replace: bool = False,
           manifest: Path | None | Literal["default"] = "default", dry_run: bool = False) -> SubmitReport:
    """Check every result below ``result_dir``; copy them into ``root/results`` only when all pass."""
    root = Path(root)
    manifest = default_manifest(root) if manifest == "default" else manifest
    report = SubmitReport()
    _plan(Path(result_dir), root, manifest, replace, report)
    if report.ok:
        _check_destinations(root, report)
    if not report.ok or dry_run:
        return report
    _write(report)
    return report
