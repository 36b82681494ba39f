"""Rules a leaderboard folder must satisfy, one small function each, run in CI on every change.

Every rule is registered in :data:`RULES` (listed by ``python -m leaderboard rules`` and in the
rendered README), so the documentation and the checks cannot drift apart. A rule returns
messages; the runner attaches the file and the rule id, so every rejection says *which file*
broke *which rule*. Rules run in stages: file rules see only the file system entry (a symlink or
an oversized file is never opened), record and meta rules see the parsed content, tree rules see
the whole folder (duplicates, missing or contradicting ``meta.json``).
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import ValidationError

from benchmark import strict_json
from benchmark.metrics.registry import recorded_metric_spec
from benchmark.metrics.weights import WEIGHTS
from benchmark.protocols import PROTOCOLS
from benchmark.results import (
    RESULT_SCHEMA_VERSION,
    DetectionScores,
    MetricResult,
    Repetition,
    ResultRecord,
    result_migrations,
    summarize_repetitions,
    write_result,
)
from leaderboard.layout import (
    KEEP_FILES,
    MAX_FILE_BYTES,
    META,
    ResultKey,
    default_manifest,
    display,
    is_safe_name,
    results_dir,
)
from leaderboard.meta import SynthesizerVersionMeta, parse_meta
from mvtec_caption.migrations import SchemaVersionError

#: The real datasets a leaderboard result may be computed on (demo data never is).
REAL_DATASETS = ("mvtec_ad", "mvtec_loco")

Stage = Literal["file", "record", "meta", "tree"]
Level = Literal["error", "note"]


@dataclass(frozen=True)
class Problem:
    path: str
    rule: str
    message: str
    level: Level = "error"

    def __str__(self) -> str:
        return f"{self.level.upper()} {self.path}: [{self.rule}] {self.message}"


@dataclass
class Entry:
    """One file, symlink or folder link found below ``results/``."""

    path: Path
    rel: PurePosixPath
    shown: str
    raw: bytes | None = None
    data: Any = None
    stored_version: Any = None
    record: ResultRecord | None = None
    meta: SynthesizerVersionMeta | None = None

    @property
    def kind(self) -> Literal["keep", "meta", "result", "other"]:
        if self.rel.name in KEEP_FILES and len(self.rel.parts) == 1:
            return "keep"
        if len(self.rel.parts) == 3 and self.rel.name == META:
            return "meta"
        if ResultKey.from_relative(self.rel) is not None:
            return "result"
        return "other"


@dataclass
class Context:
    """What rules may consult besides the entry: the folder, the known caption hashes, all entries."""

    root: Path
    known_captions_sha256: dict[str, str] | None
    manifest_shown: str
    entries: list[Entry] = field(default_factory=list)

    def results(self) -> list[Entry]:
        return [e for e in self.entries if e.record is not None]


@dataclass(frozen=True)
class Rule:
    id: str
    summary: str
    stage: Stage
    check: Callable[..., Iterable[Any]]


RULES: list[Rule] = []


def rule(rule_id: str, summary: str, stage: Stage) -> Callable[[Callable[..., Iterable[Any]]], Callable[..., Iterable[Any]]]:
    """Register a check; the order of registration is the order rules run and are documented."""

    def decorate(check: Callable[..., Iterable[Any]]) -> Callable[..., Iterable[Any]]:
        if any(r.id == rule_id for r in RULES):
            raise ValueError(f"rule {rule_id} registered twice")
        RULES.append(Rule(rule_id, summary, stage, check))
        return check

    return decorate


def rules_markdown() -> str:
    """The rule list as Markdown bullets (README and ``python -m leaderboard rules --markdown``)."""
    return "\n".join(f"- `{r.id}` ({r.stage}): {r.summary}" for r in RULES)


# ---- file rules: (entry, ctx) -> messages; the file is not opened when one fails ---------------

@rule("no-symlinks", "no symbolic links anywhere below `results/` (a link can point outside the folder)", "file")
def _no_symlinks(entry: Entry, ctx: Context) -> Iterator[str]:
    if entry.path.is_symlink():
        yield f"is a symbolic link (to {os.readlink(entry.path)}); commit the file itself"


@rule("json-only", "only `.json` files (and `results/.gitkeep`); no images, logs or archives", "file")
def _json_only(entry: Entry, ctx: Context) -> Iterator[str]:
    if entry.kind != "keep" and entry.rel.suffix != ".json":
        yield "is not a JSON file; the leaderboard holds only result records and meta.json files"
    elif not entry.path.is_symlink() and not entry.path.is_file():
        yield "is not a regular file"


@rule("max-size", f"every file is at most {MAX_FILE_BYTES} bytes (a result record is a few kB)", "file")
def _max_size(entry: Entry, ctx: Context) -> Iterator[str]:
    if entry.path.is_file() and not entry.path.is_symlink():
        size = entry.path.stat().st_size
        if size > MAX_FILE_BYTES:
            yield f"is {size} bytes, over the limit of {MAX_FILE_BYTES}"


@rule("safe-names", "path components match `[A-Za-z0-9][A-Za-z0-9._-]*`: no `..`, no separators, no spaces, "
                    "no hidden files (with no-symlinks, nothing can point outside `results/`)", "file")
def _safe_names(entry: Entry, ctx: Context) -> Iterator[str]:
    if entry.kind == "keep":
        return
    stems = list(entry.rel.parts[:-1]) + [entry.rel.name.removesuffix(".json")]
    bad = [name for name in stems if not is_safe_name(name)]
    if bad:
        yield f"unsafe path component(s) {bad}"


@rule("layout", "files sit at `<synthesizer>/<version>/meta.json` or "
                "`<synthesizer>/<version>/<protocol slug>/<dataset>/<category>.json`", "file")
def _layout(entry: Entry, ctx: Context) -> Iterator[str]:
    if entry.kind == "other" and entry.rel.suffix == ".json":
        yield ("is not where the layout puts a file: expected <synthesizer>/<version>/meta.json or "
               "<synthesizer>/<version>/<protocol slug>/<dataset>/<category>.json below results/")


# ---- parsing (registered as rules so they are documented like the others) ----------------------

@rule("valid-json", "every file is UTF-8 standard JSON holding one object (no `NaN` / `Infinity` tokens)", "file")
def _valid_json(entry: Entry, ctx: Context) -> Iterator[str]:
    if entry.kind == "keep":
        return
    try:
        entry.raw = entry.path.read_bytes()
    except OSError as err:
        yield f"cannot be read ({err.strerror or err})"
        return
    try:
        data = strict_json.loads(entry.raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        yield f"is not UTF-8 text ({err.reason} at byte {err.start})"
        return
    except strict_json.NonFiniteNumberError as err:
        yield f"is not standard JSON: it {err}"
        return
    except json.JSONDecodeError as err:
        yield f"is not valid JSON ({err})"
        return
    if not isinstance(data, dict):
        yield f"holds a JSON {type(data).__name__}, expected an object"
        return
    entry.data = data
    entry.stored_version = data.get("schema_version")


def _pydantic_summary(err: ValidationError, limit: int = 5) -> str:
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in err.errors()[:limit]]
    more = f" (and {err.error_count() - limit} more)" if err.error_count() > limit else ""
    return "; ".join(parts) + more


@rule("schema", "results parse as `benchmark.results.ResultRecord` (older schema versions are upgraded first "
                "through `result_migrations`); `meta.json` parses as `leaderboard.meta.SynthesizerVersionMeta`", "file")
def _schema(entry: Entry, ctx: Context) -> Iterator[str]:
    if entry.data is None or entry.kind not in ("result", "meta"):
        return
    try:
        if entry.kind == "result":
            entry.record = ResultRecord.model_validate(result_migrations.upgrade(entry.data))
        else:
            entry.meta = parse_meta(entry.data)
    except SchemaVersionError as err:
        yield str(err)
    except ValidationError as err:
        what = "ResultRecord" if entry.kind == "result" else "SynthesizerVersionMeta"
        yield f"does not match the {what} schema: {_pydantic_summary(err)}"


# ---- record rules: (entry, ctx) -> messages, for parsed results ------------------------------

@rule("names-match", "synthesizer, version, protocol slug, dataset and category in the path equal the record's", "record")
def _names_match(entry: Entry, ctx: Context) -> Iterator[str]:
    path_key, record_key = ResultKey.from_relative(entry.rel), ResultKey.of(entry.record)
    labels = ("synthesizer", "synthesizer version", "protocol slug", "dataset", "category")
    for label, in_path, in_record in zip(labels, path_key.names(), record_key.names()):
        if in_path != in_record:
            yield f"path says {label} {in_path!r} but the record says {in_record!r} (expected at {record_key.relative()})"


@rule("protocol-known", "the record's protocol is registered in benchmark.protocols", "record")
def _protocol_known(entry: Entry, ctx: Context) -> Iterator[str]:
    if entry.record.protocol.id not in PROTOCOLS:
        yield f"unknown protocol {entry.record.protocol.id!r}; known: {', '.join(sorted(PROTOCOLS))}"


@rule("protocol-config", "the record's protocol config hash equals the registered protocol's "
                         "(a changed protocol is a new protocol version)", "record")
def _protocol_config(entry: Entry, ctx: Context) -> Iterator[str]:
    protocol = PROTOCOLS.get(entry.record.protocol.id)
    if protocol is not None and entry.record.protocol.config_hash != protocol.config_hash:
        yield (f"protocol {protocol.id} config hash {entry.record.protocol.config_hash[:12]} differs from the "
               f"registered {protocol.config_hash[:12]}: the run used different settings")


@rule("real-data", f"no demo data: dataset is one of {', '.join(REAL_DATASETS)}, is_demo is false, captions are "
                   "not the demo's and the protocol is not demo_only", "record")
def _real_data(entry: Entry, ctx: Context) -> Iterator[str]:
    record = entry.record
    if record.dataset.is_demo:
        yield "is computed on demo data (dataset.is_demo=true); demo results never enter the leaderboard"
    if record.dataset.name not in REAL_DATASETS:
        yield f"dataset {record.dataset.name!r} is not a real dataset ({', '.join(REAL_DATASETS)})"
    if record.dataset.caption_source_kind == "demo":
        yield "captions come from the demo caption source"
    protocol = PROTOCOLS.get(record.protocol.id)
    if protocol is not None and protocol.demo_only:
        yield f"protocol {protocol.id} is demo_only (for the embedded demo and tests); never on the leaderboard"


@rule("captions-hash", "the record's `captions_sha256` equals the dataset's hash in `annotations/manifest.json` "
                       "(checked when that file exists)", "record")
def _captions_hash(entry: Entry, ctx: Context) -> Iterator[str]:
    known = ctx.known_captions_sha256
    dataset = entry.record.dataset
    if known is None or dataset.name not in REAL_DATASETS:
        return
    if dataset.name not in known:
        yield f"{ctx.manifest_shown} has no captions_sha256 for dataset {dataset.name!r}"
    elif dataset.captions_sha256 != known[dataset.name]:
        yield (f"captions_sha256 {dataset.captions_sha256[:16]}... differs from {ctx.manifest_shown}'s "
               f"{known[dataset.name][:16]}... for {dataset.name}: the run used other captions")


@rule("detectors-known", "every detector of a record is one the record's protocol pins a config for", "record")
def _detectors_known(entry: Entry, ctx: Context) -> Iterator[str]:
    protocol = PROTOCOLS.get(entry.record.protocol.id)
    if protocol is None:
        return
    for detector in {d.name: d for repetition in entry.record.repetitions for d in repetition.detectors}.values():
        if detector.name not in protocol.detectors:
            yield (f"detector {detector.name!r} is not a detector of protocol {protocol.id} "
                   f"({', '.join(sorted(protocol.detectors))})")


def _range_problems(where: str, value: float | None, problem: Callable[[float], str | None]) -> Iterator[str]:
    if value is not None and (message := problem(value)) is not None:
        yield f"{where} = {message}"


@rule("scores-in-range", "every score is a finite number inside its metric's range as the metric defines it "
                         "(detection scores in [0, 1]; each fidelity metric's `value_range` in `benchmark.metrics`, "
                         "e.g. IS >= 1); a fidelity metric id must be a registered metric", "record")
def _scores_in_range(entry: Entry, ctx: Context) -> Iterator[str]:
    record = entry.record
    for repetition in record.repetitions:
        yield from _repetition_scores_in_range(repetition, f"repetition {repetition.index} " if len(record.repetitions) > 1 else "")


def _repetition_scores_in_range(repetition: Repetition, where: str) -> Iterator[str]:
    for detector in repetition.detectors:
        groups = {"overall": detector.overall, "mean_over_defects": detector.mean_over_defects,
                  **{f"per_defect.{defect}": scores for defect, scores in detector.per_defect.items()}}
        for group, scores in groups.items():
            for score, value in scores.model_dump().items():
                yield from _range_problems(f"{where}detector {detector.name} {group}.{score}", value,
                                           DetectionScores.RANGE.problem)
    for metric in repetition.fidelity:
        spec = recorded_metric_spec(metric.id)
        if spec is None:
            yield f"{where}fidelity metric {metric.id!r} is not a registered metric, so its values cannot be checked"
            continue
        yield from _range_problems(f"{where}metric {metric.id} value", metric.value, spec.value_range.problem)
        for defect, value in metric.per_defect.items():
            yield from _range_problems(f"{where}metric {metric.id} per_defect.{defect}", value, spec.value_range.problem)


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _unpinned_weights(metric: MetricResult) -> Iterator[str]:
    """Why a metric's recorded weights are not its pinned reference weights (empty when they are)."""
    spec = recorded_metric_spec(metric.id)
    if spec is None or not spec.standard or spec.id != metric.id:
        yield "it is not a standard metric computed on verified weights"
        return
    recorded = {w.name: w for w in metric.weights}
    for name in spec.needs_weights:
        pin, ref = WEIGHTS.get(name), recorded.get(name)
        if ref is None:
            yield f"its reference weights {name} are not listed"
        elif pin is None or not pin.pinned:
            yield f"{name} has no pinned sha256 in benchmark/metrics/weights.py, so no result can be verified"
        elif ref.sha256 is None or not _SHA256.fullmatch(ref.sha256) or not pin.matches(ref.sha256):
            yield f"{name} has sha256 {ref.sha256}, not the pinned {pin.pin_text()}"


