"""What every rendering shows: records grouped per (protocol, dataset), never mixed across protocols.

The Markdown README, the HTML page and the plots are all built from these sections and frames,
so the three views cannot disagree. A section's rows are synthesizer versions (plus the
no-synthesis reference row); comparable and non-comparable results are kept in separate rows so
a renderer can show them apart. Demo data never reaches a section.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from benchmark.protocols import PROTOCOLS, Protocol
from benchmark.results import NO_SYNTHESIS, ResultRecord
from benchmark.statistics import TIE, Summary, compare_paired, format_summary, summarize
from leaderboard.meta import SynthesizerVersionMeta

#: Detection scores shown in the tables (the record has more; these are the literature's usual four).
DETECTION_SCORES: dict[str, str] = {"image_auroc": "I-AUROC", "pixel_auroc": "P-AUROC", "pixel_ap": "P-AP", "aupro": "AUPRO"}
CAPTION_PREFIX = "caption"
MISSING = "–"
NOT_COMPARABLE_MARK = "†"
TOP_GROUP_MARK = "★"


def fmt(value: float | None) -> str:
    """Three decimals, the same in Markdown and HTML; missing values are a dash."""
    return MISSING if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


@dataclass(frozen=True)
class Row:
    """One synthesizer version in one section, either all-comparable or all-not."""

    synthesizer: str
    version: str
    comparable: bool
    records: tuple[ResultRecord, ...]
    meta: SynthesizerVersionMeta | None

    @property
    def label(self) -> str:
        base = "no synthesis (reference)" if self.synthesizer == NO_SYNTHESIS else f"{self.synthesizer} v{self.version}"
        return base if self.comparable else f"{base} {NOT_COMPARABLE_MARK}"

    @property
    def categories(self) -> list[str]:
        return [r.dataset.category for r in self.records]

    @property
    def repetitions(self) -> list[int]:
        """The distinct numbers of repetitions among the row's records."""
        return sorted({len(r.repetitions) for r in self.records})

    def notes(self) -> list[str]:
        """The records' reasons, each on one line (a line break would end a Markdown list item)."""
        return sorted({" ".join(note.split()) for r in self.records for note in r.comparable_notes})

    def uses(self) -> dict[str, str]:
        """Text / masks / real anomalies, from meta.json (or the records when there is none)."""
        if self.synthesizer == NO_SYNTHESIS:
            return {"text": MISSING, "masks": MISSING, "real anomalies": MISSING}
        source = self.meta if self.meta is not None else self.records[0].synthesizer.meta
        return {"text": "yes" if source.uses_text else "no", "masks": "yes" if source.uses_masks else "no",
                "real anomalies": "yes" if source.uses_real_anomalies else "no"}


@dataclass
class Section:
    protocol: Protocol
    dataset: str
    rows: list[Row] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return f"{self.protocol.slug}-{self.dataset}"

    @property
    def title(self) -> str:
        return f"{self.protocol.id} · {self.dataset}"

    @property
    def categories(self) -> list[str]:
        return sorted({c for row in self.rows for c in row.categories})

    def records(self) -> list[ResultRecord]:
        return [r for row in self.rows for r in row.records]

    @property
    def repeated(self) -> bool:
        """Whether the section's protocol pins repetitions (cells then show mean ± interval)."""
        return self.protocol.repetitions > 1

    def detectors(self) -> list[str]:
        """Detectors present, the protocol's defaults first (in its order), then the rest by name."""
        present = {d.name for r in self.records() for d in r.detectors}
        ordered = [d for d in self.protocol.default_detectors if d in present]
        return ordered + sorted(present - set(ordered))

    def metric_ids(self, caption: bool) -> list[str]:
        """Fidelity (or caption) metric ids present, the protocol's order first."""
        present = {m.id for r in self.records() for m in r.fidelity if m.id.startswith(CAPTION_PREFIX) == caption}
        ordered = [m for m in self.protocol.fidelity_metrics if m in present]
        return ordered + sorted(present - set(ordered))

    def main_score(self) -> tuple[str, str] | None:
        """(detector, score) that ranks rows: pixel AP of the first detector trained on synthesized data."""
        trained = {d.name for r in self.records() for d in r.detectors if d.uses_synthesis}
        for detector in self.detectors():
            if detector in trained:
                return detector, "pixel_ap"
        detectors = self.detectors()
        return (detectors[0], "pixel_ap") if detectors else None


