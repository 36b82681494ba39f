"""``probe-effnetlite0``: a linear probe on frozen features, trained on the generated set; a low-noise downstream check.

Why it exists: the ``unet`` and ``draem`` detectors learn every weight from a few hundred
generated images in a fixed budget, and at the small budgets a CPU can afford their training is
chaotic: on the demo data the smoke U-Net's pixel AP moves by up to 0.16 when every pixel of the
generated set moves by one grey level (``scripts/measure_relay_gap.py``), so a small difference
between two generated sets (a lossy copy against the original, one synthesizer version against the
next) is lost in the detector's own noise. This detector learns only a logistic regression on
frozen ImageNet EfficientNet-Lite0 features (the PaDiM features, :mod:`benchmark.detectors.effnet_features`):
the problem is convex, so the fitted model is unique and moves smoothly with the images it is fit
on. It measures how well the generated set teaches a fixed feature space where defects are, which
is a narrower question than what a trained detector makes of it; it is a diagnostic beside the
protocol's detectors, not a published method, and no protocol pins it (its records say so).

Training data, one row per feature-map cell (stride 4 of ``image_size``): cells of normal
training images and cells of generated images outside their mask are negatives; cells of
generated images that the mask covers by at least ``anomalous_share``, and in every generated
image its most covered cell (so that a one-pixel crack still gives a positive), are positives;
other partly covered cells are left out. At most ``max_negatives`` negatives are kept, drawn with
the seed (the only thing the seed changes). Features are standardised, the regression is
L2-regularised (``c``) with balanced class weights and fitted by scikit-learn's lbfgs. The map
is the logit per cell, upsampled bilinearly and blurred as PaDiM's maps are; the image score is
its maximum.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from anomalib.models.image.padim.anomaly_map import AnomalyMapGenerator
from pydantic import Field
from torch.nn import functional as F  # noqa: N812
from tqdm.auto import tqdm

from benchmark.detectors.base import Detector, DetectorConfig, SyntheticSet, check_images
from benchmark.detectors.effnet_features import EFFNET_LITE0_SOURCE, EffNetLite0Features, map_sigma
from benchmark.detectors.tensors import batches, maps_to_numpy
from benchmark.results import WeightsRef
from synthesis.pretrained import EFFNET_LITE0_SHA256


class ProbeConfig(DetectorConfig):
    image_size: int = Field(256, description="Square resolution of the backbone input.")
    blocks: tuple[int, ...] = Field((2, 4, 10), description="EfficientNet-Lite0 blocks whose outputs are the features "
                                                            "(stage ends, finest first).")
    anomalous_share: float = Field(0.5, gt=0, le=1, description="Share of a feature cell the mask must cover for the "
                                                                "cell to be a positive (plus each image's most covered cell).")
    max_negatives: int = Field(200_000, ge=1, description="Negative cells kept, drawn with the seed.")
    c: float = Field(0.1, gt=0, description="Inverse L2 regularisation strength of the logistic regression.")
    max_iter: int = Field(1000, ge=1, description="lbfgs iteration limit (a fit that hits it is an error).")
    sigma: float | None = Field(None, gt=0, description="Gaussian blur of the upsampled map; None = 4 at 256 px "
                                                        "scaled to image_size, as PaDiM's.")
    batch_size: int = Field(16, ge=1, description="Feature-extraction batch size (no effect on results).")


def cell_labels(masks: np.ndarray, grid: tuple[int, int], anomalous_share: float) -> np.ndarray:
    """Per generated image and feature cell: 1 positive, 0 negative, -1 left out ([M, h, w] int8)."""
    share = F.adaptive_avg_pool2d(torch.from_numpy(np.ascontiguousarray(masks)).float().unsqueeze(1), grid)[:, 0].numpy()
    labels = np.where(share == 0, 0, np.where(share >= anomalous_share, 1, -1)).astype(np.int8)
    flat = share.reshape(len(share), -1)
    top = flat.argmax(1)
    has_mask = flat[np.arange(len(flat)), top] > 0
    labels.reshape(len(labels), -1)[np.flatnonzero(has_mask), top[has_mask]] = 1
    return labels


class LinearProbeDetector(Detector):
    name = "probe-effnetlite0"
    Config = ProbeConfig
    uses_synthesis = True
    summary = ("Linear probe: a logistic regression per feature cell on frozen ImageNet EfficientNet-Lite0 features "
               "(PaDiM's), trained on the generated set; convex, so it moves smoothly with the set (a low-noise check).")

    tiny_config = {"image_size": 32}

    def __init__(self, config: dict[str, Any] | ProbeConfig, seed: int, device: str = "cpu") -> None:
        super().__init__(config, seed, device)
        self.features = EffNetLite0Features(self.config.blocks, self.config.image_size, device)
        # PaDiM's map blur, built by anomalib (its kernel-size rule), applied to the probe's logits
        self.blur = AnomalyMapGenerator(sigma=map_sigma(self.config.image_size, self.config.sigma)).blur.to(device)
        self.mean = self.scale = self.coef = self.intercept = None

    def weights(self) -> list[WeightsRef]:
        return [WeightsRef(name="EfficientNet-Lite0 (ImageNet)", source=EFFNET_LITE0_SOURCE, sha256=EFFNET_LITE0_SHA256)]

    def _cells(self, images: np.ndarray, progress: bool, what: str) -> np.ndarray:
        """Features per cell, [N*h*w, C] float32, image-major."""
        rows = []
        with torch.inference_mode():
            for part in tqdm(batches(len(images), self.config.batch_size), desc=f"{what} {self.name}",
                             disable=not progress, leave=False):
                f = self.features(images[part])
                rows.append(f.permute(0, 2, 3, 1).reshape(-1, f.shape[1]).cpu().numpy())
        return np.concatenate(rows)

    # -- the contract ------------------------------------------------------------------------
    def fit(self, normals: np.ndarray, synthetic: SyntheticSet | None = None, progress: bool = True) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        check_images(normals, "normals")
        synthetic = self._require_synthetic(synthetic)
        x = np.concatenate([self._cells(normals, progress, "normals"), self._cells(synthetic.anomalous, progress, "set")])
        grid = (self.config.image_size // 4,) * 2
        labels = np.concatenate([np.zeros(len(normals) * grid[0] * grid[1], np.int8),
                                 cell_labels(synthetic.masks, grid, self.config.anomalous_share).reshape(-1)])
        if len(labels) != len(x):
            raise RuntimeError(f"{len(x)} feature cells but {len(labels)} labels: the feature grid is not image_size / 4")
        negatives, positives = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
        if len(negatives) > self.config.max_negatives:
            rng = np.random.default_rng(self.seed)
            negatives = np.sort(rng.choice(negatives, self.config.max_negatives, replace=False))
        keep = np.sort(np.concatenate([negatives, positives]))
        scaler = StandardScaler().fit(x[keep])
        model = LogisticRegression(C=self.config.c, class_weight="balanced", max_iter=self.config.max_iter)
        model.fit(scaler.transform(x[keep]), labels[keep])
        if int(model.n_iter_[0]) >= self.config.max_iter:
            raise RuntimeError(f"{self.name}: lbfgs did not converge in {self.config.max_iter} iterations")
        self.mean, self.scale = torch.from_numpy(scaler.mean_), torch.from_numpy(scaler.scale_)
        self.coef, self.intercept = torch.from_numpy(model.coef_[0]), torch.tensor(float(model.intercept_[0]))
        self.history = []
        self.fitted = True

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._require_fitted()
        check_images(images)
        height, width = images.shape[1:3]
        weight = (self.coef / self.scale).to(self.device, torch.float32)
        bias = float(self.intercept - (self.mean / self.scale * self.coef).sum())
        scores, maps = [], []
        with torch.inference_mode():
            for part in batches(len(images), self.config.batch_size):
                f = self.features(images[part])
                logits = torch.einsum("bchw,c->bhw", f, weight).add_(bias).unsqueeze(1)
                logits = F.interpolate(logits, size=(self.config.image_size,) * 2, mode="bilinear", align_corners=False)
                anomaly_map = self.blur(logits)
                scores.append(torch.amax(anomaly_map, dim=(-3, -2, -1)).float().cpu().numpy())
                maps.append(maps_to_numpy(anomaly_map, height, width))
        return np.concatenate(scores), np.concatenate(maps)

    # -- caching -----------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {"mean": self.mean, "scale": self.scale, "coef": self.coef, "intercept": self.intercept}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.mean, self.scale = state["mean"].cpu(), state["scale"].cpu()
        self.coef, self.intercept = state["coef"].cpu(), state["intercept"].cpu()
