"""The final terminal table and the per-category bar plots written next to the results."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd

from benchmark.results import ResultRecord
from mvtec_caption.atomic import atomic_write
from benchmark.statistics import Summary, format_summary

DETECTION_COLUMNS = ("image_auroc", "image_ap", "pixel_auroc", "pixel_ap", "aupro")
KEY_COLUMNS = ("protocol", "dataset", "category", "synthesizer", "detector", "n")


def synthesizer_labels(records: Sequence[ResultRecord]) -> list[str]:
    """The row label of each record: its synthesizer's name, or ``NAME@VERSION`` where the
    records hold several versions of that synthesizer (``axf@2`` beside ``axf@5``), as ``compare`` names them;
    otherwise two rows of one name could not be told apart."""
    versions: dict[str, set[str]] = {}
    for record in records:
        versions.setdefault(record.synthesizer_name, set()).add(record.synthesizer_version)
    return [f"{record.synthesizer_name}@{record.synthesizer_version}"
            if len(versions[record.synthesizer_name]) > 1 else record.synthesizer_name for record in records]


def summaries_frame(records: Sequence[ResultRecord]) -> pd.DataFrame:
    """One row per (synthesizer, category, detector): each metric's :class:`Summary` over repetitions."""
    rows = []
    for record, label in zip(records, synthesizer_labels(records)):
        fidelity = {metric_id: summary for metric_id, summary in record.summary.fidelity.items()}
        for detector in record.detectors:
            rows.append({
                "protocol": record.protocol.id,
                "dataset": record.dataset.name,
                "category": record.dataset.category,
                "synthesizer": label,
                "detector": detector.name,
                "n": len(record.repetitions),
                **{column: record.detection(detector.name, column) for column in DETECTION_COLUMNS},
                "defect_type_mean_acc": record.classification_accuracy(detector.name),
                **fidelity,
            })
    return pd.DataFrame(rows)


def results_frame(records: Sequence[ResultRecord]) -> pd.DataFrame:
    """The same rows with the mean over repetitions of every metric (NaN where absent)."""
    frame = summaries_frame(records)
    for column in frame.columns:
        if column not in KEY_COLUMNS:
            frame[column] = [s.mean if isinstance(s, Summary) else float("nan") for s in frame[column]]
            frame[column] = frame[column].astype("float64")
    return frame


def _formatted(part: pd.DataFrame, digits: int) -> pd.DataFrame:
    """Summaries as text: ``mean ± half-width of the 95 % interval`` (the mean alone for one repetition)."""
    shown = part.copy()
    for column in shown.columns:
        if column not in KEY_COLUMNS:
            shown[column] = [format_summary(s, digits) if isinstance(s, Summary) else "–" for s in shown[column]]
    if (shown["n"] == 1).all():
        shown = shown.drop(columns=["n"])
    return shown


def _sections(records: Sequence[ResultRecord], digits: int = 3) -> Iterator[tuple[str, str, pd.DataFrame]]:
    """(protocol, dataset, rows without empty columns, formatted): one table each, never mixed."""
    frame = summaries_frame(records)
    if frame.empty:
        return
    for (protocol, dataset), part in frame.groupby(["protocol", "dataset"], sort=True):
        part = part.drop(columns=["protocol", "dataset"])
        part = part[[c for c in part.columns if c in KEY_COLUMNS or part[c].map(lambda v: isinstance(v, Summary)).any()]]
        yield protocol, dataset, _formatted(part, digits)


def _short_notes(records: Sequence[ResultRecord]) -> list[str]:
    return sorted({_first_clause(note) for r in records for note in r.comparable_notes})


def format_table(records: Sequence[ResultRecord]) -> str:
    lines = []
    for protocol, dataset, shown in _sections(records):
        demo = " — DEMO DATA, not comparable" if any(r.dataset.is_demo for r in records if r.dataset.name == dataset) else ""
        lines.append(f"\n{protocol} · {dataset}{demo}")
        lines.append(shown.to_string(index=False))
    if not lines:
        return "(no results)"
    if any(len(r.repetitions) > 1 for r in records):
        lines.append("\nmean ± half-width of the 95 % t-interval over the n repetitions (see each record's `uncertainty`)")
    notes = _short_notes(records)
    if notes:
        lines.append("\nNot comparable with published numbers (details in each result's comparable_notes):")
        lines += [f"  - {note}" for note in notes]
    return "\n".join(lines)


