"""``leaderboard/index.html``: the same tables as the README, with sortable columns.

One self-contained file: inline CSS and a small inline script, a Content-Security-Policy that
forbids loading anything from the network, images only from the local ``plots/`` folder. Like
the README it is a pure function of the records (same inputs, same bytes).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import pandas as pd

from leaderboard.meta import SynthesizerVersionMeta
from leaderboard.plots import Plot
from leaderboard.render_markdown import HOW_TO_SUBMIT, group_cells, repetitions_note
from leaderboard.tables import (
    DETECTION_SCORES,
    MISSING,
    NOT_COMPARABLE_MARK,
    Row,
    Section,
    detection_columns,
    display_frame,
    fmt,
    grouped_notes,
    means_frame,
    metric_columns,
    per_category_display,
    per_category_frame,
    provenance,
    with_values,
)
from leaderboard.validate import RULES

CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' file:"

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 80rem; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; background: #f3f3f3; user-select: none; }
table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; }
tr.not-comparable td { color: #666; font-style: italic; }
img { max-width: 100%; border: 1px solid #eee; }
.note { color: #555; }
"""

#: Click a header to sort by it (ascending, then descending); missing values always go last.
SCRIPT = """
(function () {
  "use strict";
  function keyOf(cell, numeric) {
    var raw = cell.getAttribute("data-value");
    if (numeric) { return raw === null || raw === "" ? null : parseFloat(raw); }
    return cell.textContent.trim().toLowerCase();
  }
  function sortBy(table, index, header) {
    var numeric = header.getAttribute("data-type") === "number";
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    var body = table.tBodies[0];
    var items = Array.prototype.map.call(body.rows, function (row, position) {
      return { row: row, position: position, key: keyOf(row.cells[index], numeric) };
    });
    items.sort(function (a, b) {
      if (a.key === null || b.key === null) {
        return a.key === b.key ? a.position - b.position : (a.key === null ? 1 : -1);
      }
      var order = a.key < b.key ? -1 : (a.key > b.key ? 1 : 0);
      return (ascending ? order : -order) || a.position - b.position;
    });
    items.forEach(function (item) { body.appendChild(item.row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell) { cell.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header, index) {
      header.tabIndex = 0;
      header.addEventListener("click", function () { sortBy(table, index, header); });
      header.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sortBy(table, index, header); }
      });
    });
  });
})();
"""


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def html_table(table_id: str, frame: pd.DataFrame, leading: dict[str, list[str]] | None = None,
               text: pd.DataFrame | None = None) -> str:
    """A sortable table: the index (row labels) and text columns first, numbers with ``data-value`` (the mean; the
    cell shows ``text`` when given, e.g. ``mean ± half-width``)."""
    leading = leading or {}
    headers = [f'<th scope="col" data-type="text">{esc(frame.index.name or "")}</th>']
    headers += [f'<th scope="col" data-type="text">{esc(name)}</th>' for name in leading]
    headers += [f'<th scope="col" data-type="number">{esc(name)}</th>' for name in frame.columns]
    lines = [f'<table class="sortable" id="{esc(table_id)}">', "<thead><tr>" + "".join(headers) + "</tr></thead>", "<tbody>"]
    for i, label in enumerate(frame.index):
        marked = NOT_COMPARABLE_MARK in str(label)
        cells = [f"<td>{esc(label)}</td>"] + [f"<td>{esc(values[i])}</td>" for values in leading.values()]
        shown = text.iloc[i].tolist() if text is not None else [fmt(v) for v in frame.iloc[i].tolist()]
        for value, cell in zip(frame.iloc[i].tolist(), shown):
            data = "" if value is None or math.isnan(value) else repr(float(value))
            cells.append(f'<td class="num" data-value="{data}">{esc(cell)}</td>')
        row_class = ' class="not-comparable"' if marked else ""
        lines.append(f"<tr{row_class}>" + "".join(cells) + "</tr>")
    lines += ["</tbody>", "</table>"]
    return "\n".join(lines)


def _coverage(section: Section, rows: list[Row]) -> list[str]:
    return [f"{len(row.records)}/{len(section.categories)}" for row in rows]


def _text(section: Section, rows: list[Row], columns: list) -> pd.DataFrame | None:  # noqa: ANN001
    return display_frame(section, rows, columns) if section.repeated else None


def _means(section: Section, rows: list[Row], group: str) -> list[str]:
    parts = [f'<p class="note">{esc(line)}</p>' for line in repetitions_note(section, rows) if line]
    uses = [row.uses() for row in rows]
    leading = {**group_cells(section, rows), "text": [u["text"] for u in uses], "masks": [u["masks"] for u in uses],
               "real anomalies": [u["real anomalies"] for u in uses], "categories": _coverage(section, rows)}
    _, columns = with_values(rows, detection_columns(section))
    parts += ["<h4>Downstream detectors (mean over categories)</h4>",
              html_table(f"{section.anchor}-detection-{group}", means_frame(section, rows, columns), leading,
                         _text(section, rows, columns))]
    for caption, title, kind in ((False, "Fidelity (mean over categories)", "fidelity"),
                                 (True, "Caption faithfulness (mean over categories)", "caption")):
        kept, columns = with_values(rows, metric_columns(section, caption))
        if columns:
            arrows = {c.header: f"{c.header} {'↑' if c.higher_is_better else '↓'}" for c in columns}
            frame = means_frame(section, kept, columns).rename(columns=arrows)
            text = _text(section, kept, columns)
            parts += [f"<h4>{title}</h4>",
                      html_table(f"{section.anchor}-{kind}-{group}", frame, {"categories": _coverage(section, kept)},
                                 None if text is None else text.rename(columns=arrows))]
    return parts


