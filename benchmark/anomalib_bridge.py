"""anomalib on the protocol split: a datamodule, a generated-set augmenter for DRAEM, and ``Engine.fit``.

Why: an anomalib user should be able to train any anomalib model on "normal training images +
a synthesizer's anomalies" of a category's protocol split without copying files, and the
``draem`` detector should be trained by anomalib's own ``Engine`` rather than a loop of ours.

* :class:`ProtocolSplitDataModule` is a ``LightningDataModule`` of anomalib batches. Train: the
  normal training images (``ImageBatch``, seeded shuffle) or, with a generated set, balanced
  batches (:class:`~benchmark.detectors.sampling.BalancedPlan`: half normal images, half
  synthesized samples) of :class:`SynthesisBatch`. Test and predict: the test split with labels
  and masks. There is no validation loader on purpose: nothing is selected on test data.
* :class:`SynthesisBatch` is anomalib's ``ImageBatch`` plus ``augmented_image``. ``image`` is
  always a *normal* image (a normal training image, or the clean source a sample was made
  from) and ``augmented_image`` what the model should see (the same normal image, or the
  synthesized anomaly); ``gt_mask`` is the anomaly's mask (empty for normal images). So a
  one-class model reading ``image`` sees only normal images, and DRAEM gets its triple.
* :class:`GeneratedSetAugmenter` replaces ``Draem.augmenter`` (a callable from images to
  ``(augmented images, masks [B,1,H,W])``). anomalib's ``Draem.training_step`` runs unchanged:
  it reconstructs towards ``batch.image`` (the clean source), segments ``gt_mask``. The
  augmenter is also a Lightning ``Callback``: it reads the batch in ``on_train_batch_start``,
  because ``training_step`` hands it the images alone.
* :func:`fit_with_engine` runs ``anomalib.engine.Engine.fit`` in a private scratch folder that is
  removed afterwards (Engine writes its workspace and a checkpoint: 390 MB for a paper-size DRAEM).

Images are resized once here (as the detectors do, :func:`benchmark.detectors.tensors.images_to_tensor`),
so models should be given ``pre_processor=False`` or a transform that keeps the size.

Example (``normals`` uint8 [N,H,W,3], ``synthetic`` a :class:`~benchmark.detectors.base.SyntheticSet`)::

    >>> from anomalib.models import Draem
    >>> data = ProtocolSplitDataModule(normals, synthetic=synthetic, image_size=64, train_batch_size=8)
    >>> model = Draem(dtd_dir=empty_folder, pre_processor=False)
    >>> model.augmenter = GeneratedSetAugmenter()
    >>> fit_with_engine(model, data, max_epochs=1, callbacks=[model.augmenter])
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import lightning.pytorch as pl
import numpy as np
import torch
from anomalib.data.dataclasses.torch import ImageBatch, ImageItem
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from benchmark.detectors.base import SyntheticSet, check_images
from benchmark.detectors.sampling import BalancedPlan
from benchmark.detectors.tensors import images_to_tensor, masks_to_tensor

DATASET_NAME = "mvtec_caption_protocol"


@dataclass
class SynthesisItem(ImageItem):
    """One training sample: ``image`` the normal (clean) image, ``augmented_image`` the model's input."""

    augmented_image: torch.Tensor | None = None


@dataclass
class SynthesisBatch(ImageBatch):
    """anomalib's ``ImageBatch`` with the synthesized inputs beside the clean images (see the module docstring)."""

    item_class: ClassVar[type[ImageItem]] = SynthesisItem
    augmented_image: torch.Tensor | None = None


@dataclass(frozen=True)
class SplitTestSet:
    """The test split as the bridge needs it (:class:`benchmark.context.TestSet` has these fields)."""

    images: np.ndarray  # [N,H,W,3] uint8
    masks: np.ndarray  # [N,H,W] bool
    labels: np.ndarray  # [N] int, 1 = anomalous
    defect_types: Sequence[str]


