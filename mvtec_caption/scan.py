"""Pair captions with the files of a dataset root and report what is missing or broken.

One scan serves both the loader (which keeps what is usable and reports the rest) and
``validate`` (which additionally decodes every file). The loader's scan reads every file's
header (cheap), so an empty or unidentifiable file is reported with its path instead of failing
later inside ``datasets``; ``validate`` decodes every pixel, which also finds truncated files and
masks that are not binary. The scan only reads the dataset folder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from mvtec_caption.attributes import derive_attributes
from mvtec_caption.layout import (  # noqa: F401 (UnreadableImageError: raised for files the scan vouched for)
    SubsetSpec,
    UnreadableImageError,
    image_rel_path,
    list_images,
    mask_rel_paths,
    non_binary_share,
)
from mvtec_caption.schema import CaptionRecord, Problem
from mvtec_caption.upstream import Captions


@dataclass(frozen=True)
class GoodImage:
    """A defect-free image of a category (train, validation or test split)."""

    category: str
    split: str
    image_id: str
    image_path: str  # relative to the dataset root
    size: tuple[int, int] | None = None  # (width, height) from the scan, when it read the file


@dataclass
class ScanResult:
    subset: SubsetSpec
    root: Path
    categories: list[str]
    records: list[CaptionRecord] = field(default_factory=list)
    good: list[GoodImage] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


Reader = Callable[[Path], "tuple[int, int] | str"]


def _open_problem(path: Path) -> str | None:
    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
    except OSError as err:
        return f"cannot read it ({err.strerror or err})"
    return None


def header_size(path: Path) -> tuple[int, int] | str:
    """The image size from the file's header (cheap), or the reason it cannot be read."""
    if (problem := _open_problem(path)) is not None:
        return problem
    try:
        with Image.open(path) as handle:
            return handle.size
    except Exception as err:  # PIL raises many types for corrupt files
        return f"{type(err).__name__}: {err}"


def readable_size(path: Path) -> tuple[int, int] | str:
    """The image size after a full decode, or the reason it cannot be read."""
    if (problem := _open_problem(path)) is not None:
        return problem
    try:
        with Image.open(path) as handle:
            handle.load()
            return handle.size
    except Exception as err:  # PIL raises many types for corrupt files
        return f"{type(err).__name__}: {err}"


def _mask_share(path: Path) -> float:
    """Share of the mask's pixels that are neither 0 nor its maximum (see mvtec_caption.layout)."""
    with Image.open(path) as handle:
        return non_binary_share(np.asarray(handle.convert("L")))


def _looks_like_category(folder: Path) -> bool:
    return (folder / "train").is_dir() and (folder / "test").is_dir()


def scan_dataset(
    subset: SubsetSpec,
    root: Path,
    captions: Captions,
    categories: list[str] | None = None,
    *,
    check_files: bool = False,
    progress: bool = True,
) -> ScanResult:
    """Pair captions and files under ``root`` for the requested categories.

    ``categories=None`` means every captioned category present under ``root``; captioned
    categories absent from ``root`` (a partial copy) and category folders without captions
    are then warnings. Explicitly requested categories that are absent, or that have no
    captions, are errors. ``check_files`` decodes every image and mask (what ``validate`` does).
    """
    requested = categories is not None
    on_disk = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    wanted = list(categories) if requested else [c for c in sorted(captions) if c in on_disk]
    result = ScanResult(subset=subset, root=root, categories=[])

    if _looks_like_category(root) and root.name not in on_disk:
        result.problems.append(Problem(kind="missing_category", severity="error", category=root.name, path=str(root),
                                       detail="the data root looks like one category folder (it has train/ and test/): "
                                              f"pass its parent as the data root and --categories {root.name}"))
    if not requested:
        for name in sorted(captions):
            if name not in on_disk:
                result.problems.append(Problem(kind="missing_category", severity="warning", category=name,
                                               path=str(root / name), detail="captioned category not under the data root"))
        for name in on_disk:
            if name not in captions and _looks_like_category(root / name):
                result.problems.append(Problem(kind="unknown_category", severity="warning", category=name,
                                               path=str(root / name), detail=f"category folder with no captions in {subset.name}; skipped"))
    for name in wanted:
        if name not in captions:
            result.problems.append(Problem(kind="unknown_category", severity="error", category=name,
                                           detail=f"no captions for this category in {subset.name}"))
            continue
        if name not in on_disk:
            result.problems.append(Problem(kind="missing_category", severity="error", category=name,
                                           path=str(root / name), detail="requested category folder does not exist"))
            continue
        result.categories.append(name)
        _scan_category(result, name, captions[name], check_files=check_files, progress=progress)
    return result


def _read_all(paths: list[Path], read: Reader, desc: str, progress: bool) -> dict[Path, tuple[int, int] | str]:
    """Read every file -> size or the reason it cannot be read.

    Serial on purpose: PNG decoding holds the GIL, and a process pool measured no faster on
    the 2-core machines this runs on.
    """
    bar = tqdm(paths, desc=desc, unit="file", disable=not progress, leave=False)
    return {path: read(path) for path in bar}


