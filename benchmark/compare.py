"""``python -m benchmark compare``: is synthesizer A better than B, per category and overall?

Two result records are paired when they share protocol, dataset, category and test split; their
repetitions are paired by index and must have been run with the same seeds (the protocol's seed
rule makes them so). Per category the per-repetition differences A − B are summarized with the
t-interval of :mod:`benchmark.statistics`; overall, the differences are first averaged over the
categories both methods cover (repetition by repetition), then summarized the same way, so the
overall verdict is about the mean over those categories.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmark.results import DETECTION_SCORE_NAMES, NO_SYNTHESIS, ResultRecord, load_result
from benchmark.statistics import PairedComparison, compare_paired, format_summary


@dataclass(frozen=True)
class ComparisonRow:
    scope: str  # a category, or "overall (k categories)"
    comparison: PairedComparison | None
    note: str = ""


@dataclass
class ComparisonTable:
    protocol: str
    dataset: str
    a: str
    b: str
    metric: str
    detector: str | None
    rows: list[ComparisonRow] = field(default_factory=list)


def load_records(folder: Path) -> list[ResultRecord]:
    """Every result record below ``folder`` (``meta.json`` files are leaderboard metadata, not results)."""
    paths = sorted(p for p in Path(folder).rglob("*.json") if p.name != "meta.json")
    if not paths:
        raise FileNotFoundError(f"no result records below {folder}")
    records = []
    for path in paths:
        try:
            records.append(load_result(path))
        except ValueError as err:
            raise ValueError(f"{path}: not a readable result record ({str(err).splitlines()[0]})") from err
    return records


def detector_of(record: ResultRecord, detector: str | None) -> str | None:
    """The asked detector; the reference row (no synthesis) has its own detectors and uses its first one."""
    names = [d.name for d in record.detectors]
    if detector in names or record.synthesizer is not None or not names:
        return detector
    return names[0]


def _values(record: ResultRecord, metric: str, detector: str | None) -> tuple[list[float | None], bool]:
    """Per-repetition values of ``metric`` and whether higher is better."""
    detector = detector_of(record, detector)
    if metric in DETECTION_SCORE_NAMES:
        values = []
        for repetition in record.repetitions:
            result = next((d for d in repetition.detectors if d.name == detector), None)
            values.append(None if result is None else getattr(result.overall, metric))
        return values, True
    values, better = [], True
    for repetition in record.repetitions:
        result = next((m for m in repetition.fidelity if m.id == metric and m.computed), None)
        values.append(None if result is None else result.value)
        better = result.higher_is_better if result is not None else better
    return values, better


def _seed_mismatch(a: ResultRecord, b: ResultRecord, n: int) -> str | None:
    for index in range(n):
        seeds_a, seeds_b = a.repetitions[index].seeds, b.repetitions[index].seeds
        shared = set(seeds_a) & set(seeds_b)
        if any(seeds_a[k] != seeds_b[k] for k in shared):
            return f"repetition {index} was run with other seeds ({seeds_a} vs {seeds_b}): not paired"
    return None


def _default_detector(a: ResultRecord, b: ResultRecord) -> str | None:
    if b.synthesizer is None:
        a, b = b, a
    if a.synthesizer is None:  # the reference row: the other row's first detector trained on its anomalies
        return next((d.name for d in b.detectors if d.uses_synthesis), None)
    names_b = {d.name for d in b.detectors}
    trained = [d.name for d in a.detectors if d.name in names_b and d.uses_synthesis]
    shared = [d.name for d in a.detectors if d.name in names_b]
    return (trained or shared or [None])[0]


def _pair(a: ResultRecord, b: ResultRecord, metric: str, detector: str | None
          ) -> tuple[list[float], list[float], bool] | str:
    """Paired per-repetition values, or the reason they cannot be paired."""
    if a.dataset.split_sha256 != b.dataset.split_sha256:
        return "different test splits: not paired"
    n = min(len(a.repetitions), len(b.repetitions))
    mismatch = _seed_mismatch(a, b, n)
    if mismatch:
        return mismatch
    values_a, better = _values(a, metric, detector)
    values_b, _ = _values(b, metric, detector)
    pairs = [(x, y) for x, y in zip(values_a[:n], values_b[:n])]
    if not pairs or any(x is None or y is None for x, y in pairs):
        return f"{metric} missing in some repetition" + (f" of detector {detector}" if detector else "")
    return [x for x, _ in pairs], [y for _, y in pairs], better


def parse_synth(spec: str) -> tuple[str, str | None]:
    """``NAME`` or ``NAME@VERSION`` -> (name, version or None)."""
    name, _, version = spec.partition("@")
    return name, version or None


def _pick(index: dict[tuple[str, str, str, str, str], ResultRecord], protocol_id: str, dataset: str, category: str,
          spec: str) -> ResultRecord | None:
    """The record of ``spec`` in one (protocol, dataset, category); a bare name must match one version only."""
    name, version = parse_synth(spec)
    found = {v: r for (p, d, c, n, v), r in index.items()
             if (p, d, c, n) == (protocol_id, dataset, category, name) and version in (None, v)}
    if len(found) > 1:
        raise ValueError(f"{len(found)} versions of {name} for {protocol_id}/{dataset}/{category} "
                         f"({', '.join(sorted(found))}): name one as {name}@VERSION")
    return next(iter(found.values()), None)


def compare_records(records: Sequence[ResultRecord], a: str, b: str, metric: str = "pixel_ap",
                    detector: str | None = None, protocol: str | None = None) -> list[ComparisonTable]:
    """One table per (protocol, dataset) where both synthesizers have records.

    ``a`` and ``b`` are synthesizer names, or ``NAME@VERSION`` where a folder holds several versions of
    one synthesizer (e.g. ``axf@2`` against ``axf@5``: same seeds and test images, so still paired).
    """
    index: dict[tuple[str, str, str, str, str], ResultRecord] = {}
    for record in records:
        if protocol and record.protocol.id != protocol:
            continue
        key = (record.protocol.id, record.dataset.name, record.dataset.category, record.synthesizer_name,
               record.synthesizer_version)
        if key in index:
            raise ValueError(f"two records for {'/'.join(key[:4])} version {key[4]}: compare one run folder at a time")
        index[key] = record
    names = {parse_synth(a)[0], parse_synth(b)[0]}
    groups = sorted({(p, d) for p, d, _, n, _ in index if n in names})
    tables = []
    for protocol_id, dataset in groups:
        categories = sorted({c for p, d, c, _, _ in index if (p, d) == (protocol_id, dataset)})
        pairs = [(c, _pick(index, protocol_id, dataset, c, a), _pick(index, protocol_id, dataset, c, b))
                 for c in categories]
        pairs = [(c, ra, rb) for c, ra, rb in pairs if ra is not None and rb is not None]
        if not pairs:
            continue
        chosen = detector if metric not in DETECTION_SCORE_NAMES else (detector or _default_detector(pairs[0][1], pairs[0][2]))
        table = ComparisonTable(protocol_id, dataset, a, b, metric, chosen if metric in DETECTION_SCORE_NAMES else None)
        paired: dict[str, tuple[list[float], list[float], bool]] = {}
        for category, record_a, record_b in pairs:
            result = _pair(record_a, record_b, metric, chosen)
            if isinstance(result, str):
                table.rows.append(ComparisonRow(category, None, result))
                continue
            paired[category] = result
            table.rows.append(ComparisonRow(category, compare_paired(result[0], result[1], result[2])))
        if len(paired) > 1:
            table.rows.append(_overall(paired))
        tables.append(table)
    if not tables:
        raise ValueError(f"no (protocol, dataset, category) has records of both {a!r} and {b!r}")
    return tables


def _overall(paired: dict[str, tuple[list[float], list[float], bool]]) -> ComparisonRow:
    n = min(len(values_a) for values_a, _, _ in paired.values())
    better = next(iter(paired.values()))[2]
    mean_a = np.mean([values_a[:n] for values_a, _, _ in paired.values()], axis=0)
    mean_b = np.mean([values_b[:n] for _, values_b, _ in paired.values()], axis=0)
    return ComparisonRow(f"overall ({len(paired)} categories)", compare_paired(mean_a.tolist(), mean_b.tolist(), better))


def format_comparison(tables: Sequence[ComparisonTable], markdown: bool = False) -> str:
    blocks = []
    for table in tables:
        what = f"{table.metric}" + (f" ({table.detector}; the reference row with its own detector)"
                                     if table.detector and NO_SYNTHESIS in (table.a, table.b) else
                                     f" ({table.detector})" if table.detector else "")
        title = f"{table.protocol} · {table.dataset} · {what}: A = {table.a}, B = {table.b}"
        header = ["scope", "n", "A mean", "B mean", "A − B (95 % CI)", "verdict"]
        rows = []
        for row in table.rows:
            c = row.comparison
            if c is None:
                rows.append([row.scope, "–", "–", "–", "–", row.note])
                continue
            interval = (f"{c.difference.mean:+.3f} [{c.difference.ci_low:+.3f}, {c.difference.ci_high:+.3f}]"
                        if c.difference.ci_low is not None else f"{c.difference.mean:+.3f} (one repetition: no interval)")
            verdict = c.verdict.replace("A better", f"{table.a} better").replace("B better", f"{table.b} better")
            rows.append([row.scope, str(c.n), f"{c.mean_a:.3f}", f"{c.mean_b:.3f}", interval, verdict])
        if markdown:
            lines = [f"**{title}**", "", "| " + " | ".join(header) + " |", "|---|---:|---:|---:|---:|---|"]
            lines += ["| " + " | ".join(r) + " |" for r in rows]
        else:
            widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
            lines = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths))]
            lines += ["  ".join(str(v).ljust(w) for v, w in zip(r, widths)) for r in rows]
        blocks.append("\n".join(lines))
    footer = ("Paired over repetitions run with the same seeds on the same test images; 95 % Student-t interval of the "
              "mean difference; a verdict other than 'no detectable difference' needs the interval to exclude 0.")
    return "\n\n".join(blocks) + "\n\n" + footer


__all__ = ["ComparisonRow", "ComparisonTable", "compare_records", "format_comparison", "format_summary", "load_records"]