@rule("comparable-claims", "comparable=true needs real data and, for a synthesizer, every protocol fidelity metric "
                           "computed and comparable; a metric claims comparable only when computed by a standard "
                           "metric on every one of its reference weights with the sha256 pinned in "
                           "`benchmark/metrics/weights.py`", "record")
def _comparable_claims(entry: Entry, ctx: Context) -> Iterator[str]:
    record = entry.record
    for metric in (m for repetition in record.repetitions for m in repetition.fidelity):
        if metric.comparable and (not metric.computed or metric.value is None):
            yield f"metric {metric.id} claims comparable=true but was not computed"
        elif metric.comparable:
            for reason in _unpinned_weights(metric):
                yield f"metric {metric.id} claims comparable=true but {reason}"
    if not record.comparable:
        return
    if record.dataset.is_demo or record.dataset.name not in REAL_DATASETS:
        yield "claims comparable=true on data that is not a real dataset"
    protocol = PROTOCOLS.get(record.protocol.id)
    if protocol is None or record.synthesizer is None:
        return
    by_id = {metric.id: metric for metric in record.fidelity}
    for metric_id in protocol.fidelity_metrics:
        metric = by_id.get(metric_id)
        if metric is None:
            yield f"claims comparable=true but the standard metric {metric_id!r} is missing"
        elif metric.not_applicable:
            continue
        elif not (metric.computed and metric.comparable and metric.value is not None):
            yield (f"claims comparable=true but the standard metric {metric_id!r} is "
                   f"{'not computed' if not metric.computed else 'not comparable'} ({metric.reason or 'no reason given'})")


