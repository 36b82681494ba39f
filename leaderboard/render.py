"""Render every output (README.md, index.html, plots/*.png) from a validated leaderboard folder.

Outputs are computed in memory first, so ``check`` can compare them with the committed files
without writing, and ``write`` can remove plots that no longer correspond to any section.
"""

from __future__ import annotations

from pathlib import Path

from leaderboard.layout import INDEX_HTML, PLOTS, README
from leaderboard.plots import Plot, section_plots
from leaderboard.render_html import render_html
from leaderboard.render_markdown import render_markdown
from leaderboard.tables import build_sections
from leaderboard.validate import Report


class InvalidLeaderboardError(ValueError):
    """Rendering refuses a folder that does not validate: what is shown must have passed the rules."""


def render_outputs(report: Report) -> dict[str, bytes]:
    """``{path relative to the leaderboard folder: bytes}`` for every rendered file."""
    if not report.ok:
        raise InvalidLeaderboardError("the leaderboard does not validate:\n" + "\n".join(map(str, report.errors)))
    metas = report.metas()
    sections = build_sections((record for _, record in report.records()), metas)
    plots: dict[str, list[Plot]] = {section.anchor: section_plots(section) for section in sections}
    shown = {(row.synthesizer, row.version) for section in sections for row in section.rows}
    metas = {key: meta for key, meta in metas.items() if key in shown}
    outputs = {README: render_markdown(sections, plots, metas).encode("utf-8"),
               INDEX_HTML: render_html(sections, plots, metas).encode("utf-8")}
    for section_plot_list in plots.values():
        for plot in section_plot_list:
            outputs[plot.path] = plot.data
    return dict(sorted(outputs.items()))


def _existing_plots(root: Path) -> set[str]:
    folder = root / PLOTS
    return {p.relative_to(root).as_posix() for p in folder.rglob("*.png")} if folder.is_dir() else set()


def stale_outputs(root: Path, outputs: dict[str, bytes]) -> list[str]:
    """Files that differ from what rendering gives, are missing, or are plots nothing renders any more."""
    root = Path(root)
    stale = [path for path, data in outputs.items() if not (root / path).is_file() or (root / path).read_bytes() != data]
    stale += sorted(_existing_plots(root) - set(outputs))
    return stale


def write_outputs(root: Path, outputs: dict[str, bytes]) -> list[str]:
    """Write changed outputs, delete orphaned plots; returns what changed."""
    root = Path(root)
    changed = stale_outputs(root, outputs)
    for path in changed:
        target = root / path
        if path in outputs:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(outputs[path])
        else:
            target.unlink()
    for folder in sorted((root / PLOTS).rglob("*") if (root / PLOTS).is_dir() else [], reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return changed