# -- datasets ------------------------------------------------------------------------------------
def _image(array: np.ndarray, size: int) -> torch.Tensor:
    return images_to_tensor(array[None], size, "cpu")[0]


def _mask(array: np.ndarray, size: int) -> torch.Tensor:
    return masks_to_tensor(array[None], size, "cpu")[0, 0].bool()


class _NormalSet(Dataset):
    """Normal training images as anomalib items (label 0, empty mask)."""

    def __init__(self, normals: np.ndarray, size: int) -> None:
        self.normals, self.size = normals, size

    def __len__(self) -> int:
        return len(self.normals)

    def __getitem__(self, index: int) -> ImageItem:
        image = _image(self.normals[index], self.size)
        return ImageItem(image=image, gt_label=torch.tensor(0), gt_mask=torch.zeros(image.shape[-2:], dtype=torch.bool),
                         image_path=f"train/good/{index}")

    def collate(self, items: list[ImageItem]) -> ImageBatch:
        return ImageBatch.collate(items)


class _SynthesisSet(Dataset):
    """Indices ``[0, N)`` are the normal images, ``[N, N + M)`` the generated samples."""

    def __init__(self, normals: np.ndarray, synthetic: SyntheticSet, size: int) -> None:
        self.normals, self.synthetic, self.size = normals, synthetic, size

    def __len__(self) -> int:
        return len(self.normals) + len(self.synthetic)

    def __getitem__(self, index: int) -> SynthesisItem:
        size, n = self.size, len(self.normals)
        if index < n:
            image = _image(self.normals[index], size)
            return SynthesisItem(image=image, augmented_image=image, gt_label=torch.tensor(0),
                                 gt_mask=torch.zeros(image.shape[-2:], dtype=torch.bool),
                                 image_path=f"train/good/{index}")
        j = index - n
        s = self.synthetic
        return SynthesisItem(image=_image(s.clean[j], size), augmented_image=_image(s.anomalous[j], size),
                             gt_label=torch.tensor(1), gt_mask=_mask(s.masks[j], size), image_path=f"generated/{j}")

    def collate(self, items: list[SynthesisItem]) -> SynthesisBatch:
        batch = SynthesisBatch.collate(items)
        # channels-last, the layout of the detectors' batches (uint8 HWC arrays permuted): the same
        # convolution kernels then run, and DRAEM trains to the same bits as the plain loop
        batch.image = batch.image.contiguous(memory_format=torch.channels_last)
        batch.augmented_image = batch.augmented_image.contiguous(memory_format=torch.channels_last)
        return batch


class _TestSet(Dataset):
    def __init__(self, test: SplitTestSet, size: int) -> None:
        self.test, self.size = test, size

    def __len__(self) -> int:
        return len(self.test.images)

    def __getitem__(self, index: int) -> ImageItem:
        t = self.test
        return ImageItem(image=_image(t.images[index], self.size), gt_label=torch.tensor(int(t.labels[index])),
                         gt_mask=_mask(t.masks[index], self.size), image_path=f"test/{t.defect_types[index]}/{index}")

    def collate(self, items: list[ImageItem]) -> ImageBatch:
        return ImageBatch.collate(items)


class BalancedBatchSampler(Sampler[list[int]]):
    """The batches of a :class:`BalancedPlan` as dataset indices (normal ``i`` -> ``i``, sample ``j`` -> ``N + j``).

    Lightning calls ``set_epoch`` before every epoch, so epoch ``e`` is the plan's epoch ``e`` (its
    order depends only on ``(seed, e)``) however often the loader is iterated.
    """

    def __init__(self, plan: BalancedPlan) -> None:
        self.plan = plan
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def sampler(self) -> BalancedBatchSampler:
        """Lightning calls ``set_epoch`` on ``loader.batch_sampler.sampler``: that is this object."""
        return self

    def __len__(self) -> int:
        return self.plan.steps_per_epoch

    def __iter__(self) -> Iterator[list[int]]:
        n = self.plan.n_normal
        for step in self.plan.epoch(self.epoch):
            yield [int(i) for i in step.normal] + [n + int(j) for j in step.synthetic]