@rule("repetitions", "repetitions are numbered 0..n-1 with seeds base + index (the protocol's seed rule), the "
                     "summary (mean, std, 95 % interval per metric) is the one recomputed from them, and "
                     "comparable=true needs at least the protocol's number of repetitions", "record")
def _repetitions(entry: Entry, ctx: Context) -> Iterator[str]:
    record = entry.record
    indices = [rep.index for rep in record.repetitions]
    if indices != list(range(len(indices))):
        yield f"repetitions are numbered {indices}, expected 0..{len(indices) - 1}"
    first = record.repetitions[0].seeds
    for rep in record.repetitions[1:]:
        expected = {name: seed + rep.index for name, seed in first.items()}
        if rep.seeds != expected:
            yield f"repetition {rep.index} has seeds {rep.seeds}, the seed rule gives {expected}"
    if record.uncertainty.repetitions != len(record.repetitions):
        yield (f"uncertainty.repetitions is {record.uncertainty.repetitions} but the record holds "
               f"{len(record.repetitions)} repetitions")
    if record.summary != summarize_repetitions(record.repetitions):
        yield "the summary differs from the one recomputed from the repetitions (edited by hand?)"
    protocol = PROTOCOLS.get(record.protocol.id)
    if protocol is not None and record.comparable and len(record.repetitions) < protocol.repetitions:
        yield (f"claims comparable=true with {len(record.repetitions)} of the {protocol.repetitions} repetitions "
               f"that {protocol.id} pins")


