"""The final terminal table and the per-category bar plots written next to the results."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd

from benchmark.results import ResultRecord

DETECTION_COLUMNS = ("image_auroc", "image_ap", "pixel_auroc", "pixel_ap", "aupro")


def results_frame(records: Sequence[ResultRecord]) -> pd.DataFrame:
    """One row per (synthesizer, category, detector) with detection and fidelity columns."""
    rows = []
    for record in records:
        fidelity = {m.id: m.value for m in record.fidelity if m.computed}
        for detector in record.detectors:
            scores = detector.overall.model_dump()
            rows.append({
                "protocol": record.protocol.id,
                "dataset": record.dataset.name,
                "category": record.dataset.category,
                "synthesizer": record.synthesizer_name,
                "detector": detector.name,
                **{column: scores[column] for column in DETECTION_COLUMNS},
                "defect_type_mean_acc": detector.classification.mean_accuracy if detector.classification else None,
                **fidelity,
            })
    return pd.DataFrame(rows)


def _sections(records: Sequence[ResultRecord]) -> Iterator[tuple[str, str, pd.DataFrame]]:
    """(protocol, dataset, rows without empty columns): one table each, never mixed."""
    frame = results_frame(records)
    if frame.empty:
        return
    for (protocol, dataset), part in frame.groupby(["protocol", "dataset"], sort=True):
        yield protocol, dataset, part.drop(columns=["protocol", "dataset"]).dropna(axis=1, how="all")


def _short_notes(records: Sequence[ResultRecord]) -> list[str]:
    return sorted({_first_clause(note) for r in records for note in r.comparable_notes})


def format_table(records: Sequence[ResultRecord]) -> str:
    lines = []
    for protocol, dataset, shown in _sections(records):
        demo = " — DEMO DATA, not comparable" if any(r.dataset.is_demo for r in records if r.dataset.name == dataset) else ""
        lines.append(f"\n{protocol} · {dataset}{demo}")
        lines.append(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if not lines:
        return "(no results)"
    notes = _short_notes(records)
    if notes:
        lines.append("\nNot comparable with published numbers (details in each result's comparable_notes):")
        lines += [f"  - {note}" for note in notes]
    return "\n".join(lines)


def format_markdown(records: Sequence[ResultRecord], digits: int = 3) -> str:
    """The same table as :func:`format_table`, as Markdown (one table per protocol and dataset)."""
    blocks = []
    for protocol, dataset, shown in _sections(records):
        header = "| " + " | ".join(shown.columns) + " |"
        align = "|" + "|".join("---:" if shown[c].dtype.kind == "f" else "---" for c in shown.columns) + "|"
        body = ["| " + " | ".join(_cell(v, digits) for v in row) + " |" for row in shown.itertuples(index=False)]
        blocks.append("\n".join([f"**{protocol} · {dataset}**", "", header, align, *body]))
    if not blocks:
        return "(no results)"
    notes = _short_notes(records)
    if notes:
        blocks.append("Not comparable with published numbers:\n\n" + "\n".join(f"- {note}" for note in notes))
    return "\n\n".join(blocks) + "\n"


def _cell(value: object, digits: int) -> str:
    if isinstance(value, float):
        return "–" if value != value else f"{value:.{digits}f}"
    return str(value)


def _first_clause(note: str, limit: int = 110) -> str:
    """The start of a note, for the terminal (the full text is in the result JSON)."""
    if ": reference weights unavailable" in note:
        return note.split(": reference weights unavailable")[0] + " (reference weights absent)"
    head = note.split(". ")[0]
    return head if len(head) <= limit else head[: limit - 1] + "…"


def write_metric_plots(records: Sequence[ResultRecord], out_png: Path) -> Path | None:
    """Per-category bars of each detection metric, one bar per (synthesizer, detector)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = results_frame(records)
    if frame.empty:
        return None
    frame["run"] = frame["synthesizer"] + " + " + frame["detector"]
    categories = sorted(frame["category"].unique())
    runs = sorted(frame["run"].unique())
    figure, axes = plt.subplots(1, len(DETECTION_COLUMNS), figsize=(3.2 * len(DETECTION_COLUMNS), 3.6), squeeze=False)
    width = 0.8 / max(1, len(runs))
    for ax, column in zip(axes[0], DETECTION_COLUMNS):
        for offset, run in enumerate(runs):
            part = frame[frame["run"] == run].set_index("category").reindex(categories)
            ax.bar([i + offset * width for i in range(len(categories))], part[column].fillna(0), width, label=run)
        ax.set_title(column, fontsize=10)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(categories))], categories, rotation=30, fontsize=8)
        ax.set_ylim(0, 1)
    axes[0][0].legend(fontsize=7, loc="lower left")
    first = records[0]
    demo = "DEMO DATA · " if first.dataset.is_demo else ""
    figure.text(0.01, 0.01, f"{demo}protocol {first.protocol.id} ({first.protocol.config_hash[:12]}) · "
                f"seeds {first.seeds} · mvtec-caption-bench {first.environment.package_version} "
                f"({(first.environment.git_commit or 'no git')[:12]}) · torch {first.environment.packages.get('torch')}",
                fontsize=7, color="dimgray")
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    out_png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_png, dpi=90, metadata={"Software": None})
    plt.close(figure)
    return out_png
