"""``draem``: anomalib's DRAEM (reconstructive + discriminative) trained on our synthetic set by anomalib's ``Engine``.

anomalib's Lightning ``Draem`` makes its own anomalies with a Perlin augmenter; here its
``augmenter`` is replaced by :class:`benchmark.anomalib_bridge.GeneratedSetAugmenter` and
``Engine.fit`` trains it on :class:`benchmark.anomalib_bridge.ProtocolSplitDataModule`: the
input is the anomalous image, the reconstruction target its clean normal source, the
segmentation target its mask, and the loss is anomalib's ``DraemLoss`` (L2 + SSIM + focal; the
focal term weights both classes, see :mod:`benchmark.detectors.losses`). Half of every batch are
untouched normal images, as in DRAEM. The sub-network widths are configurable (anomalib's
defaults 128 / 64 are the paper's; a slim variant fits a CPU budget).

The budget, batches, optimiser and schedule are those of :class:`SegmentationDetector` (the
plain loop the ``unet`` detector uses), step for step: on the CPU the Engine-trained network is
bit-identical to that loop's (``tests/test_anomalib_bridge.py``), so the detector's version and
recorded numbers are unchanged by the switch to ``Engine``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from anomalib.models import Draem
from anomalib.models.components import AnomalibModule
from anomalib.models.image.draem.torch_model import DiscriminativeSubNetwork, DraemModel, ReconstructiveSubNetwork
from lightning.pytorch import Callback
from pydantic import Field
from torch import nn

from benchmark.detectors.base import SyntheticSet, check_images
from benchmark.detectors.losses import draem_loss
from benchmark.detectors.segmentation import SegmentationConfig, SegmentationDetector


class DraemConfig(SegmentationConfig):
    reconstructive_width: int = Field(128, ge=1, description="Base width of the reconstructive sub-network (paper: 128).")
    discriminative_width: int = Field(64, ge=1, description="Base width of the discriminative sub-network (paper: 64).")


class SizedDraemModel(DraemModel):
    """anomalib's ``DraemModel`` (same forward) with the sub-network widths as arguments.

    ``DraemModel.__init__`` hard-codes the widths; building its full-size sub-networks only to
    replace them would cost ~97 M parameters of initialisation, so the sub-networks are set here.
    """

    def __init__(self, reconstructive_width: int, discriminative_width: int) -> None:
        nn.Module.__init__(self)
        self.reconstructive_subnetwork = ReconstructiveSubNetwork(base_width=reconstructive_width)
        self.discriminative_subnetwork = DiscriminativeSubNetwork(
            in_channels=6, out_channels=2, base_width=discriminative_width)


class GeneratedSetDraem(Draem):
    """anomalib's Lightning ``Draem`` (its ``training_step`` unchanged) on a generated set, with our budget.

    What differs from ``Draem``: the network is given (sized, seeded by the caller), the augmenter
    is :class:`~benchmark.anomalib_bridge.GeneratedSetAugmenter` (registered as a callback here),
    the focal loss weights both classes, and the optimiser is Adam at ``lr`` with the lr dropping
    by ``gamma`` after the given *steps* (Draem's own: 1e-4, drops after epochs 400 and 600). No
    pre-/post-processor, evaluator or visualizer: the datamodule delivers images at the model's
    size, and the detector scores the test split itself. ``Draem.__init__`` is not called: it
    would build (and drop) the 97 M-parameter paper network and download DTD.
    """

    def __init__(self, model: DraemModel, lr: float, milestones: Sequence[int], gamma: float,
                 loss: nn.Module | None = None) -> None:
        from benchmark.anomalib_bridge import GeneratedSetAugmenter

        AnomalibModule.__init__(self, pre_processor=False, post_processor=False, evaluator=False, visualizer=False)
        self.model = model
        self.loss = loss if loss is not None else draem_loss()
        self.augmenter = GeneratedSetAugmenter()
        self.sspcab = False
        self.lr, self.milestones, self.gamma = lr, list(milestones), gamma

    def configure_callbacks(self) -> list[Callback]:
        return [*super().configure_callbacks(), self.augmenter]

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.Adam(self.model.parameters(), lr=self.lr)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=self.milestones, gamma=self.gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class DraemDetector(SegmentationDetector):
    name = "draem"
    Config = DraemConfig
    summary = ("anomalib's DRAEM (reconstructive + discriminative) trained by anomalib's Engine, its Perlin augmenter "
               "replaced by the synthesizer's set (reconstruction target = clean source); fixed budget, last epoch "
               "evaluated.")

    tiny_config = {"image_size": 32, "epochs": 2, "samples_per_epoch": 16, "batch_size": 4, "lr": 1e-3,
                   "reconstructive_width": 8, "discriminative_width": 8}

    def __init__(self, config: dict | DraemConfig, seed: int, device: str = "cpu") -> None:
        super().__init__(config, seed, device)
        self.loss = draem_loss().to(device)

    def fit(self, normals: np.ndarray, synthetic: SyntheticSet | None, progress: bool = True) -> None:
        """Train with ``anomalib.engine.Engine.fit`` on the protocol split's datamodule.

        Same batches, optimiser and schedule as :meth:`SegmentationDetector.fit` (the plain loop).
        """
        from benchmark.anomalib_bridge import LossHistory, ProtocolSplitDataModule, fit_with_engine

        synthetic = self._require_synthetic(synthetic)
        check_images(normals, "normals")
        if self.fitted:  # a second fit starts from the seeded initialisation again
            self.model = self._seeded_model()
        c = self.config
        data = ProtocolSplitDataModule(normals, synthetic=synthetic, image_size=c.image_size,
                                       train_batch_size=c.batch_size, seed=self.seed,
                                       samples_per_epoch=c.samples_per_epoch)
        total = c.epochs * data.plan().steps_per_epoch
        module = GeneratedSetDraem(self.model, lr=c.lr, milestones=self.milestones(total), gamma=c.lr_gamma,
                                   loss=self.loss)
        history = LossHistory()
        fit_with_engine(module, data, max_epochs=c.epochs, device=self.device, callbacks=[history], progress=progress)
        self.model.to(self.device).eval()  # Lightning's teardown moves a GPU-trained module back to the CPU
        self.history = history.history
        self.fitted = True

    def _build_model(self) -> nn.Module:
        return SizedDraemModel(self.config.reconstructive_width, self.config.discriminative_width)

    def _loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        reconstruction, prediction = self.model(batch["input"])
        return self.loss(batch["target"], reconstruction, batch["mask"], prediction)

    def _anomaly_map(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images).anomaly_map.unsqueeze(1)  # eval mode: softmax anomaly channel [B,H,W]