# ---- meta rules: (entry, ctx) -> messages, for parsed meta.json --------------------------------

@rule("meta-names", "meta.json's name and version equal its folder names", "meta")
def _meta_names(entry: Entry, ctx: Context) -> Iterator[str]:
    synthesizer, version = entry.rel.parts[:2]
    if entry.meta.name != synthesizer:
        yield f"name {entry.meta.name!r} differs from the folder {synthesizer!r}"
    if entry.meta.version != version:
        yield f"version {entry.meta.version!r} differs from the folder {version!r}"


@rule("meta-complete", "meta.json has no field left at a 'TODO' placeholder (submit pre-fills them)", "meta")
def _meta_complete(entry: Entry, ctx: Context) -> Iterator[str]:
    todo = entry.meta.placeholders()
    if todo:
        yield f"fields still marked TODO: {', '.join(todo)} (fill them in; see leaderboard/README.md)"


# ---- tree rules: ctx -> (entry or shown path, message) -----------------------------------------

@rule("no-duplicates", "no two result files with the same content hash or the same identity "
                       "(synthesizer, version, protocol, dataset, category)", "tree")
def _no_duplicates(ctx: Context) -> Iterator[tuple[Entry, str]]:
    by_hash: dict[str, list[Entry]] = defaultdict(list)
    by_key: dict[ResultKey, list[Entry]] = defaultdict(list)
    for entry in ctx.results():
        by_hash[entry.record.content_hash()].append(entry)
        by_key[ResultKey.of(entry.record)].append(entry)
    for groups, what in ((by_hash, "the same content"), (by_key, "the same identity")):
        for group in groups.values():
            for entry in group[1:]:
                yield entry, f"has {what} as {group[0].shown}"