def _metric_summary(record: ResultRecord, metric_id: str) -> Summary | None:
    return record.metric(metric_id)


def _detection_summary(record: ResultRecord, detector: str, score: str) -> Summary | None:
    return record.detection(detector, score)


def _mean_of(summary: Summary | None) -> float | None:
    return None if summary is None else summary.mean


def _detection_value(record: ResultRecord, detector: str, score: str) -> float | None:
    """The mean over the record's repetitions (the single value of a one-repetition record)."""
    return _mean_of(_detection_summary(record, detector, score))


def _mean(values: Iterable[float | None]) -> float:
    present = [v for v in values if v is not None]
    return float(pd.Series(present, dtype="float64").mean()) if present else math.nan


def build_sections(records: Iterable[ResultRecord], metas: dict[tuple[str, str], SynthesizerVersionMeta]) -> list[Section]:
    """Group displayable records; demo data and unregistered or demo-only protocols are dropped here too."""
    groups: dict[tuple[str, str], dict[tuple[str, str, bool], list[ResultRecord]]] = {}
    for record in records:
        protocol = PROTOCOLS.get(record.protocol.id)
        if record.dataset.is_demo or protocol is None or protocol.demo_only:
            continue
        key = (record.synthesizer_name, record.synthesizer_version, record.comparable)
        groups.setdefault((protocol.id, record.dataset.name), {}).setdefault(key, []).append(record)
    sections = []
    for (protocol_id, dataset), by_row in sorted(groups.items()):
        section = Section(PROTOCOLS[protocol_id], dataset)
        section.rows = [Row(s, v, c, tuple(sorted(rs, key=lambda r: r.dataset.category)), metas.get((s, v)))
                        for (s, v, c), rs in by_row.items()]
        section.rows = rank(section)
        sections.append(section)
    return sections


def rank(section: Section) -> list[Row]:
    """Comparable rows first; within each, by the section's main score (best first), then by label."""
    main = section.main_score()

    def key(row: Row) -> tuple[bool, float, str]:
        value = _mean(_detection_value(r, *main) for r in row.records) if main else math.nan
        return (not row.comparable, -value if not math.isnan(value) else math.inf, row.label)

    return sorted(section.rows, key=key)


#: The header suffix of a classifier's column: the AXF paper's Table 3 measure.
CLASSIFICATION_LABEL = "defect-type mean acc."


@dataclass(frozen=True)
class Column:
    """One table column: its header and how to get a record's summary over repetitions."""

    header: str
    summary: Callable[[ResultRecord], Summary | None]
    higher_is_better: bool = True

    def value(self, record: ResultRecord) -> float | None:
        """The record's mean over repetitions."""
        return _mean_of(self.summary(record))


def detection_columns(section: Section) -> list[Column]:
    """Each detector's scores; a defect-type classifier's mean per-type accuracy (it has no detection scores)."""
    columns = []
    for detector in section.detectors():
        columns += [Column(f"{detector} {label}", lambda r, d=detector, s=score: _detection_summary(r, d, s))
                    for score, label in DETECTION_SCORES.items()]
        if any(d.name == detector and d.classification is not None for r in section.records() for d in r.detectors):
            columns.append(Column(f"{detector} {CLASSIFICATION_LABEL}", lambda r, d=detector: r.classification_accuracy(d)))
    return columns


def metric_columns(section: Section, caption: bool) -> list[Column]:
    better = {m.id: m.higher_is_better for r in section.records() for m in r.fidelity}
    return [Column(metric_id, lambda r, m=metric_id: _metric_summary(r, m), better.get(metric_id, True))
            for metric_id in section.metric_ids(caption)]


def repetition_means(records: Sequence[ResultRecord], column: Column) -> list[float] | None:
    """Per repetition, the mean over ``records`` (categories) of the column; None unless every record has the
    same number (>= 2) of repetitions run with the same seeds and a value in each."""
    summaries = [column.summary(r) for r in records]
    if not records or any(s is None for s in summaries):
        return None
    counts = {s.n for s in summaries}
    seeds = {json.dumps(r.seeds, sort_keys=True) for r in records}
    if len(counts) != 1 or counts == {1} or len(seeds) != 1:
        return None
    return [math.fsum(s.values[i] for s in summaries) / len(summaries) for i in range(counts.pop())]


