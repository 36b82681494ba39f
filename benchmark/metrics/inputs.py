"""What every fidelity metric is given: generated defects and the real anomalies, per defect type.

The harness builds one :class:`FidelityInputs` per (synthesizer, category). Real training
anomalies are the few-shot third the synthesizer learned from (IC-LPIPS cluster centres);
real test anomalies are evaluation-only references (caption faithfulness), never shown to a
synthesizer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class GeneratedItem:
    image: np.ndarray  # HxWx3 uint8
    mask: np.ndarray  # HxW bool: the synthesized defect region
    caption: str  # the caption the defect was asked for
    normal: np.ndarray | None = None  # HxWx3 uint8: the normal image the defect was made on (attributes, label and
    # colour fidelity), when known


@dataclass(frozen=True)
class RealItem:
    image: np.ndarray  # HxWx3 uint8
    mask: np.ndarray  # HxW bool: ground-truth defect region
    caption: str


Item = GeneratedItem | RealItem


@dataclass(frozen=True)
class FidelityInputs:
    generated: dict[str, list[GeneratedItem]]
    real_train: dict[str, list[RealItem]]
    real_test: dict[str, list[RealItem]] = field(default_factory=dict)
    image_size: int = 0

    def __post_init__(self) -> None:
        for group in (self.generated, self.real_train, self.real_test):
            for defect, items in group.items():
                for index, item in enumerate(items):
                    _check_item(item, f"{defect}[{index}]", self.image_size)

    @property
    def has_captions(self) -> bool:
        """Whether any generated image carries the caption it was asked for (imported sets have none)."""
        return any(item.caption.strip() for items in self.generated.values() for item in items)

    @property
    def defect_types(self) -> list[str]:
        """Defect types with generated images (the ones every metric reports on)."""
        return sorted(defect for defect, items in self.generated.items() if items)


def _check_item(item: Item, where: str, size: int) -> None:
    image, mask = np.asarray(item.image), np.asarray(item.mask)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"{where}: image must be HxWx3 uint8, got {image.shape} {image.dtype}")
    if mask.shape != image.shape[:2]:
        raise ValueError(f"{where}: mask {mask.shape} does not match image {image.shape[:2]}")
    normal = getattr(item, "normal", None)
    if normal is not None and np.asarray(normal).shape != image.shape:
        raise ValueError(f"{where}: normal image {np.asarray(normal).shape} does not match image {image.shape}")
    if size and image.shape[:2] != (size, size):
        raise ValueError(f"{where}: image is {image.shape[:2]}, the inputs declare image_size={size}")


def images_hash(images: Iterable[np.ndarray]) -> str:
    """Content hash of a sequence of arrays (shape, dtype and bytes; order matters)."""
    digest = hashlib.sha256()
    for array in images:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.shape}{array.dtype}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def items_hash(items: Sequence[Item], with_masks: bool = False, with_captions: bool = False) -> str:
    parts: list[np.ndarray] = []
    for item in items:
        parts.append(np.asarray(item.image))
        if with_masks:
            parts.append(np.asarray(item.mask, dtype=bool))
        if with_captions:
            parts.append(np.frombuffer(item.caption.encode(), dtype=np.uint8))
    return images_hash(parts)
