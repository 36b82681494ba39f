"""``padim-effnetlite0``: the reference row, PaDiM on the offline EfficientNet-Lite0.

No synthesis: PaDiM fits a Gaussian per feature-map position to the normal images' features
and scores a test patch by its Mahalanobis distance. anomalib's PaDiM builds its backbone
through timm (which fetches weights offline runs cannot have), so this composes anomalib's
PaDiM parts, ``MultiVariateGaussian`` and PaDiM's ``AnomalyMapGenerator`` (distance, upsampling,
Gaussian blur), with the verified ImageNet EfficientNet-Lite0 from :mod:`synthesis.pretrained`.

Features: the ends of the stride-4, -8 and -16 stages (blocks 2, 4, 10: 24 + 40 + 112 = 176
channels), the analogue of ResNet-18's layer1-3 in the PaDiM paper; coarser maps are upsampled
to the stride-4 grid and a seeded random subset of ``n_features`` channels is kept (100, as
the paper does for ResNet-18).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from anomalib.models.components import MultiVariateGaussian
from anomalib.models.image.padim.anomaly_map import AnomalyMapGenerator
from pydantic import Field
from tqdm.auto import tqdm

from benchmark.detectors.base import Detector, DetectorConfig, SyntheticSet, check_images
from benchmark.detectors.effnet_features import EFFNET_LITE0_SOURCE, EffNetLite0Features, map_sigma
from benchmark.detectors.tensors import batches, maps_to_numpy
from benchmark.results import WeightsRef
from synthesis.pretrained import EFFNET_LITE0_SHA256


class PadimConfig(DetectorConfig):
    image_size: int = Field(256, description="Square resolution of the backbone input.")
    blocks: tuple[int, ...] = Field((2, 4, 10), description="EfficientNet-Lite0 blocks whose outputs are the features "
                                                            "(stage ends, finest first).")
    n_features: int = Field(100, ge=1, description="Random channel subset kept (PaDiM's dimensionality reduction).")
    sigma: float | None = Field(None, gt=0, description="Gaussian blur of the upsampled map; None = anomalib's 4 at "
                                                        "256 px scaled to image_size.")
    batch_size: int = Field(16, ge=1, description="Feature-extraction batch size (no effect on results).")


class PadimDetector(Detector):
    name = "padim-effnetlite0"
    Config = PadimConfig
    uses_synthesis = False
    summary = ("Reference without synthesis: PaDiM (per-position Gaussian, Mahalanobis distance) on ImageNet "
               "EfficientNet-Lite0 features of the stride 4/8/16 stages, 100 random channels.")

    tiny_config = {"image_size": 32}

    def __init__(self, config: dict[str, Any] | PadimConfig, seed: int, device: str = "cpu") -> None:
        super().__init__(config, seed, device)
        c = self.config
        self.features = EffNetLite0Features(c.blocks, c.image_size, device)
        n_original = self.features.n_channels
        if c.n_features > n_original:
            raise ValueError(f"n_features {c.n_features} > {n_original} channels of blocks {c.blocks}")
        generator = torch.Generator().manual_seed(self.seed)
        self.idx = torch.randperm(n_original, generator=generator)[: c.n_features].to(device)
        self.gaussian = MultiVariateGaussian().to(device)
        self.map_generator = AnomalyMapGenerator(sigma=map_sigma(c.image_size, c.sigma)).to(device)

    def weights(self) -> list[WeightsRef]:
        return [WeightsRef(name="EfficientNet-Lite0 (ImageNet)", source=EFFNET_LITE0_SOURCE, sha256=EFFNET_LITE0_SHA256)]

    # -- features ----------------------------------------------------------------------------
    def _embed(self, images: np.ndarray) -> torch.Tensor:
        """PaDiM embedding [B,n_features,h,w]: concatenated stage features on the finest grid, channel subset."""
        return torch.index_select(self.features(images), 1, self.idx)

    # -- the contract ------------------------------------------------------------------------
    def fit(self, normals: np.ndarray, synthetic: SyntheticSet | None = None, progress: bool = True) -> None:
        """Fit the per-position Gaussians on the normal images; a synthetic set is ignored (none is used)."""
        check_images(normals, "normals")
        parts = batches(len(normals), self.config.batch_size)
        with torch.inference_mode():
            embeddings = [self._embed(normals[p]) for p in tqdm(parts, desc=f"fit {self.name}", disable=not progress,
                                                                   leave=False)]
        with torch.no_grad():
            self.gaussian.fit(torch.cat(embeddings).clone())
        self.fitted = True

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._require_fitted()
        check_images(images)
        height, width = images.shape[1:3]
        scores, maps = [], []
        with torch.inference_mode():
            for part in batches(len(images), self.config.batch_size):
                anomaly_map = self.map_generator(embedding=self._embed(images[part]), mean=self.gaussian.mean,
                                                 inv_covariance=self.gaussian.inv_covariance,
                                                 image_size=(self.config.image_size,) * 2)
                scores.append(torch.amax(anomaly_map, dim=(-3, -2, -1)).float().cpu().numpy())
                maps.append(maps_to_numpy(anomaly_map, height, width))
        return np.concatenate(scores), np.concatenate(maps)

    # -- caching -----------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {"idx": self.idx, "mean": self.gaussian.mean, "inv_covariance": self.gaussian.inv_covariance}

    def _load_state(self, state: dict[str, Any]) -> None:
        if not torch.equal(state["idx"].cpu(), self.idx.cpu()):
            raise ValueError("saved channel subset differs from this seed's")
        self.gaussian.mean = state["mean"].to(self.device)
        self.gaussian.inv_covariance = state["inv_covariance"].to(self.device)
