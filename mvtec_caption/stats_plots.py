"""Figures of the caption statistics (matplotlib, Agg, no global pyplot state).

Same tables in, same PNG bytes out: no timestamps or software versions in the file metadata,
a fixed size and dpi, and every figure carries the provenance line (package version, caption
source, captions sha256) as a footer, so a figure separated from its run still says what it shows.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from mvtec_caption.stats import ALL, ATTRIBUTES, StatsTables

TOP_VALUES = 10
DPI = 110
_LABELS = {"colors": "colours", "counts": "counts", "positions": "positions", "parts": "parts",
           "relations": "relations (logical)", "defect_words": "defect words"}


def _figure(width: float, height: float):  # noqa: ANN202 (matplotlib Figure)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def _footer(figure, text: str) -> None:  # noqa: ANN001
    figure.text(0.01, 0.005, "\n".join(textwrap.wrap(text, 190)), fontsize=6, color="#444444", va="bottom", ha="left")


def _save(figure, path: Path) -> Path:  # noqa: ANN001
    figure.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    return path


def attributes_figure(tables: StatsTables, dataset: str):  # noqa: ANN201
    """Bar charts of the most frequent values of each attribute in one dataset."""
    table = tables.attributes[(tables.attributes["dataset"] == dataset) & (tables.attributes["category"] == ALL)]
    n_captions = int(tables.summary.query("dataset == @dataset and category == @ALL")["captions"].iloc[0])
    figure = _figure(13, 7.5)
    axes = figure.subplots(2, 3)
    for axis, name in zip(axes.flat, ATTRIBUTES):
        values = table[table["attribute"] == name].head(TOP_VALUES).iloc[::-1]
        axis.barh(values["value"], values["share"] * 100, color="#3b6ea8")
        axis.set_title(_LABELS[name], fontsize=10)
        axis.set_xlabel("% of captions", fontsize=8)
        axis.tick_params(labelsize=8)
        axis.set_xlim(0, min(100.0, float(values["share"].max() * 120 + 5)) if not values.empty else 100)
        if values.empty:
            axis.text(0.5, 0.5, "none", ha="center", va="center", transform=axis.transAxes, color="#888888")
    figure.suptitle(f"MVTec Caption, {dataset}: caption attributes ({n_captions} captions)", fontsize=12)
    figure.subplots_adjust(left=0.1, right=0.98, top=0.9, bottom=0.12, hspace=0.35, wspace=0.45)
    _footer(figure, tables.provenance)
    return figure


def categories_figure(tables: StatsTables):  # noqa: ANN201
    """Heatmap: per category, the share of captions naming each attribute, and the logical share."""
    summary = tables.summary[tables.summary["category"] != ALL]
    columns = [f"with_{name}" for name in ATTRIBUTES]
    matrix = summary[columns].to_numpy(dtype=float)
    logical = (summary["logical"] / summary["captions"]).to_numpy(dtype=float)[:, None]
    import numpy as np

    matrix = np.hstack([matrix, logical])
    labels = [f"{d} / {c} ({n})" for d, c, n in zip(summary["dataset"], summary["category"], summary["captions"])]
    figure = _figure(9, 1.6 + 0.32 * len(labels))
    axis = figure.add_subplot(1, 1, 1)
    axis.imshow(matrix, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    axis.set_xticks(range(matrix.shape[1]), [_LABELS[n] for n in ATTRIBUTES] + ["logical kind"], rotation=30, ha="right", fontsize=8)
    axis.set_yticks(range(len(labels)), labels, fontsize=8)
    for (row, col), value in np.ndenumerate(matrix):
        axis.text(col, row, f"{value:.0%}", ha="center", va="center", fontsize=7, color="white" if value > 0.6 else "black")
    axis.set_title("Share of captions naming each attribute, per category (captions in brackets)", fontsize=10)
    figure.subplots_adjust(left=0.32, right=0.98, top=1 - 0.5 / figure.get_figheight(), bottom=1.2 / figure.get_figheight())
    _footer(figure, tables.provenance)
    return figure


def save_figures(tables: StatsTables, out: Path) -> list[Path]:
    """``attributes_<dataset>.png`` per dataset and ``categories.png``; returns the paths."""
    import matplotlib

    with matplotlib.rc_context({"font.family": "DejaVu Sans", "svg.hashsalt": "mvtec_caption"}):
        paths = [_save(attributes_figure(tables, dataset), Path(out) / f"attributes_{dataset}.png")
                 for dataset in sorted(tables.summary["dataset"].unique())]
        paths.append(_save(categories_figure(tables), Path(out) / "categories.png"))
    return paths
