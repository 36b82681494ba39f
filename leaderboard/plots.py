"""PNG plots of a leaderboard section with reproducible bytes.

Figures are drawn with matplotlib's Agg canvas directly (no pyplot global state, no backend
switch in the caller's process), under matplotlib's default style (a user's matplotlibrc cannot
change them), at a fixed size and dpi, with the PNG ``Software`` tag removed, so the same
records give the same bytes and CI can check the committed plots are current.
"""

from __future__ import annotations

import io
import math
import textwrap
from dataclasses import dataclass

from leaderboard.layout import PLOTS
from leaderboard.tables import (
    NOT_COMPARABLE_MARK,
    Section,
    metric_columns,
    row_summary,
    score_of,
    short_provenance,
    summary_of,
)
from leaderboard.tables import main_column as tables_main_column

DPI = 100
RC = {"svg.hashsalt": "mvtec-caption-leaderboard", "font.family": "DejaVu Sans", "font.size": 8,
      "axes.titlesize": 9, "legend.fontsize": 7, "path.simplify": False}


@dataclass(frozen=True)
class Plot:
    path: str  # relative to the leaderboard folder, POSIX
    title: str
    caption: str
    data: bytes


def _figure(width: float, height: float):  # noqa: ANN202 - matplotlib types are imported lazily
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def _png(figure, footer: str) -> bytes:  # noqa: ANN001
    figure.text(0.0, 0.0, "\n".join(textwrap.wrap(footer, 160)), fontsize=6, color="dimgray", va="top")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None}, bbox_inches="tight", pad_inches=0.1)
    return buffer.getvalue()


def _styled(draw):  # noqa: ANN001, ANN202
    import matplotlib
    import matplotlib.style

    with matplotlib.style.context("default"), matplotlib.rc_context(RC):
        return draw()


def pixel_ap_plot(section: Section) -> Plot | None:
    """Pixel AP per category, one bar per (row, detector); hatched bars are not comparable."""
    categories = section.categories
    series = []
    for row in section.rows:
        for detector in section.detectors():
            summaries = {r.dataset.category: summary_of(r, detector, "pixel_ap") for r in row.records}
            values = {c: s.mean for c, s in summaries.items() if s is not None}
            errors = {c: s.half_width for c, s in summaries.items() if s is not None and s.half_width is not None}
            if values:
                series.append((f"{row.label} · {detector}", row.comparable, [values.get(c) for c in categories],
                               [errors.get(c, 0.0) for c in categories]))
    if not series:
        return None
    title = f"Pixel AP per category — {section.title}"

    def draw() -> bytes:
        figure = _figure(min(14.0, 3.0 + 0.3 * len(categories) * len(series)), 3.6)
        ax = figure.add_axes((0.08, 0.2, 0.9, 0.7))
        width = 0.8 / len(series)
        colors = [f"C{i % 10}" for i in range(len(series))]
        for i, (label, comparable, values, errors) in enumerate(series):
            xs = [c + (i - (len(series) - 1) / 2) * width for c in range(len(categories))]
            ax.bar(xs, [v if v is not None else 0.0 for v in values], width, label=label, color=colors[i],
                   hatch=None if comparable else "//", edgecolor="black" if not comparable else colors[i], linewidth=0.5,
                   yerr=errors if any(errors) else None, capsize=2, error_kw={"linewidth": 0.7})
        ax.set_xticks(range(len(categories)), categories, rotation=20, ha="right")
        ax.set_ylim(0, 1)
        ax.set_ylabel("pixel AP (whole test set)")
        ax.set_title(title)
        ax.grid(axis="y", linewidth=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        return _png(figure, short_provenance(section))

    spread = (" Bars are means over repetitions; error bars the 95 % t-interval." if section.repeated else "")
    return Plot(f"{PLOTS}/{section.protocol.slug}/{section.dataset}/pixel_ap_per_category.png", title,
                f"Bars hatched and marked {NOT_COMPARABLE_MARK} are not comparable with published values; "
                f"a missing bar means the category was not run.{spread}", _styled(draw))


def fidelity_scatter(section: Section) -> Plot | None:
    """Each fidelity metric's mean against the downstream main score's mean, one point per synthesizer row."""
    main = section.main_score()
    if main is None:
        return None
    main_column = tables_main_column(section)
    panels = []
    for column in metric_columns(section, False) + metric_columns(section, True):
        points = []
        for row in section.rows:
            pairs = [(column.value(r), score_of(r, *main)) for r in row.records]
            xs = [x for x, y in pairs if x is not None and y is not None]
            ys = [y for x, y in pairs if x is not None and y is not None]
            if xs:
                y_summary = row_summary(row, main_column) if main_column is not None else None
                y_error = y_summary.half_width if y_summary is not None and len(xs) == len(row.records) else None
                points.append((row.label, row.comparable, math.fsum(xs) / len(xs), math.fsum(ys) / len(ys), y_error))
        if points:
            panels.append((column.header, points))
    if not panels:
        return None
    detector, _ = main
    title = f"Fidelity vs downstream {detector} pixel AP — {section.title}"

    def draw() -> bytes:
        figure = _figure(max(6.0, 3.2 * len(panels)), 3.8)
        axes = figure.subplots(1, len(panels), squeeze=False)[0]
        labels = sorted({label for _, points in panels for label, *_ in points})
        colors = {label: f"C{i % 10}" for i, label in enumerate(labels)}
        for ax, (metric_id, points) in zip(axes, panels):
            for label, comparable, x, y, y_error in points:
                ax.scatter([x], [y], color=colors[label], marker="o" if comparable else "^",
                           facecolors=colors[label] if comparable else "none", label=label)
                if y_error:
                    ax.errorbar([x], [y], yerr=[y_error], color=colors[label], linewidth=0.7, capsize=2)
                ax.annotate(label, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
            ax.set_xlabel(f"{metric_id}\n(mean over categories)", fontsize=8)
            ax.set_ylabel(f"{detector} pixel AP (mean)")
            ax.set_title(metric_id)
            ax.margins(0.2)
            ax.grid(linewidth=0.3)
        figure.subplots_adjust(left=0.08, right=0.98, bottom=0.2, top=0.85, wspace=0.35)
        figure.suptitle(title, fontsize=9)
        return _png(figure, short_provenance(section))

    return Plot(f"{PLOTS}/{section.protocol.slug}/{section.dataset}/fidelity_vs_downstream.png", title,
                f"One point per synthesizer version (means over the categories it covers; y: {detector}'s "
                f"pixel AP); open triangles ({NOT_COMPARABLE_MARK}) are not comparable with published values.",
                _styled(draw))


def section_plots(section: Section) -> list[Plot]:
    return [plot for plot in (pixel_ap_plot(section), fidelity_scatter(section)) if plot is not None]
