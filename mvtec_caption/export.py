"""Portable copies of a loaded subset that ``datasets.load_dataset(folder)`` reads offline.

Current ``datasets`` releases run no loading scripts, so an export is plain data plus a
README.md whose YAML ``configs`` section names the files of each split and the features
(so ``label`` stays a ``ClassLabel`` and ``mask`` an ``Image``). Formats (:data:`EXPORTERS`):

* ``parquet``: ``data/<split>-<i>-of-<n>.parquet`` (shards of about 500 MB) with image and mask
  bytes embedded;
* ``imagefolder``: ``<split>/<category>/<defect_type>/<id>.png`` with ``<id>_mask.png`` beside
  it (LOCO: the binary union of the instance masks; good images: an all-zero mask) and a
  ``metadata.parquet`` per split (``file_name``, ``mask_file_name``, ``caption``, metadata).
  Not ``metadata.jsonl``: ``datasets`` infers each split's JSON types separately and refuses
  splits that differ, and the train split (good images only) has an all-null ``caption``, so
  the metadata is written with an explicit schema instead.

Every export also holds ``records.jsonl`` (the caption records, readable with
:func:`mvtec_caption.records.read_records`) and ``manifest.json``. Before anything is written,
every image and mask the export would hold is decoded: a truncated or empty file (and any file the
scan already found unreadable) is named and nothing is exported, rather than writing a copy that
fails when someone loads it. The export is assembled in a staging folder beside ``out`` and moved
into place at the end; nothing is ever written into the dataset folder it was read from.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tqdm.auto import tqdm

from mvtec_caption.loader import HOMEPAGE, ResolvedDataset, dataset_dict_from, features
from mvtec_caption.manifest import build_manifest, write_manifest
from mvtec_caption.output_folder import OutputFolderError, OutputKind, check_output_folder, data_roots
from mvtec_caption.records import write_records
from mvtec_caption.scan import readable_size


class ExportError(ValueError):
    """The export cannot be written where or how it was asked for."""


@dataclass
class ExportResult:
    out: Path
    format: str
    rows: dict[str, int]
    records: int
    files: list[Path] = field(default_factory=list)


#: Upper bound (before compression) of the image bytes in one parquet file.
MAX_SHARD_BYTES = 500 * 1024 * 1024

#: format -> function(dataset_dict, staging folder, progress) -> data_files per split (glob patterns).
Exporter = Callable[[Any, Path, bool], dict[str, str]]


@contextmanager
def _datasets_progress(enabled: bool) -> Iterator[None]:
    """Silence ``datasets``' own progress bars for one block, restoring the previous state."""
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    if not enabled:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def _payload_bytes(dataset: Any) -> int:
    """Bytes of image and mask data a split will embed (files on disk plus in-memory PNGs)."""
    import pyarrow.compute as pc

    table = dataset.with_format("arrow")[:]
    total = 0
    for column in ("image", "mask"):
        paths = pc.struct_field(table.column(column), "path").to_pylist()
        total += sum(os.path.getsize(path) for path in paths if path)
        total += pc.sum(pc.binary_length(pc.struct_field(table.column(column), "bytes"))).as_py() or 0
    return total


def _export_parquet(splits: Any, staging: Path, progress: bool) -> dict[str, str]:
    """Shards of at most about :data:`MAX_SHARD_BYTES`, so memory stays bounded on full MVTec AD."""
    from datasets.table import embed_table_storage

    patterns = {}
    (staging / "data").mkdir(parents=True, exist_ok=True)
    with _datasets_progress(progress):
        for split, dataset in splits.items():
            shards = max(1, math.ceil(_payload_bytes(dataset) / MAX_SHARD_BYTES))
            for index in range(shards):
                part = dataset.shard(num_shards=shards, index=index, contiguous=True)
                embedded = part.with_format("arrow").map(embed_table_storage, batched=True, keep_in_memory=True,
                                                         desc=f"embedding {split} {index + 1}/{shards}").with_format(None)
                embedded.to_parquet(str(staging / "data" / f"{split}-{index:05d}-of-{shards:05d}.parquet"))
            patterns[split] = f"data/{split}-*.parquet"
    return patterns


