"""``draem``: anomalib's DRAEM (reconstructive + discriminative) trained on our synthetic set.

anomalib's Lightning ``Draem`` makes its own anomalies with a Perlin augmenter; here a plain
torch loop trains anomalib's ``DraemModel`` on the synthesizer's generated set instead: the
input is the anomalous image, the reconstruction target its clean normal source, the
segmentation target its mask, and the loss is anomalib's ``DraemLoss`` (L2 + SSIM + focal; the focal term weights
both classes, see :mod:`benchmark.detectors.losses`).
Half of every batch are untouched normal images, as in DRAEM. The sub-network widths are
configurable (anomalib's defaults 128 / 64 are the paper's; a slim variant fits a CPU budget).
"""

from __future__ import annotations

import torch
from anomalib.models.image.draem.torch_model import DiscriminativeSubNetwork, DraemModel, ReconstructiveSubNetwork
from pydantic import Field
from torch import nn

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


class DraemDetector(SegmentationDetector):
    name = "draem"
    Config = DraemConfig
    summary = ("anomalib's DRAEM (reconstructive + discriminative), its Perlin augmenter replaced by the "
               "synthesizer's set (reconstruction target = clean source); fixed budget, last epoch evaluated.")

    tiny_config = {"image_size": 32, "epochs": 2, "samples_per_epoch": 16, "batch_size": 4, "lr": 1e-3,
                   "reconstructive_width": 8, "discriminative_width": 8}

    def __init__(self, config: dict | DraemConfig, seed: int, device: str = "cpu") -> None:
        super().__init__(config, seed, device)
        self.loss = draem_loss().to(device)

    def _build_model(self) -> nn.Module:
        return SizedDraemModel(self.config.reconstructive_width, self.config.discriminative_width)

    def _loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        reconstruction, prediction = self.model(batch["input"])
        return self.loss(batch["target"], reconstruction, batch["mask"], prediction)

    def _anomaly_map(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images).anomaly_map.unsqueeze(1)  # eval mode: softmax anomaly channel [B,H,W]