def format_markdown(records: Sequence[ResultRecord], digits: int = 3) -> str:
    """The same table as :func:`format_table`, as Markdown (one table per protocol and dataset)."""
    blocks = []
    for protocol, dataset, shown in _sections(records, digits):
        header = "| " + " | ".join(shown.columns) + " |"
        align = "|" + "|".join("---" if c in KEY_COLUMNS and c != "n" else "---:" for c in shown.columns) + "|"
        body = ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(index=False)]
        blocks.append("\n".join([f"**{protocol} · {dataset}**", "", header, align, *body]))
    if not blocks:
        return "(no results)"
    if any(len(r.repetitions) > 1 for r in records):
        blocks.append("Cells: mean ± half-width of the 95 % t-interval over the n repetitions.")
    notes = _short_notes(records)
    if notes:
        blocks.append("Not comparable with published numbers:\n\n" + "\n".join(f"- {note}" for note in notes))
    return "\n\n".join(blocks) + "\n"


def _first_clause(note: str, limit: int = 110) -> str:
    """The start of a note, for the terminal (the full text is in the result JSON)."""
    if ": reference weights unavailable" in note:
        return note.split(": reference weights unavailable")[0] + " (reference weights absent)"
    head = note.split(". ")[0]
    return head if len(head) <= limit else head[: limit - 1] + "…"


def write_metric_plots(records: Sequence[ResultRecord], out_png: Path) -> Path | None:
    """Per-category bars of each detection metric, one bar per (synthesizer, detector), with the 95 % interval
    over repetitions as error bars. Drawn on an Agg canvas of its own (the caller's pyplot backend is untouched)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    frame = summaries_frame(records)
    if frame.empty:
        return None
    frame["run"] = frame["synthesizer"] + " + " + frame["detector"]
    categories = sorted(frame["category"].unique())
    runs = sorted(frame["run"].unique())
    figure = Figure(figsize=(3.2 * len(DETECTION_COLUMNS), 3.6))
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(DETECTION_COLUMNS), squeeze=False)
    width = 0.8 / max(1, len(runs))
    for ax, column in zip(axes[0], DETECTION_COLUMNS):
        for offset, run in enumerate(runs):
            part = frame[frame["run"] == run].set_index("category").reindex(categories)[column]
            means = [s.mean if isinstance(s, Summary) else 0.0 for s in part]
            errors = [s.half_width or 0.0 if isinstance(s, Summary) else 0.0 for s in part]
            ax.bar([i + offset * width for i in range(len(categories))], means, width, label=run,
                   yerr=errors if any(errors) else None, capsize=2, error_kw={"linewidth": 0.8})
        ax.set_title(column, fontsize=10)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(categories))], categories, rotation=30, fontsize=8)
        ax.set_ylim(0, 1)
    axes[0][0].legend(fontsize=7, loc="lower left")
    first = records[0]
    demo = "DEMO DATA · " if first.dataset.is_demo else ""
    repetitions = sorted({len(r.repetitions) for r in records})
    spread = (f" · bars: mean of {'/'.join(map(str, repetitions))} repetitions, error bars: 95 % t-interval"
              if repetitions != [1] else "")
    figure.text(0.01, 0.01, f"{demo}protocol {first.protocol.id} ({first.protocol.config_hash[:12]}) · "
                f"seeds {first.seeds} · mvtec-caption-bench {first.environment.package_version} "
                f"({(first.environment.git_commit or 'no git')[:12]}) · torch {first.environment.packages.get('torch')}"
                f"{spread}", fontsize=7, color="dimgray")
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    out_png.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out_png) as handle:  # runs sharing an --out never see half a plot
        figure.savefig(handle, format="png", dpi=90, metadata={"Software": None})
    return out_png
