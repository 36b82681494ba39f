"""Everything a run needs about one category, loaded once: split, training view, test arrays, hashes."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.protocols import Protocol
from benchmark.split import ProtocolSplit, load_items, make_split, train_view
from mvtec_caption.scan import UnreadableImageError
from synthesis.contract import TrainSplit
from synthesis.guard import test_data_paths


UNREADABLE = ("unreadable_image", "unreadable_mask")


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


def _test_set(dataset_dict, split: ProtocolSplit) -> TestSet:  # noqa: ANN001
    rows = load_items(dataset_dict, split.test_good + split.test_anomalous, split.image_size)
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


def load_category(protocol: Protocol, subset: str, category: str, data_root: str | os.PathLike[str] | None,
                  caption_source: str | None) -> CategoryContext:
    from mvtec_caption import load_dataset
    from mvtec_caption.loader import resolve_dataset

    resolved = resolve_dataset(subset, data_root, [category], caption_source=caption_source, progress=False)
    unreadable = [f"{p.path} ({p.detail})" for p in resolved.scan.problems if p.kind in UNREADABLE]
    if unreadable:  # skipping them would test on fewer images than the copy holds, without saying so
        raise UnreadableImageError(f"{category}: {len(unreadable)} image or mask file(s) cannot be read: "
                                   f"{'; '.join(unreadable)}")
    data = load_dataset("mvtec_caption", subset=subset, data_root=resolved.root, categories=[category],
                        caption_source=caption_source, progress=False)
    split = make_split(data, category, protocol.id, protocol.image_size)
    info = resolved.caption_set.info
    location = Path(info.location)
    return CategoryContext(
        protocol=protocol,
        subset=subset,
        category=category,
        is_demo=resolved.subset.is_demo,
        captions_sha256=info.captions_sha256[subset],
        caption_source_kind=info.kind,
        split=split,
        train=train_view(data, split),
        test=_test_set(data, split),
        forbidden_paths=tuple(test_data_paths(resolved.root, category, str(location) if location.exists() else None)),
    )


def test_image_names(ctx: CategoryContext) -> list[str]:
    """``<defect type>/<image id>`` of each test image, in the order of ``ctx.test`` (good images first)."""
    return [f"{item.defect_type}/{item.image_id}" for item in ctx.split.test_good + ctx.split.test_anomalous]


test_image_names.__test__ = False  # type: ignore[attr-defined]  # its name starts with "test": not a pytest test
