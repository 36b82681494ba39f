"""Counts and provenance of a caption set as a :class:`~mvtec_caption.schema.DatasetManifest`.

The manifest must not depend on *how* the captions reached this machine: the verified
upstream scripts, the cache, or a JSON copy with the same content give the same manifest.
So a source whose parsed-captions hashes equal the pinned upstream ones is described by the
pinned upstream (repository, commit, per-file sha256) at a canonical URL, never by a local path.
"""

from __future__ import annotations

import json
from pathlib import Path

from mvtec_caption.schema import CaptionSourceInfo, CategoryCounts, DatasetCounts, DatasetManifest, UpstreamFileInfo
from mvtec_caption.sources import CaptionSet
from mvtec_caption.upstream import (
    TREE_URL_TEMPLATE,
    UPSTREAM_CAPTIONS_SHA256,
    UPSTREAM_COMMIT,
    UPSTREAM_FILES,
    UPSTREAM_REPOSITORY,
    Captions,
)


def matches_pinned_upstream(info: CaptionSourceInfo, datasets: list[str]) -> bool:
    """True when every named dataset's captions are exactly the pinned upstream captions."""
    return bool(datasets) and all(
        info.captions_sha256.get(name) == UPSTREAM_CAPTIONS_SHA256.get(name) for name in datasets
    )


def pinned_upstream_info(datasets: list[str]) -> CaptionSourceInfo:
    """The canonical description of the pinned upstream files for ``datasets``."""
    return CaptionSourceInfo(
        kind="upstream",
        location=TREE_URL_TEMPLATE.format(repository=UPSTREAM_REPOSITORY, commit=UPSTREAM_COMMIT),
        upstream_repository=UPSTREAM_REPOSITORY,
        upstream_commit=UPSTREAM_COMMIT,
        upstream_files={
            name: UpstreamFileInfo(path=UPSTREAM_FILES[name][0], sha256=UPSTREAM_FILES[name][1], captions=UPSTREAM_FILES[name][2])
            for name in datasets
        },
        captions_sha256={name: UPSTREAM_CAPTIONS_SHA256[name] for name in datasets},
    )


def dataset_counts(captions: Captions, categories: list[str] | None = None) -> DatasetCounts:
    names = sorted(captions) if categories is None else [c for c in sorted(captions) if c in categories]
    per_category = {
        name: CategoryCounts(
            defect_types={defect: len(items) for defect, items in sorted(captions[name].items())},
            total=sum(len(items) for items in captions[name].values()),
        )
        for name in names
    }
    return DatasetCounts(categories=per_category, total=sum(c.total for c in per_category.values()))


def build_manifest(
    caption_set: CaptionSet, datasets: list[str] | None = None, categories: list[str] | None = None
) -> DatasetManifest:
    """The manifest of ``datasets`` (default: all in the set); ``categories`` limits the counts only."""
    names = sorted(datasets or caption_set.captions)
    for name in names:
        caption_set.for_dataset(name)  # a clear error for a dataset the source lacks
    counts = {name: dataset_counts(caption_set.captions[name], categories) for name in names}
    info = caption_set.info
    if matches_pinned_upstream(info, names):
        source = pinned_upstream_info(names)
    else:
        source = info.model_copy(
            update={
                "upstream_files": {k: v for k, v in info.upstream_files.items() if k in names},
                "captions_sha256": {k: v for k, v in info.captions_sha256.items() if k in names},
            }
        )
    return DatasetManifest(
        datasets=counts,
        total=sum(c.total for c in counts.values()),
        source=source,
        is_demo=info.kind == "demo",
    )


def manifest_json(manifest: DatasetManifest) -> str:
    """Stable text (sorted keys, indent 2, trailing newline) so the committed file diffs cleanly."""
    return json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_manifest(manifest: DatasetManifest, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(manifest_json(manifest), encoding="utf-8")
    return path


def read_manifest(path: Path) -> DatasetManifest:
    return DatasetManifest.model_validate_json(Path(path).read_text(encoding="utf-8"))
