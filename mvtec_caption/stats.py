"""Caption attribute analysis: what the captions talk about, per dataset and per category.

Computed from the caption source alone (no images): every caption is one anomalous image, so
shares are "fraction of annotated images whose caption mentions X". Attributes come from
:func:`mvtec_caption.attributes.derive_attributes`; keywords are caption words minus English
stop words (scikit-learn's list), counted once per caption.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mvtec_caption.attributes import derive_attributes
from mvtec_caption.manifest import matches_pinned_upstream
from mvtec_caption.sources import CaptionSet
from mvtec_caption.tables import markdown_table

ATTRIBUTES = ("colors", "counts", "positions", "parts", "relations", "defect_words")
ALL = "(all)"
KEYWORDS_PER_GROUP = 25


def caption_frame(caption_set: CaptionSet, datasets: list[str] | None = None, categories: list[str] | None = None) -> pd.DataFrame:
    """One row per caption with its derived attributes (list columns)."""
    rows = []
    for dataset in sorted(datasets or caption_set.captions):
        for category, defects in sorted(caption_set.for_dataset(dataset).items()):
            if categories is not None and category not in categories:
                continue
            for defect_type, texts in sorted(defects.items()):
                for index, text in enumerate(texts):
                    attributes = derive_attributes(text, dataset, defect_type, category).model_dump()
                    rows.append({"dataset": dataset, "category": category, "defect_type": defect_type, "caption_index": index,
                                 "caption": text, "words": len(text.split()), **attributes})
    columns = ["dataset", "category", "defect_type", "caption_index", "caption", "words", *ATTRIBUTES, "kind"]
    return pd.DataFrame(rows, columns=columns)


def _groups(frame: pd.DataFrame):  # noqa: ANN202 (generator of (dataset, category, sub-frame))
    for dataset, by_dataset in frame.groupby("dataset", sort=True):
        yield dataset, ALL, by_dataset
        for category, by_category in by_dataset.groupby("category", sort=True):
            yield dataset, category, by_category


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and category: sizes, kinds, and the share of captions naming each attribute."""
    rows = []
    for dataset, category, group in _groups(frame):
        n = len(group)
        rows.append({
            "dataset": dataset, "category": category, "captions": n, "distinct": group["caption"].nunique(),
            "defect_types": len(group[["category", "defect_type"]].drop_duplicates()), "mean_words": round(group["words"].mean(), 2),
            "structural": int((group["kind"] == "structural").sum()), "logical": int((group["kind"] == "logical").sum()),
            **{f"with_{name}": round(group[name].map(bool).sum() / n, 3) for name in ATTRIBUTES},
        })
    return pd.DataFrame(rows)


def attribute_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Long table: how many captions of each group mention each attribute value."""
    rows = []
    for dataset, category, group in _groups(frame):
        for name in ATTRIBUTES:
            values = group[name].map(lambda items: sorted({str(v) for v in items})).explode().dropna()
            for value, count in values.value_counts().items():
                rows.append({"dataset": dataset, "category": category, "attribute": name, "value": value,
                             "captions": int(count), "share": round(count / len(group), 3)})
    table = pd.DataFrame(rows, columns=["dataset", "category", "attribute", "value", "captions", "share"])
    return table.sort_values(["dataset", "category", "attribute", "captions", "value"],
                             ascending=[True, True, True, False, True], kind="stable").reset_index(drop=True)


def keyword_table(frame: pd.DataFrame, top: int = KEYWORDS_PER_GROUP) -> pd.DataFrame:
    """The ``top`` keywords per group, counted once per caption."""
    from sklearn.feature_extraction.text import CountVectorizer

    rows = []
    for dataset, category, group in _groups(frame):
        vectorizer = CountVectorizer(stop_words="english", binary=True, token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b")
        matrix = vectorizer.fit_transform(group["caption"])
        counts = pd.Series(matrix.sum(axis=0).A1, index=vectorizer.get_feature_names_out())
        counts = counts.sort_index().sort_values(ascending=False, kind="stable").head(top)
        rows += [{"dataset": dataset, "category": category, "keyword": word, "captions": int(n),
                  "share": round(n / len(group), 3)} for word, n in counts.items()]
    return pd.DataFrame(rows, columns=["dataset", "category", "keyword", "captions", "share"])


def provenance(caption_set: CaptionSet, datasets: list[str]) -> str:
    """One line that identifies the captions and the code: printed under every figure and table."""
    from mvtec_caption import __version__

    info = caption_set.info
    hashes = ", ".join(f"{name} {info.captions_sha256.get(name, '?')}" for name in datasets)
    origin = "DEMO DATA (generated, not MVTec)" if info.kind == "demo" else f"{info.kind} caption source"
    if matches_pinned_upstream(info, datasets):
        from mvtec_caption.upstream import UPSTREAM_COMMIT, UPSTREAM_REPOSITORY

        origin += f" = {UPSTREAM_REPOSITORY}@{UPSTREAM_COMMIT[:12]}"
    return f"mvtec_caption {__version__} stats; {origin}; sha256 of parsed captions: {hashes}"


@dataclass(frozen=True)
class StatsTables:
    captions: pd.DataFrame
    summary: pd.DataFrame
    attributes: pd.DataFrame
    keywords: pd.DataFrame
    provenance: str


def compute_stats(caption_set: CaptionSet, datasets: list[str] | None = None, categories: list[str] | None = None) -> StatsTables:
    names = sorted(datasets or caption_set.captions)
    frame = caption_frame(caption_set, names, categories)
    if frame.empty:
        raise ValueError(f"no captions for categories {categories} in {', '.join(names)}")
    return StatsTables(frame, summary_table(frame), attribute_table(frame), keyword_table(frame), provenance(caption_set, names))


def _markdown_report(tables: StatsTables, figures: list[Path]) -> str:
    top = tables.attributes[tables.attributes["category"] == ALL].groupby(["dataset", "attribute"], sort=True).head(8)
    keywords = tables.keywords[tables.keywords["category"] == ALL].groupby("dataset", sort=True).head(15)
    parts = [
        "# MVTec Caption: caption attribute statistics\n",
        f"_{tables.provenance}_\n",
        "Shares are fractions of captions (one caption per anomalous image) that mention the item; "
        "attributes are rule-based (`mvtec_caption.attributes`).\n",
        "## Summary per dataset and category\n", markdown_table(tables.summary),
        "## Most frequent attribute values per dataset\n", markdown_table(top),
        "## Most frequent keywords per dataset\n", markdown_table(keywords),
        "## Figures\n", *[f"![{p.stem}]({p.name})\n" for p in figures],
        "Full tables: `summary.csv`, `attributes.csv`, `keywords.csv`.\n",
    ]
    return "\n".join(parts)


def write_stats(caption_set: CaptionSet, out: Path, datasets: list[str] | None = None,
                categories: list[str] | None = None) -> list[Path]:
    """Write tables (CSV + ``stats.md``) and figures (PNG) into ``out``; return the files."""
    from mvtec_caption.stats_plots import save_figures

    tables = compute_stats(caption_set, datasets, categories)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in (("summary", tables.summary), ("attributes", tables.attributes), ("keywords", tables.keywords)):
        path = out / f"{name}.csv"
        table.to_csv(path, index=False, lineterminator="\n")
        written.append(path)
    figures = save_figures(tables, out)
    report = out / "stats.md"
    report.write_text(_markdown_report(tables, figures), encoding="utf-8")
    return [*written, report, *figures]