def _copy_or_write(item: dict[str, Any], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if item.get("bytes") is not None:
        target.write_bytes(item["bytes"])
    else:
        shutil.copyfile(item["path"], target)


def _metadata_schema():  # noqa: ANN202 (pyarrow schema)
    """Arrow schema of ``metadata.parquet``: the file-name columns, then every non-image feature."""
    import pyarrow as pa

    columns = {name: feature for name, feature in features().items() if name not in ("image", "mask")}
    from datasets import Features

    metadata = Features(columns).arrow_schema
    return pa.schema([pa.field("file_name", pa.string()), pa.field("mask_file_name", pa.string()), *metadata])


def _export_imagefolder(splits: Any, staging: Path, progress: bool) -> dict[str, str]:
    """Image files plus a typed ``metadata.parquet`` per split (see the module docstring for why not JSON)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Image

    schema = _metadata_schema()
    patterns = {}
    for split, dataset in splits.items():
        raw = dataset.cast_column("image", Image(decode=False)).cast_column("mask", Image(decode=False))
        folder = staging / split
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for row in tqdm(raw, desc=f"copying {split}", unit="img", disable=not progress, leave=False):
            stem = f"{row['category']}/{row['defect_type']}/{row['image_id']}"
            suffix = Path(row["image"]["path"] or ".png").suffix or ".png"
            file_name, mask_file_name = f"{stem}{suffix}", f"{stem}_mask.png"
            _copy_or_write(row["image"], folder / file_name)
            _copy_or_write(row["mask"], folder / mask_file_name)
            rows.append({"file_name": file_name, "mask_file_name": mask_file_name,
                         **{k: v for k, v in row.items() if k not in ("image", "mask")}})
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / "metadata.parquet")
        patterns[split] = f"{split}/**"
    return patterns


EXPORTERS: dict[str, Exporter] = {
    "parquet": _export_parquet,
    "imagefolder": _export_imagefolder,
}


def _readme(resolved: ResolvedDataset, fmt: str, patterns: dict[str, str], rows: dict[str, int]) -> str:
    spec, info = resolved.subset, resolved.caption_set.info
    card = {
        "pretty_name": "MVTec Caption" + (" (DEMO DATA)" if spec.is_demo else ""),
        "license": "other" if spec.is_demo else "cc-by-nc-sa-4.0",
        "tags": ["anomaly-detection", "image-captioning", "mvtec"],
        "configs": [{
            "config_name": "default",
            "data_files": [{"split": split, "path": pattern} for split, pattern in sorted(patterns.items())],
            # the inverse of what datasets parses from `configs[].features` (Features._from_yaml_list);
            # no public API writes it, and the export round-trip tests guard the format
            "features": features()._to_yaml_list(),
        }],
    }
    demo = ("**DEMO DATA**: generated by `mvtec_caption.demo`, not MVTec images; never report results on it "
            "as results on MVTec.\n\n") if spec.is_demo else ""
    licence = ("" if spec.is_demo else
               "Licence: the MVTec AD / MVTec LOCO AD images and masks are (c) MVTec Software GmbH, CC BY-NC-SA 4.0 "
               f"(non-commercial). The captions are the MVTec Caption annotations ({HOMEPAGE}); their repository "
               "states no licence.\n\n")
    counts = "\n".join(f"- `{split}`: {n} images" for split, n in sorted(rows.items()))
    gaps = "".join(f"- {p.severity} `{p.kind}`: {p.category}/{p.defect_type or '-'}: {p.detail}\n"
                   for p in resolved.scan.problems if p.category in resolved.scan.categories)
    if gaps:
        counts += "\n\nProblems of the source folder (this export holds only what was usable):\n\n" + gaps.rstrip("\n")
    hashes = f"{spec.name} `{info.captions_sha256.get(spec.name, '?')}`"
    body = (
        f"# MVTec Caption export: {spec.name}\n\n{demo}"
        f"Exported by `python -m mvtec_caption export --format {fmt}` from categories "
        f"{', '.join(resolved.scan.categories)}.\n\n{counts}\n\n"
        "Load it offline with `datasets.load_dataset(\"<this folder>\")`. Anomalous test images carry a mask and "
        "a caption; good images an all-zero mask and no caption. LOCO masks are the binary union of the instance "
        "masks. `records.jsonl` holds the caption records (`mvtec_caption.records.read_records`), "
        "`manifest.json` the caption counts and provenance; `image_path` / `mask_paths` are relative to the "
        "original dataset root.\n\n"
        f"Captions: {info.kind} source, sha256 of parsed captions: {hashes}"
        + (f"; upstream {info.upstream_repository}@{info.upstream_commit}" if info.upstream_commit else "")
        + ".\n\n" + licence
    )
    return "---\n" + yaml.safe_dump(card, sort_keys=False, allow_unicode=True) + "---\n\n" + body


#: An export folder: always new or empty (it is assembled beside and moved into place).
EXPORT_OUTPUT = OutputKind("mvtec_caption", "export")


def _check_destination(out: Path, resolved: ResolvedDataset) -> Path:
    """Refuse ``out`` in or around any data in effect (this dataset, the environment's, the demo data) or not empty."""
    roots = data_roots([("the exported dataset", resolved.root), ("the caption source", _caption_location(resolved))])
    try:
        return check_output_folder(out, EXPORT_OUTPUT, roots, reuse=False)
    except OutputFolderError as err:
        raise ExportError(str(err)) from None


def _caption_location(resolved: ResolvedDataset) -> Path | None:
    location = Path(resolved.caption_set.info.location)
    return location if location.exists() else None


UNREADABLE = ("unreadable_image", "unreadable_mask")


def _files(resolved: ResolvedDataset) -> list[Path]:
    """Every image and mask file the export would hold."""
    root, scan = resolved.root, resolved.scan
    files = [root / good.image_path for good in scan.good]
    for record in scan.records:
        files += [root / record.image_path, *(root / mask for mask in record.mask_paths)]
    return files


def check_decodable(resolved: ResolvedDataset, *, progress: bool = True) -> None:
    """Decode every file the export would hold; name every one that fails (and those the scan found unreadable)."""
    bad = [f"{p.path} ({p.detail})" for p in resolved.scan.problems if p.kind in UNREADABLE]
    files = _files(resolved)
    for path in tqdm(files, desc="decoding images and masks", unit="file", disable=not progress, leave=False):
        if isinstance(reason := readable_size(path), str):
            bad.append(f"{path} ({reason})")
    if bad:
        raise ExportError(f"{len(bad)} image or mask file(s) cannot be decoded, so nothing was exported "
                          f"(fix or remove them, or restrict --categories): {'; '.join(bad)}")


def export_dataset(resolved: ResolvedDataset, out: Path, fmt: str, *, progress: bool = True) -> ExportResult:
    """Write ``resolved`` to ``out`` in format ``fmt`` (a key of :data:`EXPORTERS`); see the module docstring."""
    if fmt not in EXPORTERS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of: {', '.join(EXPORTERS)}")
    out = _check_destination(out, resolved)
    check_decodable(resolved, progress=progress)
    splits = dataset_dict_from(resolved)
    rows = {split: len(dataset) for split, dataset in splits.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.staging-"))
    try:
        patterns = EXPORTERS[fmt](splits, staging, progress)
        write_records(staging / "records.jsonl", resolved.scan.records)
        manifest = build_manifest(resolved.caption_set, [resolved.subset.name], resolved.scan.categories)
        write_manifest(manifest, staging / "manifest.json")
        (staging / "README.md").write_text(_readme(resolved, fmt, patterns, rows), encoding="utf-8")
        if out.exists():
            out.rmdir()  # checked empty above
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    files = sorted(p for p in out.rglob("*") if p.is_file())
    return ExportResult(out=out, format=fmt, rows=rows, records=len(resolved.scan.records), files=files)
