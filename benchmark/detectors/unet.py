"""``unet``: the literature's downstream detector, a DRAEM-style discriminative U-Net.

The network is anomalib's DRAEM discriminative sub-network with the image alone as input
(``in_channels=3``, no reconstruction) and two output channels; it learns to segment the
synthesized defects from balanced batches of normal images and synthetic anomalies with
DRAEM's focal loss. This is how DFMGAN / AnomalyDiffusion / AnomalyXFusion score generated
sets downstream.
"""

from __future__ import annotations

import torch
from anomalib.models.image.draem.torch_model import DiscriminativeSubNetwork
from pydantic import Field
from torch import nn

from benchmark.detectors.losses import focal_loss
from benchmark.detectors.segmentation import SegmentationConfig, SegmentationDetector


class UNetConfig(SegmentationConfig):
    base_width: int = Field(64, ge=1, description="Width of the first encoder block (anomalib/DRAEM default 64).")


class UNetDetector(SegmentationDetector):
    name = "unet"
    Config = UNetConfig
    summary = ("DRAEM's discriminative U-Net on the image alone, trained with focal loss on half normal, half "
               "synthesized samples for a fixed budget; map = softmax anomaly channel, score = max of the "
               "mean-filtered map.")

    tiny_config = {"image_size": 32, "base_width": 8, "epochs": 2, "samples_per_epoch": 16, "batch_size": 4, "lr": 1e-3}

    def __init__(self, config: dict | UNetConfig, seed: int, device: str = "cpu") -> None:
        super().__init__(config, seed, device)
        self.focal_loss = focal_loss()  # DRAEM's focal loss (see losses.py for why alpha=None)

    def _build_model(self) -> nn.Module:
        return DiscriminativeSubNetwork(in_channels=3, out_channels=2, base_width=self.config.base_width)

    def _loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self.model(batch["input"])
        return self.focal_loss(logits, batch["mask"].squeeze(1).long())

    def _anomaly_map(self, images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(images), dim=1)[:, 1:2]
