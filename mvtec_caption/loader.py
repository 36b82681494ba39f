"""``load_dataset("mvtec_caption", ...)``: captions paired with images and masks as a DatasetDict.

Current ``datasets`` releases no longer run dataset scripts, so this function plays that role
for MVTec Caption while returning ordinary ``datasets`` objects. Splits:

* ``train``: good training images;
* ``test``: every test image, anomalous ones with mask and caption, good ones with an
  all-zero mask and no caption;
* ``validation``: good validation images, where the data has them (LOCO).
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from mvtec_caption.demo import demo_location
from mvtec_caption.layout import SubsetSpec, get_subset, load_binary_mask, resolve_root
from mvtec_caption.schema import RECORD_SCHEMA_VERSION, Problem
from mvtec_caption.scan import ScanResult, UnreadableImageError, header_size, scan_dataset
from mvtec_caption.sources import CaptionSet, load_json_source, resolve_caption_source

logger = logging.getLogger("mvtec_caption")

DATASET_NAME = "mvtec_caption"
HOMEPAGE = "https://github.com/hujiecpp/MVTec-Caption"
LICENSE = "CC BY-NC-SA 4.0 (MVTec AD / LOCO AD images); captions: no licence stated upstream"
ATTRIBUTE_FIELDS = ("colors", "positions", "parts", "relations", "defect_words")


class DatasetProblemsError(RuntimeError):
    """Raised in strict mode, or when nothing at all could be loaded."""

    def __init__(self, message: str, problems: list[Problem]):
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True)
class ResolvedDataset:
    """A subset's root, captions and scan: what every consumer of a dataset starts from."""

    subset: SubsetSpec
    root: Path
    caption_set: CaptionSet
    scan: ScanResult


def features():  # noqa: ANN201 (datasets types are imported lazily)
    from datasets import ClassLabel, Features, Image, List, Value

    return Features(
        {
            "image": Image(),
            "mask": Image(),
            "caption": Value("string"),
            "dataset": Value("string"),
            "category": Value("string"),
            "defect_type": Value("string"),
            "image_id": Value("string"),
            "label": ClassLabel(names=["good", "anomalous"]),
            "anomaly_kind": Value("string"),
            "attributes": {
                **{name: List(Value("string")) for name in ATTRIBUTE_FIELDS},
                "counts": List(Value("int32")),
            },
            "image_path": Value("string"),
            "mask_paths": List(Value("string")),
            "is_demo": Value("bool"),
            "schema_version": Value("int32"),
        }
    )


@lru_cache(maxsize=32)
def _empty_mask_png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("L", size, 0).save(buffer, format="PNG")
    return buffer.getvalue()


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass(frozen=True)
class DataSource:
    """Where a subset's data and captions are, found once (nothing scanned yet).

    Every consumer that works on several categories locates the source once and scans each
    category once from it (see :mod:`mvtec_caption.prepare`).
    """

    subset: SubsetSpec
    root: Path
    caption_set: CaptionSet

    def categories(self) -> list[str]:
        """Captioned categories with a folder under the root (what a scan without ``categories`` covers), no file read."""
        on_disk = {p.name for p in self.root.iterdir() if p.is_dir()}
        return [name for name in sorted(self.caption_set.for_dataset(self.subset.name)) if name in on_disk]

    def scan(self, categories: list[str] | None = None, *, check_files: bool = False,
             progress: bool = True) -> ResolvedDataset:
        """Pair captions and files of ``categories`` (None: every captioned category present)."""
        scan = scan_dataset(self.subset, self.root, self.caption_set.for_dataset(self.subset.name), categories,
                            check_files=check_files, progress=progress)
        return ResolvedDataset(self.subset, self.root, self.caption_set, scan)


def locate_dataset(
    subset: str = "mvtec_ad",
    data_root: str | os.PathLike[str] | None = None,
    categories: list[str] | None = None,
    *,
    caption_source: str | os.PathLike[str] | None = None,
    verify: bool = True,
) -> DataSource:
    """Find a subset's root and captions (``categories`` only matters for the demo's opt-in categories)."""
    spec = get_subset(subset)
    root = resolve_root(spec, data_root)
    if spec.is_demo:
        root, demo_captions = demo_location(categories, root)
        caption_set = load_json_source(Path(caption_source) if caption_source else demo_captions, kind="demo")
    else:
        if root is None:
            raise ValueError(
                f"no data root for {subset}: pass data_root=... (--data-root) or set {spec.root_env}; "
                "or use subset='demo' for the generated demo data"
            )
        caption_set = resolve_caption_source(caption_source, datasets=(subset,), verify=verify)
    if not root.is_dir():
        raise FileNotFoundError(f"data root {root} is not a folder (expected <root>/<category>/train/good/...)")
    return DataSource(spec, root, caption_set)


def resolve_dataset(
    subset: str = "mvtec_ad",
    data_root: str | os.PathLike[str] | None = None,
    categories: list[str] | None = None,
    *,
    caption_source: str | os.PathLike[str] | None = None,
    check_files: bool = False,
    progress: bool = True,
    verify: bool = True,
) -> ResolvedDataset:
    """Find root and captions for a subset and pair them (shared by the loader and ``validate``)."""
    source = locate_dataset(subset, data_root, categories, caption_source=caption_source, verify=verify)
    return source.scan(categories, check_files=check_files, progress=progress)


def _attributes_row(record: Any | None) -> dict[str, list[Any]] | None:
    if record is None:
        return None
    data = record.attributes.model_dump()
    return {name: data[name] for name in (*ATTRIBUTE_FIELDS, "counts")}