# -- the datamodule ------------------------------------------------------------------------------
class ProtocolSplitDataModule(pl.LightningDataModule):
    """anomalib batches of one category's protocol split (see the module docstring).

    ``samples_per_epoch`` (default: every synthetic sample once) sizes the balanced epoch, as the
    detectors' budget does; ``seed`` fixes the order. ``num_workers`` defaults to 0: items are
    array slices, and worker processes only cost memory and start-up on a small machine.
    """

    name = DATASET_NAME

    def __init__(self, normals: np.ndarray, *, synthetic: SyntheticSet | None = None, test: SplitTestSet | None = None,
                 image_size: int = 256, train_batch_size: int = 8, eval_batch_size: int = 16, seed: int = 0,
                 samples_per_epoch: int | None = None, num_workers: int = 0, category: str = "") -> None:
        super().__init__()
        self.normals = check_images(normals, "normals")
        self.synthetic, self.test = synthetic, test
        self.image_size, self.seed, self.num_workers, self.category = image_size, seed, num_workers, category
        self.train_batch_size, self.eval_batch_size = train_batch_size, eval_batch_size
        self.samples_per_epoch = samples_per_epoch

    @classmethod
    def from_context(cls, ctx: Any, synthetic: SyntheticSet | None = None, **kwargs: Any) -> ProtocolSplitDataModule:
        """From a loaded category (:class:`benchmark.context.CategoryContext`) at its protocol's resolution."""
        normals = np.stack([normal.image for normal in ctx.train.normals])
        t = ctx.test
        test = SplitTestSet(t.images, t.masks, t.labels, t.defect_types)
        kwargs.setdefault("image_size", ctx.protocol.image_size)
        return cls(normals, synthetic=synthetic, test=test, category=ctx.category, **kwargs)

    def plan(self) -> BalancedPlan:
        if self.synthetic is None:
            raise ValueError("a balanced plan needs a generated set: pass synthetic=")
        per_epoch = self.samples_per_epoch or 2 * len(self.synthetic)
        return BalancedPlan(len(self.normals), len(self.synthetic), self.train_batch_size, per_epoch, self.seed)

    def train_dataloader(self) -> DataLoader:
        if self.synthetic is None:
            dataset: _NormalSet | _SynthesisSet = _NormalSet(self.normals, self.image_size)
            generator = torch.Generator().manual_seed(self.seed)
            return DataLoader(dataset, batch_size=self.train_batch_size, shuffle=True, generator=generator,
                              num_workers=self.num_workers, collate_fn=dataset.collate)
        dataset = _SynthesisSet(self.normals, self.synthetic, self.image_size)
        return DataLoader(dataset, batch_sampler=BalancedBatchSampler(self.plan()), num_workers=self.num_workers,
                          collate_fn=dataset.collate)

    def _eval_loader(self) -> DataLoader:
        if self.test is None:
            raise ValueError("this datamodule has no test split: pass test= (or use from_context)")
        dataset = _TestSet(self.test, self.image_size)
        return DataLoader(dataset, batch_size=self.eval_batch_size, shuffle=False, num_workers=self.num_workers,
                          collate_fn=dataset.collate)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader()

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader()


