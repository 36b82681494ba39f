"""Where files live in MVTec-format folders, and the caption pairing rule.

Pairing rule (both datasets): caption ``i`` of (category, defect type) belongs to test image
``test/<defect_type>/{i:03d}.png``.

* MVTec AD: its mask is ``ground_truth/<defect_type>/{i:03d}_mask.png``.
* MVTec LOCO AD: its mask is the *binary union* of every PNG in
  ``ground_truth/<defect_type>/{i:03d}/``. LOCO gives each defect instance its own file and
  encodes the defect kind as a grey value (see the category's ``defects_config.json``); a pixel
  is anomalous when it is anomalous in any of the files, so the union is ``max_k(binary(mask_k))``.
  (The upstream merge script kept only values > 245 of the later files, which drops
  instances whose grey value is lower; we do not reproduce that.)

Mask rule (every reader: the loader, the torch dataset, the benchmark split): a mask file is
read as greyscale, and a pixel is anomalous when its value is **above half of that file's
maximum** (an all-zero file marks nothing). A proper mask holds only 0 and one other value (255
in MVTec AD, the defect kind's grey value in a LOCO instance file), for which this is the same as
"> 0". It differs on masks that are not binary: a JPEG saved as ``.png`` has compression noise
around the edges and in the background, which "> 0" would turn into a mask covering almost the
whole image; thresholding at half the maximum keeps the drawn shape. ``validate`` reports every
such mask (with the share of pixels that are neither 0 nor the maximum), and the readers log it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
logger = logging.getLogger("mvtec_caption")


@dataclass(frozen=True)
class SubsetSpec:
    """How one subset is laid out and where its root is configured."""

    name: str
    layout: Literal["ad", "loco"]
    root_env: str | None
    good_splits: tuple[str, ...]  # folders holding good images, as (split name) -> <split>/good
    is_demo: bool = False
    description: str = ""


SUBSETS: dict[str, SubsetSpec] = {
    "mvtec_ad": SubsetSpec(
        name="mvtec_ad", layout="ad", root_env="MVTEC_AD_ROOT", good_splits=("train", "test"),
        description="MVTec AD (15 categories, 73 defect types, 1,258 captioned anomalies)",
    ),
    "mvtec_loco": SubsetSpec(
        name="mvtec_loco", layout="loco", root_env="MVTEC_LOCO_ROOT", good_splits=("train", "validation", "test"),
        description="MVTec LOCO AD (5 categories, logical and structural anomalies, 993 captioned)",
    ),
    "demo": SubsetSpec(
        name="demo", layout="ad", root_env=None, good_splits=("train", "test"), is_demo=True,
        description="Generated miniature MVTec-format data with captions (DEMO DATA, not MVTec)",
    ),
}


def get_subset(name: str) -> SubsetSpec:
    if name not in SUBSETS:
        raise ValueError(f"unknown subset {name!r}; choose one of: {', '.join(SUBSETS)}")
    return SUBSETS[name]


def resolve_root(subset: SubsetSpec, data_root: str | os.PathLike[str] | None) -> Path | None:
    """The data root from the argument, else the subset's environment variable."""
    if data_root is not None:
        return Path(data_root).expanduser()
    if subset.root_env and os.environ.get(subset.root_env):
        return Path(os.environ[subset.root_env]).expanduser()
    return None


def image_rel_path(defect_type: str, index: int) -> str:
    return f"test/{defect_type}/{index:03d}.png"


def mask_rel_paths(root: Path, category: str, layout: str, defect_type: str, index: int) -> list[str]:
    """Relative mask paths for one image (LOCO: every PNG of its folder, sorted)."""
    if layout == "ad":
        return [f"ground_truth/{defect_type}/{index:03d}_mask.png"]
    folder = f"ground_truth/{defect_type}/{index:03d}"
    on_disk = root / category / folder
    if on_disk.is_dir():
        files = sorted(p.name for p in on_disk.iterdir() if p.suffix.lower() == ".png")
        if files:
            return [f"{folder}/{name}" for name in files]
    return [f"{folder}/000.png"]  # the expected name, so a missing folder is reported by path


def list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def non_binary_share(values: np.ndarray) -> float:
    """Share of pixels that are neither 0 nor the mask's maximum (0.0 for a proper binary mask)."""
    values = np.asarray(values)
    if values.size == 0:
        return 0.0
    return float(np.count_nonzero((values != 0) & (values != values.max())) / values.size)


def binarize_mask(values: np.ndarray) -> np.ndarray:
    """The mask rule (module docstring): anomalous where the value is above half the mask's maximum."""
    values = np.asarray(values)
    top = int(values.max()) if values.size else 0
    if top == 0:
        return np.zeros(values.shape, dtype=bool)
    return values.astype(np.int64) * 2 > top


_warned: set[str] = set()


def mask_pixels(image: Image.Image, source: str | os.PathLike[str] | None = None) -> np.ndarray:
    """A decoded mask image as bool HxW by the mask rule; a non-binary mask is logged once per source."""
    values = np.asarray(image.convert("L"))
    share = non_binary_share(values)
    if share > 0 and source is not None and str(source) not in _warned:
        _warned.add(str(source))
        logger.warning("%s: mask is not binary (%.1f%% of pixels are neither 0 nor its maximum %d); read as anomalous "
                       "above half the maximum; `python -m mvtec_caption validate` lists every such mask",
                       source, 100 * share, int(values.max()))
    return binarize_mask(values)


class UnreadableImageError(ValueError):
    """An image or mask file that cannot be decoded; the message names the file."""


def load_binary_mask(paths: list[Path]) -> np.ndarray:
    """Union of the masks as uint8 {0, 255} (see the module docstring for the rule)."""
    union: np.ndarray | None = None
    for path in paths:
        try:
            with Image.open(path) as handle:
                values = mask_pixels(handle, path)
        except OSError as err:  # PIL's UnidentifiedImageError and "truncated" errors are OSErrors
            raise UnreadableImageError(f"{path}: cannot decode this mask ({type(err).__name__}: {err}); "
                                       "`python -m mvtec_caption validate` lists every unreadable file") from err
        if union is None:
            union = values
        elif union.shape != values.shape:
            raise ValueError(f"{path}: mask size {values.shape[::-1]} differs from {paths[0]} {union.shape[::-1]}")
        else:
            union |= values
    if union is None:
        raise ValueError("no mask files given")
    return union.astype(np.uint8) * 255