def _section(section: Section, plots: Sequence[Plot]) -> list[str]:
    comparable = [row for row in section.rows if row.comparable]
    other = [row for row in section.rows if not row.comparable]
    parts = [f'<section id="{esc(section.anchor)}">', f"<h2>{esc(section.title)}</h2>",
             f"<p><em>{esc(section.protocol.title)}.</em> {esc(section.protocol.description)}</p>",
             f"<p>Categories: {esc(', '.join(section.categories))}.</p>",
             "<h3>How it was made</h3>", "<p>Every table and plot of this section comes from these records:</p>", "<ul>"]
    parts += [f"<li><strong>{esc(key)}:</strong> {esc('; '.join(values) or MISSING)}</li>"
              for key, values in provenance(section).items()]
    parts += ["</ul>", "<h3>Comparable results</h3>"]
    parts += _means(section, comparable, "comparable") if comparable else ["<p>No comparable results yet.</p>"]
    if other:
        parts += [f"<h3>Not comparable with published values {NOT_COMPARABLE_MARK}</h3>",
                  "<ul>" + "".join(f"<li>{esc(note)} ({esc(', '.join(labels))})</li>"
                                   for note, labels in grouped_notes(other)) + "</ul>"]
        parts += _means(section, other, "not-comparable")
    parts += ["<details><summary>Per category</summary>"]
    columns = [c for c in detection_columns(section)
               if c.header.endswith((DETECTION_SCORES["pixel_ap"], DETECTION_SCORES["image_auroc"]))]
    columns += metric_columns(section, False) + metric_columns(section, True)
    for n, column in enumerate(columns):
        rows = [row for row in section.rows if any(column.value(r) is not None for r in row.records)]
        if rows:
            text = per_category_display(section, rows, column) if section.repeated else None
            parts += [f"<h4>{esc(column.header)}</h4>",
                      html_table(f"{section.anchor}-per-category-{n}", per_category_frame(section, rows, column), None, text)]
    parts += ["</details>"]
    for plot in plots:
        parts += [f'<figure><img src="{esc(plot.path)}" alt="{esc(plot.title)}">'
                  f"<figcaption><em>{esc(plot.title)}.</em> {esc(plot.caption)}</figcaption></figure>"]
    parts += ["</section>"]
    return parts


def _synthesizers(metas: dict[tuple[str, str], SynthesizerVersionMeta]) -> list[str]:
    if not metas:
        return []
    rows = ["<tr>" + "".join(f"<td>{esc(v)}</td>" for v in (
        f"{m.name} v{m.version}", m.description, ", ".join(m.authors), m.paper or MISSING, m.code or MISSING,
        "yes" if m.uses_text else "no", "yes" if m.uses_masks else "no", m.real_anomalies, m.compute)) + "</tr>"
        for _, m in sorted(metas.items())]
    headers = ["synthesizer", "description", "authors", "paper", "code", "text", "masks", "real anomalies", "compute"]
    return ["<h2>Synthesizers</h2>", '<table class="sortable" id="synthesizers"><thead><tr>'
            + "".join(f'<th scope="col" data-type="text">{h}</th>' for h in headers) + "</tr></thead><tbody>",
            *rows, "</tbody></table>"]


def render_html(sections: Sequence[Section], plots: dict[str, Sequence[Plot]],
                metas: dict[tuple[str, str], SynthesizerVersionMeta]) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             "<title>MVTec Caption anomaly-synthesis leaderboard</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
             "<!-- Generated by `python -m leaderboard render` from leaderboard/results/; do not edit. -->",
             "<h1>MVTec Caption anomaly-synthesis leaderboard</h1>",
             "<p>Click a column header to sort by it (again to reverse). One section per protocol and dataset; "
             f"results of different protocols are never in one table; rows marked {NOT_COMPARABLE_MARK} are not "
             "comparable with published values; demo data never enters.</p>"]
    if not sections:
        parts += ['<p id="no-results"><strong>No results yet.</strong> See how to submit below.</p>']
    else:
        parts += ["<nav><ul>" + "".join(f'<li><a href="#{esc(s.anchor)}">{esc(s.title)}</a></li>' for s in sections)
                  + "</ul></nav>"]
        for section in sections:
            parts += _section(section, plots.get(section.anchor, ()))
        parts += _synthesizers(metas)
    parts += ["<h2>How to submit</h2>", f"<pre>{esc(HOW_TO_SUBMIT)}</pre>", "<h2>Validation rules</h2>",
              "<ul>" + "".join(f"<li><code>{esc(r.id)}</code> ({esc(r.stage)}): {esc(r.summary)}</li>" for r in RULES)
              + "</ul>", f"<script>{SCRIPT}</script>", "</body>", "</html>", ""]
    return "\n".join(parts)