def row_summary(row: Row, column: Column) -> Summary | None:
    """The row's mean over its categories with the 95 % interval over repetitions (see
    :func:`repetition_means`); the plain mean (n = 1) when the repetitions cannot be aligned."""
    per_repetition = repetition_means(row.records, column)
    if per_repetition is not None:
        return summarize(per_repetition)
    present = [v for v in (column.value(r) for r in row.records) if v is not None]
    return summarize([math.fsum(present) / len(present)]) if present else None


def separable(a: Row, b: Row, column: Column) -> bool:
    """Whether the paired comparison over repetitions (on the categories both rows cover) tells a from b."""
    shared = sorted(set(a.categories) & set(b.categories))
    records_a = [r for r in a.records if r.dataset.category in shared]
    records_b = [r for r in b.records if r.dataset.category in shared]
    values_a, values_b = repetition_means(records_a, column), repetition_means(records_b, column)
    if values_a is None or values_b is None or len(values_a) != len(values_b):
        return False
    if not _same_seeds(records_a[0].seeds, records_b[0].seeds):
        return False
    return compare_paired(values_a, values_b, column.higher_is_better).verdict != TIE


def _same_seeds(a: list[dict[str, int]], b: list[dict[str, int]]) -> bool:
    """Repetition by repetition, the seeds both rows have are equal (the reference row has only a detector seed)."""
    return len(a) == len(b) and all(x[k] == y[k] for x, y in zip(a, b) for k in set(x) & set(y))


def main_column(section: Section) -> Column | None:
    main = section.main_score()
    if main is None:
        return None
    detector, score = main
    return Column(f"{detector} {DETECTION_SCORES[score]}", lambda r, d=detector, s=score: _detection_summary(r, d, s))


def rank_groups(section: Section, rows: list[Row]) -> dict[str, int]:
    """Group 1 = the best row on the main score and every row not separable from it; then the best of the rest
    and those not separable from it; and so on. Empty for sections without repetitions (no verdicts there)."""
    column = main_column(section)
    if not section.repeated or column is None:
        return {}
    scored = [(row, _mean_of(row_summary(row, column))) for row in rows]
    remaining = [row for row, value in sorted(((r, v) for r, v in scored if v is not None),
                                              key=lambda item: (-item[1] if column.higher_is_better else item[1],
                                                                item[0].label))]
    groups: dict[str, int] = {}
    group = 1
    while remaining:
        leader = remaining[0]
        members = [row for row in remaining if row is leader or not separable(leader, row, column)]
        for row in members:
            groups[row.label] = group
        remaining = [row for row in remaining if row not in members]
        group += 1
    return groups


def summary_text(summary: Summary | None) -> str:
    """A cell: ``mean ± half-width`` with repetitions, the mean alone without."""
    return MISSING if summary is None or math.isnan(summary.mean) else format_summary(summary)


def display_frame(section: Section, rows: list[Row], columns: list[Column]) -> pd.DataFrame:
    """Rows x columns of cell texts (``mean ± half-width of the 95 % interval`` in repeated sections)."""
    data = {c.header: [summary_text(row_summary(row, c)) if section.repeated else fmt(_mean(c.value(r) for r in row.records))
                       for row in rows] for c in columns}
    return pd.DataFrame(data, index=pd.Index([row.label for row in rows], name="synthesizer"),
                        columns=[c.header for c in columns])


def grouped_notes(rows: Sequence[Row]) -> list[tuple[str, list[str]]]:
    """Each distinct not-comparable reason once, with the labels of the rows it applies to."""
    notes: dict[str, list[str]] = {}
    for row in rows:
        for note in row.notes() or ["comparable=false"]:
            notes.setdefault(note, []).append(row.label)
    return sorted(notes.items())


def with_values(rows: list[Row], columns: list[Column]) -> tuple[list[Row], list[Column]]:
    """Only the rows and columns that have at least one value (a group's table never shows empty columns)."""
    cells = [[any(c.value(r) is not None for r in row.records) for c in columns] for row in rows]
    kept_rows = [row for row, flags in zip(rows, cells) if any(flags)]
    kept_columns = [c for i, c in enumerate(columns) if any(flags[i] for flags in cells)]
    return kept_rows, kept_columns


def means_frame(section: Section, rows: list[Row], columns: list[Column]) -> pd.DataFrame:
    """Rows x columns of means over the row's categories (NaN where nothing was measured)."""
    data = {c.header: [_mean(c.value(r) for r in row.records) for row in rows] for c in columns}
    frame = pd.DataFrame(data, index=pd.Index([row.label for row in rows], name="synthesizer"), columns=[c.header for c in columns])
    return frame.astype("float64")