@rule("meta-present", "every `<synthesizer>/<version>/` folder with results has a `meta.json`", "tree")
def _meta_present(ctx: Context) -> Iterator[tuple[Entry, str]]:
    metas = {e.rel.parts[:2] for e in ctx.entries if e.kind == "meta"}
    for entry in ctx.entries:
        if entry.kind == "result" and entry.rel.parts[:2] not in metas:
            yield entry, f"has no {'/'.join(entry.rel.parts[:2])}/{META} (submit creates a draft)"
            metas.add(entry.rel.parts[:2])  # once per folder


@rule("meta-consistent", "meta.json's flags (uses_text, uses_masks, uses_real_anomalies, keeps_outside_mask, "
                         "ablation_of) agree with every record of that synthesizer version", "tree")
def _meta_consistent(ctx: Context) -> Iterator[tuple[Entry, str]]:
    metas = {e.rel.parts[:2]: e for e in ctx.entries if e.meta is not None}
    for entry in ctx.results():
        meta_entry = metas.get(entry.rel.parts[:2])
        if meta_entry is not None:
            for message in meta_entry.meta.disagreements(entry.record):
                yield entry, f"{message} ({meta_entry.shown})"


@rule("schema-current", "(note) files stored under an older schema version validate after upgrade through "
                        "`benchmark.results.result_migrations`; "
                        "`validate --fix` rewrites them at the current version", "tree")
def _schema_current(ctx: Context) -> Iterator[tuple[Entry, str]]:
    for entry in ctx.results():
        if entry.stored_version != RESULT_SCHEMA_VERSION:
            yield entry, (f"stored as schema v{entry.stored_version}, read as v{RESULT_SCHEMA_VERSION} after upgrade; "
                          "`python -m leaderboard validate --fix` rewrites it")


NOTE_RULES = frozenset({"schema-current"})


# ---- running -----------------------------------------------------------------------------------

@dataclass
class Report:
    problems: list[Problem]
    context: Context

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def records(self) -> list[tuple[Entry, ResultRecord]]:
        return [(e, e.record) for e in self.context.results()]

    def metas(self) -> dict[tuple[str, str], SynthesizerVersionMeta]:
        return {e.rel.parts[:2]: e.meta for e in self.context.entries if e.meta is not None}


