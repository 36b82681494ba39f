"""Folder layouts of generated sets, by name: how to find a set's image-mask pairs, and how to lay a set out.

Most published anomaly synthesizers release their generated image-mask pairs rather than runnable
training code, each in its own folder layout. A :class:`Layout` lists the pairs of one category of
such a folder (:meth:`Layout.scan`), reporting every file it cannot pair instead of skipping it,
and can write one of this project's generated sets into the same layout (:meth:`Layout.export`:
the re-layout that shows an imported set scores like the original, and the export users want).

Registered layouts (``python -m benchmark list``):

``native``
    This project's generated-set folder (:mod:`synthesis.generated_set`): ``generation.json``,
    ``manifest.jsonl``, ``<defect>/<index>.png`` and ``<defect>/<index>_mask.png``; the folder
    itself or a folder holding ``<category>/``.
``anomalydiffusion``
    AnomalyDiffusion (Hu et al., AAAI 2024), as its generation script writes it and its detector
    data loader reads it (``generate_with_mask.py``, ``unet_utils/data_loader.py`` of
    github.com/sjtuplayer/anomalydiffusion): ``<root>/<category>/<defect>/image/<i>.jpg`` with
    ``mask/<i>.jpg`` beside it, ``i`` counting from 0, and ``ori/<i>.jpg`` the normal image the
    defect was inpainted into (used to find the clean source, see :mod:`synthesis.importer`).
``seas``
    SeaS (Dai et al., ICCV 2025), as its inference script writes one defect type
    (``models/seas_infer.py``: ``<output_dir>/image/<NNN>.png`` and ``<output_dir>/mask/<NNN>.png``,
    with ``output_dir = outputs/images/<category>/<defect>`` in its ``scripts/infer.sh``):
    ``<root>/<category>/<defect>/image/<NNN>.png`` + ``mask/<NNN>.png``.

Numbered files of the image-mask layouts may be PNG or JPEG whatever the layout writes, so a
set re-laid out losslessly (PNG) is read the same way.
"""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: PIL's default JPEG quality, which AnomalyDiffusion's ``torchvision.utils.save_image`` uses.
DEFAULT_JPEG_QUALITY = 75


class LayoutError(ValueError):
    """A folder does not hold a set in the asked layout (the message names the folder)."""


@dataclass(frozen=True)
class ExternalPair:
    """One generated image with its mask, as found in a folder."""

    defect_type: str
    index: int
    image: Path
    mask: Path
    source: Path | None = None  # the normal image the defect was made on, when the layout keeps it
    caption: str | None = None  # native sets only
    caption_origin: str | None = None  # native sets only
    normal_id: str | None = None  # native sets only: the training normal image it was made on
    mask_origin: str | None = None  # native sets only
    seed: int | None = None  # native sets only
    plan: Any = None  # native sets only: the sample's SamplePlan (synthesis.plan), when its manifest has one

    def files(self) -> list[Path]:
        return [self.image, self.mask] + ([self.source] if self.source else [])