def _scan_category(result: ScanResult, category: str, defects: dict[str, list[str]], *,
                   check_files: bool, progress: bool) -> None:
    subset, base = result.subset, result.root / category

    good = {split: list_images(base / split / "good") for split in subset.good_splits}
    present = sorted(d for d in defects if (base / "test" / d).is_dir())
    read: Reader = readable_size if check_files else header_size
    to_check = [p for images in good.values() for p in images]
    masks: list[Path] = []
    for defect in present:
        to_check += list_images(base / "test" / defect)
        masks += sorted(p for p in (base / "ground_truth" / defect).rglob("*.png") if p.is_file())
    sizes = _read_all(to_check + masks, read, f"{subset.name}/{category}", progress and check_files)
    if check_files:
        _report_non_binary(result, category, base, [m for m in masks if not isinstance(sizes[m], str)])

    for split, images in good.items():
        folder = base / split / "good"
        if not images:
            result.problems.append(Problem(kind="missing_split", severity="warning", category=category,
                                           defect_type="good", path=str(folder),
                                           detail=f"no good {split} images (partial copy?)"))
        for path in images:
            if isinstance(size := sizes[path], str):
                result.problems.append(Problem(kind="unreadable_image", severity="error", category=category,
                                               defect_type="good", path=str(path), detail=size))
                continue
            result.good.append(GoodImage(category, split, path.stem, f"{category}/{split}/good/{path.name}", size))

    known_test_folders = set(defects) | {"good"}
    for folder in sorted(p for p in (base / "test").glob("*") if p.is_dir() and p.name not in known_test_folders):
        result.problems.append(Problem(kind="caption_count_mismatch", severity="error", category=category,
                                       defect_type=folder.name, path=str(folder),
                                       detail=f"{len(list_images(folder))} images of a defect type with no captions"))

    for defect in sorted(defects):
        folder = base / "test" / defect
        if defect not in present:
            result.problems.append(Problem(kind="missing_split", severity="warning", category=category,
                                           defect_type=defect, path=str(folder),
                                           detail=f"{len(defects[defect])} captioned images absent (partial copy?)"))
            continue
        n_images = len(list_images(folder))
        if n_images != len(defects[defect]):
            result.problems.append(Problem(kind="caption_count_mismatch", severity="error", category=category,
                                           defect_type=defect, path=str(folder),
                                           detail=f"{len(defects[defect])} captions but {n_images} images"))
        for index, text in enumerate(defects[defect]):
            record = _pair(result, category, defect, index, text, sizes, read)
            if record is not None:
                result.records.append(record)


def _report_non_binary(result: ScanResult, category: str, base: Path, masks: list[Path]) -> None:
    """A warning per mask that is not binary: the loaders threshold it at half its maximum (mvtec_caption.layout)."""
    for path in masks:
        share = _mask_share(path)
        if share > 0:
            defect = path.relative_to(base / "ground_truth").parts[0]
            result.problems.append(Problem(
                kind="non_binary_mask", severity="warning", category=category, defect_type=defect, path=str(path),
                detail=f"not a binary mask: {100 * share:.1f}% of its pixels are neither 0 nor its maximum (a grey "
                       "gradient, or a JPEG saved as .png?); the loaders read it as anomalous above half the maximum"))


def _pair(result: ScanResult, category: str, defect: str, index: int, text: str,
          sizes: dict[Path, tuple[int, int] | str], read: Reader) -> CaptionRecord | None:
    """The record of caption ``index``, or None after reporting why it is unusable.

    ``sizes`` holds each file's size or the reason it cannot be read (from :func:`_read_all`
    with ``read``: the header for the loader, a full decode for ``validate``).
    """
    subset, base = result.subset, result.root / category
    image_rel = image_rel_path(defect, index)
    mask_rels = mask_rel_paths(result.root, category, subset.layout, defect, index)

    def problem(kind: str, path: str, detail: str) -> None:
        result.problems.append(Problem(kind=kind, severity="error", category=category, defect_type=defect,  # type: ignore[arg-type]
                                       path=str(base / path), detail=detail))

    usable = True
    if not (base / image_rel).is_file():
        problem("missing_image", image_rel, f"caption {index} has no image")
        usable = False
    missing_masks = [m for m in mask_rels if not (base / m).is_file()]
    for mask in missing_masks:
        problem("missing_mask", mask, f"image {index:03d} has no mask")
        usable = False
    if usable:
        image_size = sizes.get(base / image_rel) or read(base / image_rel)
        if isinstance(image_size, str):
            problem("unreadable_image", image_rel, image_size)
            usable = False
        for mask in mask_rels:
            mask_size = sizes.get(base / mask) or read(base / mask)
            if isinstance(mask_size, str):
                problem("unreadable_mask", mask, mask_size)
                usable = False
            elif not isinstance(image_size, str) and mask_size != image_size:
                problem("mask_size_mismatch", mask, f"mask {mask_size[0]}x{mask_size[1]} vs image {image_size[0]}x{image_size[1]}")
                usable = False
    if not usable:
        return None
    return CaptionRecord(
        dataset=subset.name,
        category=category,
        defect_type=defect,
        image_id=f"{index:03d}",
        image_path=f"{category}/{image_rel}",
        mask_paths=[f"{category}/{m}" for m in mask_rels],
        caption=text,
        caption_index=index,
        attributes=derive_attributes(text, subset.name, defect, category),
        is_demo=subset.is_demo,
    )
