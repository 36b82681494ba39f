"""The few-shot training view of one category: what a synthesizer may learn from, and nothing else.

These types sit in the dataset layer, below both :mod:`synthesis` (whose contract hands a
:class:`TrainSplit` to every synthesizer and re-exports these names) and :mod:`benchmark`, because
:mod:`mvtec_caption.split` builds them from a loaded dataset.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np


def _readonly(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


@dataclass(frozen=True)
class NormalImage:
    image_id: str
    image: np.ndarray  # HxWx3 uint8, read-only

    def __post_init__(self) -> None:
        object.__setattr__(self, "image", _readonly(self.image))


@dataclass(frozen=True)
class FewShotAnomaly:
    """One real anomaly of the training third: pixels, binary mask and caption."""

    defect_type: str
    image_id: str
    image: np.ndarray  # HxWx3 uint8, read-only
    mask: np.ndarray  # HxW bool, read-only
    caption: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "image", _readonly(self.image))
        object.__setattr__(self, "mask", _readonly(self.mask.astype(bool)))


@dataclass(frozen=True)
class TrainSplit:
    """Everything a synthesizer may learn from, and nothing else.

    ``split_id`` is a content hash of the ids and pixels, recorded with every fitted model and
    generated set so results say exactly what the synthesizer saw.
    """

    dataset: str
    category: str
    image_size: int
    normals: tuple[NormalImage, ...]
    anomalies: tuple[FewShotAnomaly, ...]
    is_demo: bool
    protocol_id: str
    split_id: str = field(default="")

    def __post_init__(self) -> None:
        if not self.split_id:
            object.__setattr__(self, "split_id", self._content_hash())

    def _content_hash(self) -> str:
        digest = hashlib.sha256()
        digest.update(f"{self.dataset}/{self.category}/{self.image_size}/{self.protocol_id}".encode())
        for normal in self.normals:
            digest.update(normal.image_id.encode())
            digest.update(normal.image.tobytes())
        for anomaly in self.anomalies:
            digest.update(f"{anomaly.defect_type}/{anomaly.image_id}/{anomaly.caption}".encode())
            digest.update(anomaly.image.tobytes())
            digest.update(np.packbits(anomaly.mask).tobytes())
        return digest.hexdigest()

    @property
    def defect_types(self) -> list[str]:
        return sorted({a.defect_type for a in self.anomalies})

    def anomalies_of(self, defect_type: str) -> list[FewShotAnomaly]:
        return [a for a in self.anomalies if a.defect_type == defect_type]

    def captions_of(self, defect_type: str) -> list[str]:
        return [a.caption for a in self.anomalies_of(defect_type)]
