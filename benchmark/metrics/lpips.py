"""LPIPS (VGG16 / AlexNet, v0.1) built offline from local weights, as a batched distance.

torchmetrics ships LPIPS's linear heads but fetches the torchvision backbone from the internet;
here its network is built with a random backbone (``pnet_rand=True``, no download) and the
torchvision ImageNet state dict is then loaded from the resolved local file, every backbone
parameter accounted for. Heads are loaded from the hash-checked torchmetrics file.

Distances are computed from per-image features, so each image passes through the backbone once
per call instead of once per pair:

    d(x, y) = sum_l mean_hw sum_c w_lc (f_l(x) - f_l(y))^2,  f_l unit-normalised over channels,

which is LPIPS's forward pass (inputs in [0, 1] mapped to [-1, 1], no resizing, spatially
averaged). :class:`LayeredDistance` also serves the EfficientNet-Lite0 substitute (unit weights).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Literal

import numpy as np
import torch

from benchmark.metrics.effnet import to_float01

Backbone = Literal["vgg", "alex"]
BACKBONE_WEIGHTS: dict[str, str] = {"vgg": "vgg16-imagenet", "alex": "alexnet-imagenet"}
HEAD_WEIGHTS: dict[str, str] = {"vgg": "lpips-vgg-heads-v0.1", "alex": "lpips-alex-heads-v0.1"}
EPS = 1e-8  # as in LPIPS's channel normalisation


def _load_backbone(lpips_net: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy torchvision ``features.<i>.*`` tensors into LPIPS's ``slice<k>.<i>.*`` modules."""
    slice_of = {child: name for name, part in lpips_net.named_children() for child, _ in part.named_children()}
    mapped = {}
    for key, tensor in state.items():
        if not key.startswith("features."):
            continue  # the classifier is not part of LPIPS
        index, param = key[len("features."):].split(".", 1)
        if index not in slice_of:
            raise ValueError(f"backbone weight {key} has no place in the LPIPS network")
        mapped[f"{slice_of[index]}.{index}.{param}"] = tensor
    lpips_net.load_state_dict(mapped, strict=True)  # every backbone parameter must come from the file


@lru_cache(maxsize=4)
def build_lpips(net: Backbone, backbone_path: str, heads_path: str, device: str = "cpu") -> torch.nn.Module:
    """torchmetrics' LPIPS module with the backbone and heads loaded from local files, in eval mode."""
    from torchmetrics.functional.image.lpips import _LPIPS

    model = _LPIPS(pretrained=False, net=net, pnet_rand=True)
    _load_backbone(model.net, torch.load(backbone_path, map_location="cpu", weights_only=True))
    heads = torch.load(heads_path, map_location="cpu", weights_only=True)
    missing, unexpected = model.load_state_dict(heads, strict=False)
    if unexpected or any(re.match(r"lin\d", key) for key in missing):  # ``lins.*`` are aliases of ``lin<k>``
        raise ValueError(f"{heads_path} is not an LPIPS {net} head file (missing {missing}, unexpected {unexpected})")
    return model.eval().requires_grad_(False).to(device)


def _normalise_channels(x: torch.Tensor) -> torch.Tensor:
    return x / torch.sqrt(EPS + (x * x).sum(dim=1, keepdim=True))


class LayeredDistance:
    """Batched LPIPS-form distance from any multi-layer feature function and channel weights."""

    def __init__(self, layers: Callable[[torch.Tensor], Sequence[torch.Tensor]], channel_weights: Sequence[torch.Tensor],
                 device: str = "cpu", batch_size: int = 16, pair_chunk_bytes: int = 256 << 20) -> None:
        self.layers = layers
        self.weights = [w.detach().reshape(1, -1, 1, 1).float().to(device) for w in channel_weights]
        self.device = device
        self.batch_size = batch_size
        self.pair_chunk_bytes = pair_chunk_bytes

    @torch.no_grad()
    def features(self, images: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """Per layer: N x C x H x W unit-normalised feature maps."""
        parts: list[list[torch.Tensor]] = [[] for _ in self.weights]
        for i in range(0, len(images), self.batch_size):
            maps = self.layers(to_float01(images[i:i + self.batch_size], self.device))
            for layer, fmap in enumerate(maps):
                parts[layer].append(_normalise_channels(fmap.float()))
        return [torch.cat(p) for p in parts]

    @torch.no_grad()
    def between(self, a: Sequence[torch.Tensor], b: Sequence[torch.Tensor], symmetric: bool = False) -> np.ndarray:
        """len(a) x len(b) distances between two feature sets (from :meth:`features`).

        ``symmetric`` (a is b): only pairs j > i are computed and mirrored; the diagonal is 0.
        """
        out = torch.zeros(len(a[0]), len(b[0]), dtype=torch.float64, device=self.device)
        for fa, fb, w in zip(a, b, self.weights):
            chunk = max(1, self.pair_chunk_bytes // max(1, fb[0].numel() * 4))
            for i in range(len(fa)):
                for j in range(i + 1 if symmetric else 0, len(fb), chunk):
                    diff = (fa[i:i + 1] - fb[j:j + chunk]) ** 2
                    out[i, j:j + chunk] += (diff * w).sum(dim=1).mean(dim=(1, 2)).double()
        if symmetric:
            out = out + out.T
        return out.cpu().numpy()

    def __call__(self, xs: Sequence[np.ndarray], ys: Sequence[np.ndarray]) -> np.ndarray:
        """Distances between image lists; ``xs`` is streamed in batches unless it is ``ys`` itself."""
        if ys is xs:
            features = self.features(xs)
            return self.between(features, features, symmetric=True)
        fy = self.features(ys)
        rows = [self.between(self.features(xs[i:i + self.batch_size]), fy) for i in range(0, len(xs), self.batch_size)]
        return np.concatenate(rows) if rows else np.zeros((0, len(ys)))


def lpips_distance(net: Backbone, backbone_path: str, heads_path: str, device: str = "cpu",
                   batch_size: int = 16) -> LayeredDistance:
    """LPIPS v0.1 as a :class:`LayeredDistance` on uint8 HxWx3 images."""
    model = build_lpips(net, backbone_path, heads_path, device)

    def layers(x01: torch.Tensor) -> Sequence[torch.Tensor]:
        return model.net(model.scaling_layer(2 * x01 - 1))

    return LayeredDistance(layers, [lin.model[-1].weight for lin in model.lins], device, batch_size)