# -- DRAEM on a generated set --------------------------------------------------------------------
class GeneratedSetAugmenter(nn.Module, pl.Callback):
    """Stands in for ``Draem.augmenter``: the batch's synthesized images and masks instead of Perlin noise.

    A module (``Draem`` registers its augmenter as a child module; this one has no parameters, so
    checkpoints are unchanged) and a callback: register it as a callback too
    (``Engine(callbacks=[augmenter])`` or the model's ``configure_callbacks``); it takes
    ``augmented_image`` and ``gt_mask`` from each :class:`SynthesisBatch` before ``training_step``
    calls it with ``batch.image``.
    """

    def __init__(self) -> None:
        nn.Module.__init__(self)
        self._batch: SynthesisBatch | None = None

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if not isinstance(batch, SynthesisBatch) or batch.augmented_image is None:
            raise TypeError("GeneratedSetAugmenter needs SynthesisBatch training batches: train on a "
                            "ProtocolSplitDataModule given a generated set (synthetic=)")
        self._batch = batch

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._batch = None

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self._batch
        if batch is None:
            raise RuntimeError("GeneratedSetAugmenter was called outside a training batch: register it as a callback")
        if images is not batch.image or batch.augmented_image.shape != images.shape:
            raise RuntimeError("GeneratedSetAugmenter was called with other images than the batch's clean images "
                               f"({tuple(images.shape)} vs {tuple(batch.augmented_image.shape)}); a pre-processor that "
                               "resizes would break the pairing: give the model pre_processor=False")
        masks = batch.gt_mask.to(images.dtype).unsqueeze(1)
        return batch.augmented_image.as_subclass(torch.Tensor), masks


class LossHistory(pl.Callback):
    """Mean training loss per epoch, as the detectors record it (``Detector.history``)."""

    def __init__(self) -> None:
        self.history: list[float] = []
        self._losses: list[float] = []

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._losses.append(float(outputs["loss"].item()))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.history.append(float(np.mean(self._losses)))
        self._losses = []


def accelerator_of(device: str) -> dict[str, Any]:
    """Lightning's ``accelerator`` / ``devices`` for a torch device string (``cpu``, ``cuda``, ``cuda:1``)."""
    kind, _, index = device.partition(":")
    if kind == "cpu":
        return {"accelerator": "cpu", "devices": 1}
    if kind == "cuda":
        return {"accelerator": "gpu", "devices": [int(index)] if index else 1}
    raise ValueError(f"unsupported device {device!r}: use cpu, cuda or cuda:N")


@contextmanager
def _quiet_lightning(quiet: bool) -> Iterator[None]:
    """Lightning's start-up lines (accelerator, tips, "fit stopped") only when a progress bar is wanted."""
    from lightning_utilities.core import rank_zero

    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric", "anomalib")]
    loggers.append(rank_zero.log)  # Lightning's rank-zero messages (it may carry a level of its own)
    levels = [log.level for log in loggers]
    if quiet:
        for log in loggers:
            log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for log, level in zip(loggers, levels, strict=True):
            log.setLevel(level)


def fit_with_engine(model: Any, datamodule: pl.LightningDataModule, *, max_epochs: int, device: str = "cpu",
                    callbacks: Sequence[pl.Callback] = (), progress: bool = False, root: Path | None = None) -> Any:
    """Train ``model`` (an ``AnomalibModule``) with ``anomalib.engine.Engine.fit`` for ``max_epochs``.

    Engine's workspace (logs, the last-epoch checkpoint) goes to ``root`` when given, else to a
    scratch folder deleted on return. Returns the Engine (its ``trainer`` ran the fit).
    """
    from anomalib.engine import Engine

    with tempfile.TemporaryDirectory(prefix="anomalib-engine-") as scratch:
        engine = Engine(default_root_dir=root or Path(scratch), max_epochs=max_epochs, callbacks=list(callbacks),
                        logger=False, enable_progress_bar=progress, enable_model_summary=False,
                        **accelerator_of(device))
        with warnings.catch_warnings(), _quiet_lightning(not progress):
            # single-process loading is deliberate (module docstring); Lightning suggests workers
            warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
            # the loss goes to LossHistory-style callbacks and the progress bar, not to a logger
            warnings.filterwarnings("ignore", message=r".*but have no logger configured.*")
            # no validation on purpose (nothing is selected on test data); every batch has the same size
            warnings.filterwarnings("ignore", message=r".*no `val_dataloader`. Skipping val loop.*")
            warnings.filterwarnings("ignore", message=r".*infer the `batch_size` from an ambiguous collection.*")
            engine.fit(model=model, datamodule=datamodule)
    return engine
