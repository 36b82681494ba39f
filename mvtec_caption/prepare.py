"""One way to prepare a category for synthesis or benchmarking: locate once, scan once, load once, split once.

The benchmark (``python -m benchmark run | plan``), the synthesis CLI (``fit | generate | grid``)
and the scripts all start here, so a category's files are scanned exactly once per run and every
consumer sees the same split:

1. :func:`~mvtec_caption.loader.locate_dataset` finds the data root and the captions (once per run;
   pass the :class:`~mvtec_caption.loader.DataSource` on to prepare several categories from it);
2. the category is scanned once (file headers); an unreadable image or mask stops here, naming
   every such file, since skipping it would split fewer images than the copy holds without saying so;
3. the scan becomes a ``datasets.DatasetDict`` (no second scan through ``load_dataset``);
4. :func:`~mvtec_caption.split.make_split` splits it and the training view is decoded.

>>> prepared = prepare_category("disc", subset="demo", protocol_id="adhoc/64px", image_size=64)  # doctest: +SKIP
>>> prepared.train.normals[0].image.shape  # doctest: +SKIP
(64, 64, 3)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mvtec_caption.fewshot import TrainSplit
from mvtec_caption.loader import DataSource, DatasetProblemsError, ResolvedDataset, dataset_dict_from, locate_dataset, \
    report_problems
from mvtec_caption.scan import UnreadableImageError
from mvtec_caption.split import ProtocolSplit, SplitItem, load_items, make_split, test_data_paths, train_view

UNREADABLE = ("unreadable_image", "unreadable_mask")


@dataclass(frozen=True)
class PreparedCategory:
    """One category, scanned, loaded and split: the training view for synthesizers, the test split for scoring."""

    source: DataSource
    category: str
    resolved: ResolvedDataset  # the scan of this category
    data: Any  # datasets.DatasetDict of this category
    split: ProtocolSplit
    train: TrainSplit

    @property
    def subset(self) -> str:
        return self.source.subset.name

    @property
    def is_demo(self) -> bool:
        return self.source.subset.is_demo

    @property
    def forbidden_paths(self) -> tuple[Path, ...]:
        """The category's test data (test/, ground_truth/, the caption source): never read while a synthesizer runs."""
        location = Path(self.source.caption_set.info.location)
        return tuple(test_data_paths(self.source.root, self.category, str(location) if location.exists() else None))

    @property
    def test_items(self) -> tuple[SplitItem, ...]:
        """The test split in scoring order: good images first, then the anomalies."""
        return self.split.test_good + self.split.test_anomalous

    def decode_test(self) -> list[tuple[SplitItem, np.ndarray, np.ndarray, str | None]]:
        """The test split decoded at the split's resolution as (item, image, mask, caption); only scorers call this."""
        return load_items(self.data, self.test_items, self.split.image_size)

    def describe(self) -> str:
        """One line on what was prepared (for a command's stderr)."""
        train, split = self.train, self.split
        demo = " (DEMO DATA)" if train.is_demo else ""
        return (f"{train.dataset}/{train.category}{demo}: {len(train.normals)} normal and {len(train.anomalies)} few-shot "
                f"anomalies for fitting ({', '.join(train.defect_types)}); test data held back: "
                f"{split.summary()['test_anomalous']} anomalies, {len(split.test_good)} good ({split.good_test_source})")


def prepare_category(category: str, *, protocol_id: str, image_size: int, source: DataSource | None = None,
                     subset: str = "mvtec_ad", data_root: str | os.PathLike[str] | None = None,
                     caption_source: str | os.PathLike[str] | None = None, progress: bool = False) -> PreparedCategory:
    """Scan, load and split one category (see the module docstring); ``source`` reuses a located data source."""
    if source is None:
        source = locate_dataset(subset, data_root, [category], caption_source=caption_source)
    resolved = source.scan([category], progress=progress)
    problems = resolved.scan.problems
    unreadable = [f"{p.path} ({p.detail})" for p in problems if p.kind in UNREADABLE]
    if unreadable:
        raise UnreadableImageError(f"{category}: {len(unreadable)} image or mask file(s) cannot be read: "
                                   f"{'; '.join(unreadable)}")
    report_problems(problems)
    if category not in resolved.scan.categories:
        errors = "; ".join(p.detail for p in resolved.scan.errors) or "not found"
        raise DatasetProblemsError(f"{category}: no usable category under {resolved.root} ({errors})", problems)
    data = dataset_dict_from(resolved)
    split = make_split(data, category, protocol_id, image_size)
    return PreparedCategory(source, category, resolved, data, split, train_view(data, split))