def per_category_frame(section: Section, rows: list[Row], column: Column) -> pd.DataFrame:
    """Rows x categories of one column, plus the mean; categories a row lacks are NaN."""
    categories = section.categories
    data = {}
    for row in rows:
        values = {r.dataset.category: column.value(r) for r in row.records}
        data[row.label] = [values.get(c) for c in categories] + [_mean(values.values())]
    frame = pd.DataFrame.from_dict(data, orient="index", columns=[*categories, "mean"], dtype="float64")
    frame.index.name = "synthesizer"
    return frame


def per_category_display(section: Section, rows: list[Row], column: Column) -> pd.DataFrame:
    """:func:`per_category_frame` as cell texts (``mean ± half-width`` per category and for the row's mean)."""
    categories = section.categories
    data = {}
    for row in rows:
        cells = {r.dataset.category: summary_text(column.summary(r)) for r in row.records}
        mean = row_summary(row, column)
        data[row.label] = [cells.get(c, MISSING) for c in categories] + [summary_text(mean)]
    frame = pd.DataFrame.from_dict(data, orient="index", columns=[*categories, "mean"])
    frame.index.name = "synthesizer"
    return frame


def provenance(section: Section) -> dict[str, list[str]]:
    """How the section's numbers were made, from the records themselves (never from this machine)."""
    records = section.records()
    protocol = section.protocol
    recorded_hashes = sorted({r.protocol.config_hash for r in records})
    seeds = sorted({json.dumps(_seed_lists(r), sort_keys=True) for r in records})
    weights = sorted({(w.name, w.sha256 or "no sha256", w.source) for r in records
                      for w in [*(w for m in r.fidelity for w in m.weights), *(w for d in r.detectors for w in d.weights)]})
    detector_configs = sorted({(d.name, d.config_hash) for r in records for d in r.detectors})
    packages: dict[str, set[str]] = {}
    for r in records:
        packages.setdefault("python", set()).add(r.environment.python)
        packages.setdefault("mvtec-caption-bench", set()).add(
            f"{r.environment.package_version} ({(r.environment.git_commit or 'no git commit')[:12]})")
        for name, version in r.environment.packages.items():
            packages.setdefault(name, set()).add(version)
    hardware = sorted({f"{r.environment.device}: {r.environment.gpu or r.environment.cpu} "
                       f"({r.environment.cpu_cores} CPU cores)" for r in records})
    return {
        "protocol": [f"{protocol.id} — {protocol.title}; config hash {', '.join(recorded_hashes)}; "
                     f"{protocol.hardware} protocol, {protocol.image_size}px, "
                     f"{protocol.n_generated_per_defect} generated images per defect type"],
        "detectors": [f"{name} (config hash {config_hash[:12]})" for name, config_hash in detector_configs],
        "seeds": [", ".join(f"{k}={'/'.join(map(str, v))}" for k, v in json.loads(s).items()) for s in seeds],
        "repetitions": [f"{row.label}: {'/'.join(map(str, row.repetitions))}" for row in section.rows],
        "weights": [f"{name} sha256 {sha[:12]} ({source})" for name, sha, source in weights],
        "packages": [f"{name} {', '.join(sorted(versions))}" for name, versions in sorted(packages.items())],
        "hardware": hardware,
    }


def _seed_lists(record: ResultRecord) -> dict[str, list[int]]:
    """{seed name: [seed of each repetition]} (a v1 record: one value per name)."""
    names = sorted({name for seeds in record.seeds for name in seeds})
    return {name: [seeds[name] for seeds in record.seeds if name in seeds] for name in names}


def short_provenance(section: Section) -> str:
    """One line for plot footers: protocol + config hash, seeds, key package versions."""
    info = provenance(section)
    hashes = sorted({r.protocol.config_hash[:12] for r in section.records()})
    packages = [p for p in info["packages"] if p.split(" ")[0] in ("torch", "mvtec-caption-bench")]
    return (f"protocol {section.protocol.id} (config {', '.join(hashes)}) · seeds {'; '.join(info['seeds'])} · "
            f"{' · '.join(packages)}")


def score_of(record: ResultRecord, detector: str, score: str) -> float | None:
    return _detection_value(record, detector, score)


def summary_of(record: ResultRecord, detector: str, score: str) -> Summary | None:
    return _detection_summary(record, detector, score)
