"""Shared training and inference for detectors trained on synthesized anomalies (U-Net, DRAEM).

A fixed budget (``epochs`` x ``samples_per_epoch``), Adam with DRAEM's step schedule (the
learning rate drops by ``lr_gamma`` at 80 % and 90 % of training), and the last step is the
model that is evaluated: there is no validation, so nothing is selected on test data.
Subclasses provide the network, the loss of one batch and the anomaly map.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np
import torch
from pydantic import Field
from torch import nn
from tqdm.auto import tqdm

from benchmark.detectors.base import Detector, DetectorConfig, SyntheticSet, check_images
from benchmark.detectors.sampling import BalancedPlan, Step
from benchmark.detectors.scoring import default_pool, pooled_max
from benchmark.detectors.tensors import batches, images_to_tensor, maps_to_numpy, masks_to_tensor


class SegmentationConfig(DetectorConfig):
    image_size: int = Field(256, description="Square training and inference resolution.")
    epochs: int = Field(200, ge=1, description="Fixed number of epochs; the last one is evaluated.")
    samples_per_epoch: int = Field(500, ge=1, description="Samples per epoch, rounded to whole batches.")
    batch_size: int = Field(8, ge=2, description="Half normal images, half synthetic samples.")
    lr: float = Field(1e-4, gt=0, description="Adam learning rate.")
    lr_milestones: tuple[float, ...] = Field((0.8, 0.9), description="Fractions of all steps where the lr drops (DRAEM).")
    lr_gamma: float = Field(0.2, gt=0, description="Factor of each lr drop (DRAEM).")
    score_pool: int | None = Field(None, ge=1, description="Mean-filter window for the image score; None = "
                                                           "DRAEM's 21 px at 256 scaled to image_size.")
    eval_batch_size: int = Field(16, ge=1, description="Batch size of predict (no effect on results).")


class SegmentationDetector(Detector):
    """Trains ``self.model`` (built in ``__init__`` under the seed) on balanced batches."""

    Config = SegmentationConfig
    uses_synthesis = True

    def __init__(self, config: dict[str, Any] | SegmentationConfig, seed: int, device: str = "cpu") -> None:
        super().__init__(config, seed, device)
        self.model = self._seeded_model()

    # -- subclass hooks ----------------------------------------------------------------------
    @abstractmethod
    def _build_model(self) -> nn.Module:
        """The untrained network (called under ``torch.manual_seed(seed)``)."""

    @abstractmethod
    def _loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Loss of one batch: ``input`` images, clean ``target`` images, ``mask`` [B,1,H,W]."""

    @abstractmethod
    def _anomaly_map(self, images: torch.Tensor) -> torch.Tensor:
        """Softmax anomaly channel [B,1,H,W] of images [B,3,H,W] in [0, 1] (model in eval mode)."""

    # -- training ----------------------------------------------------------------------------
    def _seeded_model(self) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = self._build_model()
        return model.to(self.device)

    @property
    def pool(self) -> int:
        return self.config.score_pool or default_pool(self.config.image_size)

    def plan(self, n_normal: int, n_synthetic: int) -> BalancedPlan:
        c = self.config
        return BalancedPlan(n_normal, n_synthetic, c.batch_size, c.samples_per_epoch, self.seed)

    def milestones(self, total_steps: int) -> list[int]:
        """The steps after which the lr drops by ``lr_gamma`` (``lr_milestones`` are fractions of all steps)."""
        return sorted({max(1, int(f * total_steps)) for f in self.config.lr_milestones})

    def make_batch(self, normals: np.ndarray, synthetic: SyntheticSet, step: Step) -> dict[str, torch.Tensor]:
        """Normal images (target = input, empty mask) followed by synthetic samples (target = clean source)."""
        size, device = self.config.image_size, self.device
        normal = images_to_tensor(normals[step.normal], size, device)
        anomalous = images_to_tensor(synthetic.anomalous[step.synthetic], size, device)
        clean = images_to_tensor(synthetic.clean[step.synthetic], size, device)
        mask = masks_to_tensor(synthetic.masks[step.synthetic], size, device)
        empty = torch.zeros((len(normal), 1, size, size), device=device)
        return {"input": torch.cat([normal, anomalous]), "target": torch.cat([normal, clean]),
                "mask": torch.cat([empty, mask])}

    def fit(self, normals: np.ndarray, synthetic: SyntheticSet | None, progress: bool = True) -> None:
        synthetic = self._require_synthetic(synthetic)
        check_images(normals, "normals")
        if self.fitted:  # a second fit starts from the seeded initialisation again
            self.model = self._seeded_model()
        c = self.config
        plan = self.plan(len(normals), len(synthetic))
        total = c.epochs * plan.steps_per_epoch
        optimizer = torch.optim.Adam(self.model.parameters(), lr=c.lr)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=self.milestones(total), gamma=c.lr_gamma)
        self.history = []
        self.model.train()
        with tqdm(total=total, desc=f"fit {self.name}", disable=not progress, leave=False) as bar:
            for epoch in range(c.epochs):
                losses = []
                for step in plan.epoch(epoch):
                    loss = self._loss(self.make_batch(normals, synthetic, step))
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    scheduler.step()
                    losses.append(loss.item())
                    bar.update(1)
                    bar.set_postfix(epoch=epoch + 1, loss=f"{losses[-1]:.4f}", refresh=False)
                self.history.append(float(np.mean(losses)))
        self.model.eval()
        self.fitted = True

    # -- inference ---------------------------------------------------------------------------
    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._require_fitted()
        check_images(images)
        height, width = images.shape[1:3]
        self.model.eval()
        scores, maps = [], []
        with torch.inference_mode():
            for part in batches(len(images), self.config.eval_batch_size):
                anomaly_map = self._anomaly_map(images_to_tensor(images[part], self.config.image_size, self.device))
                scores.append(pooled_max(anomaly_map, self.pool).float().cpu().numpy())
                maps.append(maps_to_numpy(anomaly_map, height, width))
        return np.concatenate(scores), np.concatenate(maps)

    # -- caching -----------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict()}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.model.eval()
