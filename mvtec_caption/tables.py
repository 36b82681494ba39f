"""Plain-text renderings of pandas tables (Markdown for files, aligned text for the console).

``DataFrame.to_markdown`` needs the optional ``tabulate`` package, which this project does not
install; GitHub-flavoured Markdown tables are simple enough to write directly.
"""

from __future__ import annotations

import pandas as pd


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value == value else ""
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of ``frame`` (index dropped), ending in a newline."""
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(frame[c]) else "---" for c in frame.columns) + "|"
    rows = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"


def console_table(frame: pd.DataFrame) -> str:
    """Left-aligned columns for a terminal, no index, nothing truncated."""
    if frame.empty:
        return "(none)"
    text = frame.astype(str)
    widths = {c: max(len(str(c)), int(text[c].str.len().max())) for c in text.columns}
    formatters = {c: (lambda value, width=widths[c]: value.ljust(width)) for c in text.columns}
    with pd.option_context("display.max_colwidth", None, "display.width", 10_000, "display.max_rows", None):
        return text.to_string(index=False, justify="left", formatters=formatters)