def known_captions_sha256(manifest: Path | None) -> tuple[dict[str, str] | None, list[str]]:
    """Hashes per dataset from ``annotations/manifest.json``; None when there is no (real) manifest."""
    if manifest is None or not manifest.is_file():
        return None, []
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        hashes = data["source"]["captions_sha256"]
        if not isinstance(hashes, dict):
            raise TypeError("source.captions_sha256 is not an object")
    except (OSError, ValueError, KeyError, TypeError) as err:
        return {}, [f"cannot read captions_sha256 from it ({err}); every result's hash check fails"]
    if data.get("is_demo"):
        return None, ["describes demo data; caption hashes are not checked against it"]
    return {str(k): str(v) for k, v in hashes.items()}, []


def scan(root: Path) -> list[Entry]:
    """Every file, symlink and linked folder below ``results/``, sorted; symlinked folders are not entered."""
    base = results_dir(root)
    entries: list[Entry] = []
    if not base.is_dir():
        return entries
    for folder, dirnames, filenames in os.walk(base, followlinks=False):
        here = Path(folder)
        linked = [d for d in dirnames if (here / d).is_symlink()]
        dirnames[:] = sorted(d for d in dirnames if d not in linked)
        for name in sorted(filenames + linked):
            path = here / name
            entries.append(Entry(path=path, rel=PurePosixPath(path.relative_to(base).as_posix()),
                                 shown=display(path, root)))
    return sorted(entries, key=lambda e: e.rel.as_posix())


def _context(root: Path, manifest: Path | None) -> tuple[Context, list[Problem]]:
    known, manifest_messages = known_captions_sha256(manifest)
    shown = display(manifest, root) if manifest is not None else "annotations/manifest.json"
    problems = [Problem(shown, "captions-hash", m, "error" if known == {} else "note") for m in manifest_messages]
    return Context(root=Path(root), known_captions_sha256=known, manifest_shown=shown), problems


def _run_entry_rules(entry: Entry, ctx: Context, stage: Stage) -> list[Problem]:
    problems = []
    for r in (r for r in RULES if r.stage == stage):
        for message in r.check(entry, ctx):
            problems.append(Problem(entry.shown, r.id, message))
        if stage == "file" and problems:
            break  # never open a file that already failed a file rule
    return problems


def validate_tree(root: Path, manifest: Path | None | Literal["default"] = "default") -> Report:
    """Check every file below ``root/results`` against every rule; never modifies anything."""
    root = Path(root)
    manifest = default_manifest(root) if manifest == "default" else manifest
    ctx, manifest_problems = _context(root, manifest)
    problems: list[Problem] = []
    if results_dir(root).is_symlink():
        problems.append(Problem(display(results_dir(root), root), "no-symlinks", "the results folder is a symbolic link"))
        return Report(problems, ctx)
    ctx.entries = scan(root)
    for entry in ctx.entries:
        problems += _run_entry_rules(entry, ctx, "file")
    for entry in ctx.entries:
        if entry.record is not None:
            problems += _run_entry_rules(entry, ctx, "record")
        if entry.meta is not None:
            problems += _run_entry_rules(entry, ctx, "meta")
    for r in (r for r in RULES if r.stage == "tree"):
        for entry, message in r.check(ctx):
            problems.append(Problem(entry.shown, r.id, message, "note" if r.id in NOTE_RULES else "error"))
    if ctx.results():  # the manifest only matters when there are results to check against it
        problems = manifest_problems + problems
        if ctx.known_captions_sha256 is None and not manifest_problems:
            problems.append(Problem(ctx.manifest_shown, "captions-hash", "not found: caption hashes were not checked", "note"))
    return Report(problems, ctx)


def check_record(record: ResultRecord, root: Path, manifest: Path | None, shown: str) -> list[Problem]:
    """The record rules for a record not yet in the folder (used by ``submit`` before copying)."""
    ctx, problems = _context(Path(root), manifest)
    entry = Entry(path=Path(shown), rel=ResultKey.of(record).relative(), shown=shown, record=record)
    return [p for p in problems if p.level == "error"] + _run_entry_rules(entry, ctx, "record")


def fix_tree(root: Path, manifest: Path | None | Literal["default"] = "default") -> list[str]:
    """Rewrite results stored under an older schema version at the current one; returns the files rewritten."""
    report = validate_tree(root, manifest)
    fixed = []
    for entry, record in report.records():
        if entry.stored_version != RESULT_SCHEMA_VERSION:
            write_result(record, entry.path)
            fixed.append(entry.shown)
    return fixed
