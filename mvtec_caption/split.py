"""The protocol split: the few-shot training third for synthesizers, the rest for testing.

Per (category, defect type), anomalous test images are sorted by id; the first
``floor(n / 3)`` form the few-shot training split handed to the synthesizer (with masks and
captions); the remaining anomalies plus the good test images form the test split. No image
is in both (the usual protocol puts one image per defect type in both; we do not).

Good test images come from ``test/good``. When a copy lacks them (the shared LOCO subset),
``validation/good`` is held out as the good test images instead, and the split records it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mvtec_caption.layout import mask_pixels
from mvtec_caption.scan import UnreadableImageError, readable_size
from mvtec_caption.fewshot import FewShotAnomaly, NormalImage, TrainSplit


@dataclass(frozen=True)
class SplitItem:
    """One image of the split: where it sits in the DatasetDict and what it is."""

    source_split: str  # DatasetDict split: train, test or validation
    row: int
    defect_type: str  # "good" for normal images
    image_id: str


@dataclass(frozen=True)
class ProtocolSplit:
    protocol_id: str
    dataset: str
    category: str
    image_size: int
    is_demo: bool
    train_good: tuple[SplitItem, ...]
    fewshot: tuple[SplitItem, ...]
    test_anomalous: tuple[SplitItem, ...]
    test_good: tuple[SplitItem, ...]
    good_test_source: str

    def summary(self) -> dict[str, Any]:
        per_type: dict[str, dict[str, int]] = {}
        for role, items in (("fewshot_train", self.fewshot), ("test", self.test_anomalous)):
            for item in items:
                per_type.setdefault(item.defect_type, {"fewshot_train": 0, "test": 0})[role] += 1
        return {
            "train_good": len(self.train_good), "test_good": len(self.test_good),
            "fewshot_train": len(self.fewshot), "test_anomalous": len(self.test_anomalous),
            "good_test_source": self.good_test_source, "per_defect_type": per_type,
        }


def fewshot_count(n: int) -> int:
    """How many of a defect type's n images go to the synthesizer: the first floor(n / 3)."""
    return n // 3


def make_split(dataset_dict: Any, category: str, protocol_id: str, image_size: int) -> ProtocolSplit:
    """Split one category of a :func:`mvtec_caption.load_dataset` result."""
    def items(split: str, predicate) -> list[SplitItem]:  # noqa: ANN001
        if split not in dataset_dict:
            return []
        columns = dataset_dict[split].select_columns(["category", "defect_type", "image_id", "label"])
        return [
            SplitItem(split, row, d, i)
            for row, (c, d, i, label) in enumerate(zip(columns["category"], columns["defect_type"], columns["image_id"], columns["label"]))
            if c == category and predicate(d, label)
        ]

    train_good = items("train", lambda d, label: label == 0)
    if not train_good:
        raise ValueError(f"{category}: no good training images in the dataset")
    test_good = items("test", lambda d, label: label == 0)
    good_source = "test/good"
    if not test_good:
        test_good = items("validation", lambda d, label: label == 0)
        good_source = "validation/good (held out: the copy has no test/good)"
    if not test_good:
        raise ValueError(f"{category}: no good test or validation images to test on")

    anomalous = items("test", lambda d, label: label == 1)
    by_type: dict[str, list[SplitItem]] = {}
    for item in anomalous:
        by_type.setdefault(item.defect_type, []).append(item)
    fewshot: list[SplitItem] = []
    test_anomalous: list[SplitItem] = []
    for defect in sorted(by_type):
        ordered = sorted(by_type[defect], key=lambda it: it.image_id)
        k = fewshot_count(len(ordered))
        fewshot += ordered[:k]
        test_anomalous += ordered[k:]
    if not fewshot:
        raise ValueError(f"{category}: no defect type has 3 or more images, so the few-shot split is empty")
    demo = bool(dataset_dict["train"][train_good[0].row]["is_demo"])
    dataset = str(dataset_dict["train"][train_good[0].row]["dataset"])
    return ProtocolSplit(protocol_id, dataset, category, image_size, demo, tuple(train_good), tuple(fewshot),
                         tuple(test_anomalous), tuple(test_good), good_source)


def _rgb(image: Image.Image, size: int) -> np.ndarray:
    return np.asarray(image.convert("RGB").resize((size, size), Image.BICUBIC))


def _binary(mask: Image.Image, size: int, source: str | None) -> np.ndarray:
    """The dataset's mask rule (anomalous above half the file's maximum) at full size, then resized."""
    binary = mask_pixels(mask, source)
    return np.asarray(Image.fromarray(binary.astype(np.uint8) * 255).resize((size, size), Image.NEAREST)) > 0


def _files_of(dataset: Any, row: int) -> list[str]:
    """The image and mask files behind one row (without decoding them)."""
    from datasets import Image as ImageFeature

    raw = dataset.select_columns(["image", "mask"]).cast_column("image", ImageFeature(decode=False))
    raw = raw.cast_column("mask", ImageFeature(decode=False))[row]
    return [entry["path"] for entry in (raw["image"], raw["mask"]) if entry.get("path")]


def _decode_error(dataset: Any, item: SplitItem, err: Exception) -> UnreadableImageError:
    """Name the file that failed: ``datasets`` and PIL errors do not say which one it was."""
    files = _files_of(dataset, item.row)
    bad = [f"{path} ({reason})" for path in files if isinstance(reason := readable_size(Path(path)), str)]
    named = "; ".join(bad) or f"{' or '.join(files) or item.image_id} ({type(err).__name__}: {err})"
    return UnreadableImageError(f"cannot decode {named}; `python -m mvtec_caption validate` lists every unreadable "
                                "file of the data root")


def load_items(dataset_dict: Any, items: tuple[SplitItem, ...], size: int) -> list[tuple[SplitItem, np.ndarray, np.ndarray, str | None]]:
    """Decode items as (item, image HxWx3 uint8, mask HxW bool, caption) at ``size``; a broken file is named."""
    rows = []
    for item in items:
        dataset = dataset_dict[item.source_split]
        try:
            row = dataset[item.row]
            source = (row["mask_paths"] or [row["image_path"]])[0]
            rows.append((item, _rgb(row["image"], size), _binary(row["mask"], size, source), row["caption"]))
        except OSError as err:  # PIL's UnidentifiedImageError and "image file is truncated" are OSErrors
            raise _decode_error(dataset, item, err) from err
    return rows


def train_view(dataset_dict: Any, split: ProtocolSplit) -> TrainSplit:
    """The only object a synthesizer receives: decoded training pixels, no paths, no test data."""
    normals = tuple(NormalImage(item.image_id, image) for item, image, _, _ in load_items(dataset_dict, split.train_good, split.image_size))
    anomalies = tuple(
        FewShotAnomaly(item.defect_type, item.image_id, image, mask, caption or "")
        for item, image, mask, caption in load_items(dataset_dict, split.fewshot, split.image_size)
    )
    return TrainSplit(dataset=split.dataset, category=split.category, image_size=split.image_size, normals=normals,
                      anomalies=anomalies, is_demo=split.is_demo, protocol_id=split.protocol_id)


def test_data_paths(dataset_root: Path, category: str, caption_source: str | None = None) -> list[Path]:
    """The folders and files of one category a synthesizer must never read."""
    base = Path(dataset_root) / category
    paths = [base / "test", base / "ground_truth"]
    if caption_source:
        paths.append(Path(caption_source))
    return paths


test_data_paths.__test__ = False  # type: ignore[attr-defined]  # its name starts with "test": not a pytest test