@dataclass
class LayoutScan:
    """The pairs of one category (sorted by defect type and index) and every file that could not be paired."""

    layout: str
    category: str
    folder: Path  # the folder the pairs were found in
    pairs: list[ExternalPair]
    problems: list[str] = field(default_factory=list)  # paths relative to ``folder``
    image_size: int | None = None  # native sets: the size they were generated at

    def per_defect(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for pair in self.pairs:
            counts[pair.defect_type] = counts.get(pair.defect_type, 0) + 1
        return counts

    def relative(self, path: Path) -> str:
        return path.relative_to(self.folder).as_posix()


class Layout(ABC):
    name: ClassVar[str]
    summary: ClassVar[str]
    documented_by: ClassVar[str] = ""

    @abstractmethod
    def scan(self, root: Path, category: str) -> LayoutScan:
        """The pairs of ``category`` below ``root``; raises :class:`LayoutError` when there are none to find."""

    def export(self, set_folder: Path, out_root: Path, *, lossless: bool = False,
               normals: Mapping[str, np.ndarray] | None = None, jpeg_quality: int = DEFAULT_JPEG_QUALITY,
               size: int | None = None) -> Path:
        """Write a generated set of this project into this layout below ``out_root``; returns the category folder."""
        raise NotImplementedError(f"layout {self.name!r} has no exporter")


# ---- image-mask folder layouts (AnomalyDiffusion, SeaS) -------------------------------------------

def _numbered_files(folder: Path, problems: list[str], base: Path) -> dict[int, Path]:
    """``{index: file}`` of the images named by a number in ``folder``; anything else is reported."""
    found: dict[int, Path] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        where = path.relative_to(base).as_posix()
        if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
            problems.append(f"{where}: not an image file, ignored")
        elif not path.stem.isdigit():
            problems.append(f"{where}: not named by a number, ignored")
        elif int(path.stem) in found:
            problems.append(f"{where}: a second file numbered {int(path.stem)} "
                            f"(beside {found[int(path.stem)].name}), ignored")
        else:
            found[int(path.stem)] = path
    return found


@dataclass(frozen=True)
class ImageMaskFolders(Layout):
    """``<root>/<category>/<defect>/<image_dir>/<n>.<ext>`` with ``<mask_dir>/<n>.<ext>`` beside it."""

    name: str  # type: ignore[misc]
    summary: str  # type: ignore[misc]
    documented_by: str = ""  # type: ignore[misc]
    image_dir: str = "image"
    mask_dir: str = "mask"
    source_dir: str | None = None
    suffix: str = ".jpg"
    number_format: str = "{:d}"

    def pattern(self) -> str:
        number = "<i>" if self.number_format == "{:d}" else "<NNN>"
        return f"<root>/<category>/<defect>/{self.image_dir}/{number}{self.suffix} + {self.mask_dir}/{number}{self.suffix}"

    def scan(self, root: Path, category: str) -> LayoutScan:
        root = Path(root)
        folder = root / category
        if not folder.is_dir():
            raise LayoutError(f"{root}: no folder {category}/ (layout {self.name}: {self.pattern()})")
        problems: list[str] = []
        pairs: list[ExternalPair] = []
        defects = [d for d in sorted(folder.iterdir()) if d.is_dir() and not d.name.startswith(".")]
        for path in sorted(folder.iterdir()):
            if not path.name.startswith(".") and not path.is_dir():
                problems.append(f"{path.relative_to(folder).as_posix()}: not a defect-type folder, ignored")
        for defect in defects:
            if not (defect / self.image_dir).is_dir() and not (defect / self.mask_dir).is_dir():
                problems.append(f"{defect.name}/: no {self.image_dir}/ or {self.mask_dir}/ folder, ignored")
                continue
            images = _numbered_files(defect / self.image_dir, problems, folder)
            masks = _numbered_files(defect / self.mask_dir, problems, folder)
            sources = _numbered_files(defect / self.source_dir, problems, folder) if self.source_dir else {}
            for index in sorted(set(images) | set(masks)):
                if index not in masks:
                    problems.append(f"{defect.name}/{self.image_dir}/{images[index].name}: no mask "
                                    f"({defect.name}/{self.mask_dir}/{index}.*), not imported")
                elif index not in images:
                    problems.append(f"{defect.name}/{self.mask_dir}/{masks[index].name}: no image "
                                    f"({defect.name}/{self.image_dir}/{index}.*), not imported")
                else:
                    pairs.append(ExternalPair(defect.name, index, images[index], masks[index], sources.get(index)))
        if not pairs:
            raise LayoutError(f"{folder}: no image-mask pairs in layout {self.name} ({self.pattern()})"
                              + (f"; {len(problems)} problem(s), first: {problems[0]}" if problems else ""))
        return LayoutScan(self.name, category, folder, pairs, problems)

    def export(self, set_folder: Path, out_root: Path, *, lossless: bool = False,
               normals: Mapping[str, np.ndarray] | None = None, jpeg_quality: int = DEFAULT_JPEG_QUALITY,
               size: int | None = None) -> Path:
        """Each sample's image and mask (and its normal source when the layout keeps one and ``normals`` has it),
        numbered from 0 per defect type in manifest order; JPEG like the original unless ``lossless`` (PNG);
        at ``size`` px when given (images bicubic, masks nearest: e.g. 256, the size AnomalyDiffusion writes)."""
        from synthesis.generated_set import load_samples, read_info

        info = read_info(set_folder)
        category = Path(out_root) / info.category
        if category.exists() and any(category.iterdir()):
            raise FileExistsError(f"{category} is not empty; refusing to write the re-laid set into it")
        suffix = ".png" if lossless else self.suffix
        counters: dict[str, int] = {}
        for sample, image, mask in load_samples(set_folder):
            number = counters.get(sample.defect_type, 0)
            counters[sample.defect_type] = number + 1
            stem = self.number_format.format(number)
            files = [(self.image_dir, _resized(image, size, Image.BICUBIC)),
                     (self.mask_dir, _resized(mask.astype(np.uint8) * 255, size, Image.NEAREST))]
            if self.source_dir and normals is not None and sample.normal_id in normals:
                files.append((self.source_dir, _resized(normals[sample.normal_id], size, Image.BICUBIC)))
            for sub, array in files:
                target = category / sample.defect_type / sub / f"{stem}{suffix}"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(encode(array, suffix, jpeg_quality))
        return category


def _resized(array: np.ndarray, size: int | None, resample: int) -> np.ndarray:
    if size is None or array.shape[:2] == (size, size):
        return array
    return np.asarray(Image.fromarray(array).resize((size, size), resample))


def encode(array: np.ndarray, suffix: str, jpeg_quality: int = DEFAULT_JPEG_QUALITY) -> bytes:
    buffer = io.BytesIO()
    if suffix.lower() in (".jpg", ".jpeg"):
        Image.fromarray(array).save(buffer, format="JPEG", quality=jpeg_quality)
    else:
        Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


# ---- this project's own generated-set folder -------------------------------------------------------

class NativeLayout(Layout):
    name = "native"
    summary = "this project's generated-set folder (generation.json, manifest.jsonl, PNG images and masks)"
    documented_by = "synthesis/generated_set.py"

    def scan(self, root: Path, category: str) -> LayoutScan:
        import hashlib

        from synthesis.generated_set import INFO, read_info, read_manifest

        root = Path(root)
        folder = root if (root / INFO).is_file() else root / category
        if not (folder / INFO).is_file():
            raise LayoutError(f"{root}: neither it nor {category}/ below it holds a generated set ({INFO})")
        try:
            info = read_info(folder)
        except ValueError as err:
            raise LayoutError(f"{folder / INFO}: not a generated-set description ({err})") from err
        if info.category != category:
            raise LayoutError(f"{folder}: holds a set of category {info.category!r}, not {category!r}")
        problems: list[str] = []
        pairs = []
        for s in read_manifest(folder):
            broken = [f"{name}: {'missing' if not (folder / name).is_file() else 'changed since generation'}"
                      for name, sha in ((s.image_file, s.image_sha256), (s.mask_file, s.mask_sha256))
                      if not (folder / name).is_file() or hashlib.sha256((folder / name).read_bytes()).hexdigest() != sha]
            if broken:
                problems += [f"{problem}, not imported" for problem in broken]
                continue
            pairs.append(ExternalPair(s.defect_type, s.index, folder / s.image_file, folder / s.mask_file,
                                      caption=s.caption, caption_origin=s.caption_origin, normal_id=s.normal_id,
                                      mask_origin=s.mask_origin, seed=s.seed, plan=s.plan))
        if len(pairs) != info.samples:
            problems.append(f"manifest.jsonl: {len(pairs)} intact samples of the {info.samples} in {INFO}")
        if not pairs:
            raise LayoutError(f"{folder}: the generated set has no intact samples")
        return LayoutScan(self.name, category, folder, sorted(pairs, key=lambda p: (p.defect_type, p.index)),
                          problems, image_size=info.image_size)


LAYOUTS: dict[str, Layout] = {}


def register_layout(layout: Layout) -> Layout:
    if layout.name in LAYOUTS and LAYOUTS[layout.name] != layout:
        raise ValueError(f"layout {layout.name!r} is already registered")
    LAYOUTS[layout.name] = layout
    return layout


def get_layout(name: str) -> Layout:
    if name not in LAYOUTS:
        raise KeyError(f"unknown layout {name!r}; known: {', '.join(sorted(LAYOUTS))}")
    return LAYOUTS[name]


register_layout(NativeLayout())
register_layout(ImageMaskFolders(
    "anomalydiffusion", "AnomalyDiffusion (AAAI 2024): <category>/<defect>/image/<i>.jpg + mask/<i>.jpg (+ ori/<i>.jpg)",
    "github.com/sjtuplayer/anomalydiffusion generate_with_mask.py, unet_utils/data_loader.py",
    source_dir="ori", suffix=".jpg", number_format="{:d}"))
register_layout(ImageMaskFolders(
    "seas", "SeaS (ICCV 2025): <category>/<defect>/image/<NNN>.png + mask/<NNN>.png",
    "SeaS models/seas_infer.py and scripts/infer.sh (github.com/HUST-SLOW/SeaS)",
    suffix=".png", number_format="{:03d}"))