def _rows(resolved: ResolvedDataset) -> dict[str, list[dict[str, Any]]]:
    root, spec = resolved.root, resolved.subset
    rows: dict[str, list[dict[str, Any]]] = {}
    for good in resolved.scan.good:
        path = root / good.image_path
        size = good.size or header_size(path)  # the scan read every header; a GoodImage made elsewhere may lack it
        if isinstance(size, str):
            raise UnreadableImageError(f"{path}: cannot read this image ({size})")
        rows.setdefault(good.split, []).append(
            {
                "image": {"path": str(path), "bytes": None},
                "mask": {"path": None, "bytes": _empty_mask_png(size)},
                "caption": None,
                "dataset": spec.name,
                "category": good.category,
                "defect_type": "good",
                "image_id": good.image_id,
                "label": 0,
                "anomaly_kind": None,
                "attributes": None,
                "image_path": good.image_path,
                "mask_paths": [],
                "is_demo": spec.is_demo,
                "schema_version": RECORD_SCHEMA_VERSION,
            }
        )
    for record in resolved.scan.records:
        mask_files = [root / m for m in record.mask_paths]
        if spec.layout == "ad":
            mask = {"path": str(mask_files[0]), "bytes": None}
        else:  # LOCO: the binary union of the instance masks (see mvtec_caption.layout)
            mask = {"path": None, "bytes": _png_bytes(load_binary_mask(mask_files))}
        rows.setdefault("test", []).append(
            {
                "image": {"path": str(root / record.image_path), "bytes": None},
                "mask": mask,
                "caption": record.caption,
                "dataset": spec.name,
                "category": record.category,
                "defect_type": record.defect_type,
                "image_id": record.image_id,
                "label": 1,
                "anomaly_kind": record.attributes.kind,
                "attributes": _attributes_row(record),
                "image_path": record.image_path,
                "mask_paths": record.mask_paths,
                "is_demo": spec.is_demo,
                "schema_version": RECORD_SCHEMA_VERSION,
            }
        )
    for split_rows in rows.values():
        split_rows.sort(key=lambda r: (r["category"], r["defect_type"] != "good", r["defect_type"], r["image_id"]))
    return rows


def _describe(resolved: ResolvedDataset) -> str:
    info = resolved.caption_set.info
    demo = "DEMO DATA (generated, not MVTec). " if resolved.subset.is_demo else ""
    return (
        f"{demo}MVTec Caption, subset {resolved.subset.name}, root {resolved.root}, "
        f"categories {', '.join(resolved.scan.categories)}; captions from {info.kind} source {info.location} "
        f"(sha256 of parsed captions {info.captions_sha256.get(resolved.subset.name, '?')})"
    )


def report_problems(problems: list[Problem]) -> None:
    """Log every problem of a scan (errors as errors, the rest as warnings) through the ``mvtec_caption`` logger."""
    for problem in problems:
        log = logger.error if problem.severity == "error" else logger.warning
        where = f" ({problem.path})" if problem.path else ""
        log("%s/%s: %s: %s%s", problem.category, problem.defect_type or "-", problem.kind, problem.detail, where)


def dataset_dict_from(resolved: ResolvedDataset):  # noqa: ANN201 -> datasets.DatasetDict
    """The splits of a resolved dataset as in-memory ``datasets`` objects (images stay files)."""
    from datasets import Dataset, DatasetDict, DatasetInfo

    rows = _rows(resolved)
    description = _describe(resolved)
    return DatasetDict(
        {
            split_name: Dataset.from_list(
                split_rows,
                info=DatasetInfo(description=description, homepage=HOMEPAGE, license=LICENSE, features=features()),
                split=split_name,
            )
            for split_name, split_rows in sorted(rows.items())
        }
    )


def load_dataset(
    name: str = DATASET_NAME,
    *,
    data_root: str | os.PathLike[str] | None = None,
    subset: str = "mvtec_ad",
    categories: list[str] | None = None,
    caption_source: str | os.PathLike[str] | None = None,
    split: str | None = None,
    strict: bool = False,
    progress: bool = True,
    verify: bool = True,
):  # noqa: ANN201 -> datasets.DatasetDict | datasets.Dataset
    """Load MVTec Caption as a ``datasets.DatasetDict`` (or one split with ``split=``).

    >>> ds = load_dataset("mvtec_caption", subset="demo", categories=["disc"])  # doctest: +SKIP
    >>> ds["test"][0]["caption"]  # doctest: +SKIP

    Missing categories and partial copies are reported through the ``mvtec_caption`` logger
    and skipped; ``strict=True`` raises :class:`DatasetProblemsError` on any problem instead.
    """
    if name != DATASET_NAME:
        raise ValueError(f"unknown dataset {name!r}: this loader serves {DATASET_NAME!r}; use datasets.load_dataset for others")
    resolved = resolve_dataset(subset, data_root, categories, caption_source=caption_source, progress=progress, verify=verify)
    problems = resolved.scan.problems
    if strict and problems:
        raise DatasetProblemsError(f"{len(problems)} problem(s) in {resolved.root} (strict mode)", problems)
    report_problems(problems)
    if not resolved.scan.categories:
        raise DatasetProblemsError(f"no usable category under {resolved.root}", problems)

    result = dataset_dict_from(resolved)
    if split is not None:
        if split not in result:
            raise ValueError(f"split {split!r} not available; have {', '.join(result)}")
        return result[split]
    return result
