"""EfficientNet-Lite0 as the metrics' offline image network: class probabilities, embeddings, stage maps.

It is the only real pretrained image network available offline, so every substitute metric is
built on it (and named after it). The weights are loaded and hash-checked by
:mod:`synthesis.pretrained`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from synthesis.pretrained import EFFNET_LITE0_MEAN, EFFNET_LITE0_STD, efficientnet_lite0_stages, load_efficientnet_lite0

CLASSIFIER_SIZE = 224  # EfficientNet-Lite0's training resolution


@lru_cache(maxsize=2)
def model(device: str = "cpu") -> torch.nn.Module:
    return load_efficientnet_lite0(device)


def to_float01(images: Sequence[np.ndarray], device: str) -> torch.Tensor:
    """HxWx3 uint8 arrays -> Nx3xHxW float tensor in [0, 1]."""
    array = np.stack([np.asarray(image) for image in images])
    return torch.from_numpy(array).to(device).permute(0, 3, 1, 2).float().div_(255.0)


def normalise(x01: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(EFFNET_LITE0_MEAN, device=x01.device).view(1, 3, 1, 1)
    std = torch.tensor(EFFNET_LITE0_STD, device=x01.device).view(1, 3, 1, 1)
    return (x01 - mean) / std


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if tuple(x.shape[-2:]) == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def to_float01_resized(images: Sequence[np.ndarray], size: int, device: str) -> torch.Tensor:
    """Images of any sizes (e.g. crops) -> Nx3xSxS float tensor in [0, 1]."""
    return torch.cat([resize(to_float01([image], device), size) for image in images])


@torch.no_grad()
def class_logits(images: Sequence[np.ndarray], device: str, batch_size: int = 16) -> np.ndarray:
    """ImageNet logits (N x 1000) at 224 px."""
    net = model(device)
    out = [net(normalise(resize(to_float01(images[i:i + batch_size], device), CLASSIFIER_SIZE))).double().cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy()


@torch.no_grad()
def embeddings(images: Sequence[np.ndarray], device: str, batch_size: int = 16) -> np.ndarray:
    """L2-normalised global-average-pooled head features (N x 1280), each image resized to 224 px."""
    net = model(device)
    out = []
    for i in range(0, len(images), batch_size):
        features = net.extract_features(normalise(to_float01_resized(images[i:i + batch_size], CLASSIFIER_SIZE, device)))
        out.append(F.normalize(features.mean(dim=(2, 3)), dim=1).double().cpu())
    return torch.cat(out).numpy()


def stage_maps(x01: torch.Tensor) -> list[torch.Tensor]:
    """Feature maps at the end of the five resolution stages, at the input's own resolution."""
    return efficientnet_lite0_stages(model(str(x01.device)), normalise(x01))


@torch.no_grad()
def pooled_features(images: Sequence[np.ndarray], device: str, batch_size: int = 16) -> np.ndarray:
    """Global-average-pooled head features (N x 1280, not normalised), each image resized to 224 px.

    The analogue of Inception-v3's 2048-d pool features that KID and FID use.
    """
    net = model(device)
    out = []
    for i in range(0, len(images), batch_size):
        features = net.extract_features(normalise(to_float01_resized(images[i:i + batch_size], CLASSIFIER_SIZE, device)))
        out.append(features.mean(dim=(2, 3)).double().cpu())
    return torch.cat(out).numpy()
