"""Everything a run needs about one category, loaded once: split, training view, test arrays, hashes.

Built on :func:`mvtec_caption.prepare.prepare_category`, the one way every command prepares a category."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.protocols import Protocol
from mvtec_caption.fewshot import TrainSplit
from mvtec_caption.loader import DataSource
from mvtec_caption.prepare import PreparedCategory, prepare_category
from mvtec_caption.split import ProtocolSplit


@dataclass(frozen=True)
class TestSet:
    """Decoded test images at the protocol resolution (never handed to a synthesizer)."""

    __test__ = False  # not a pytest class

    images: np.ndarray  # [N,H,W,3] uint8
    masks: np.ndarray  # [N,H,W] bool
    labels: np.ndarray  # [N] int (1 = anomalous)
    defect_types: list[str]  # "good" for normal images
    captions: list[str | None]
    sha256: str


@dataclass(frozen=True)
class CategoryContext:
    protocol: Protocol
    subset: str
    category: str
    is_demo: bool
    captions_sha256: str
    caption_source_kind: str
    split: ProtocolSplit
    train: TrainSplit
    test: TestSet
    forbidden_paths: tuple[Path, ...]

    @property
    def split_sha256(self) -> str:
        """Identity of the whole split: what the synthesizer saw and what it is tested on."""
        return hashlib.sha256(f"{self.train.split_id}:{self.test.sha256}".encode()).hexdigest()


def _test_set(prepared: PreparedCategory) -> TestSet:
    rows = prepared.decode_test()
    digest = hashlib.sha256()
    for item, image, mask, caption in rows:
        digest.update(f"{item.defect_type}/{item.image_id}/{caption}".encode())
        digest.update(image.tobytes())
        digest.update(np.packbits(mask).tobytes())
    return TestSet(
        images=np.stack([image for _, image, _, _ in rows]),
        masks=np.stack([mask for _, _, mask, _ in rows]),
        labels=np.array([0 if item.defect_type == "good" else 1 for item, _, _, _ in rows], dtype=np.int64),
        defect_types=[item.defect_type for item, _, _, _ in rows],
        captions=[caption for _, _, _, caption in rows],
        sha256=digest.hexdigest(),
    )


def load_category(protocol: Protocol, subset: str, category: str, data_root: str | os.PathLike[str] | None = None,
                  caption_source: str | None = None, *, source: DataSource | None = None) -> CategoryContext:
    """Prepare one category at the protocol's resolution (see :mod:`mvtec_caption.prepare`) and decode its test split.

    ``source`` (located once per run) is reused for every category; without it the data is located here.
    """
    prepared = prepare_category(category, protocol_id=protocol.id, image_size=protocol.image_size, source=source,
                                subset=subset, data_root=data_root, caption_source=caption_source)
    info = prepared.source.caption_set.info
    return CategoryContext(
        protocol=protocol,
        subset=prepared.subset,
        category=category,
        is_demo=prepared.is_demo,
        captions_sha256=info.captions_sha256[prepared.subset],
        caption_source_kind=info.kind,
        split=prepared.split,
        train=prepared.train,
        test=_test_set(prepared),
        forbidden_paths=prepared.forbidden_paths,
    )


def test_image_names(ctx: CategoryContext) -> list[str]:
    """``<defect type>/<image id>`` of each test image, in the order of ``ctx.test`` (good images first)."""
    return [f"{item.defect_type}/{item.image_id}" for item in ctx.split.test_good + ctx.split.test_anomalous]


test_image_names.__test__ = False  # type: ignore[attr-defined]  # its name starts with "test": not a pytest test
