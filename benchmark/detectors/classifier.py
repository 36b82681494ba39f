"""``classifier``: defect-type classification trained on generated anomalies only (AXF paper, Table 3).

The classifier learns the defect types from a synthesizer's generated set (its labels are the
types the samples were generated for) and is tested on the test split's real anomalies. High
accuracy means the synthesizer produces defects of the *asked* type, which detection scores
cannot show. It uses neither the normal images nor any real anomaly for training.

Backbones (a registry; tests register tiny random ones):

* ``resnet34``: torchvision's ResNet-34 with the ImageNet weights from the weights resolver
  (``resnet34-imagenet``, torchvision's URL, sha256-prefix pinned), fine-tuned end to end: the
  paper's setting (``GPU_BUDGET``, in :mod:`benchmark.detectors.budgets`). Only with verified weights is the result the standard one.
* ``efficientnet-lite0``: the offline EfficientNet-Lite0 (packaged, sha256-pinned) as a frozen
  feature extractor with a linear head (``CPU_BUDGET``): a named substitute, never compared with
  the paper's numbers.

Training is a fixed budget (epochs over the generated set, Adam, cross-entropy, no augmentation,
the last epoch is evaluated; nothing is selected on test). With a frozen backbone the features
are computed once, standardised with the training set's mean and deviation, and only the head is
trained. Deterministic on the CPU for a given seed.

``predict`` (anomaly scores and maps) is not what this detector produces: the harness calls
:meth:`DefectTypeClassifier.predict_types` and :func:`benchmark.classification.evaluate_classifier`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import Field
from torch import nn
from tqdm.auto import tqdm

from benchmark.detectors.base import Detector, DetectorConfig, SyntheticSet, check_images
from benchmark.detectors.budgets import CPU_BUDGET, GPU_BUDGET  # noqa: F401 (GPU_BUDGET: re-exported)
from benchmark.detectors.tensors import batches, images_to_tensor
from benchmark.results import WeightsRef

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BuiltBackbone:
    """A feature extractor images [B,3,S,S] in [0, 1] -> [B,D], and where its weights came from."""

    net: nn.Module
    dim: int
    weights: list[WeightsRef]
    standard: bool  # the paper's backbone with verified reference weights


@dataclass(frozen=True)
class Backbone:
    name: str
    short: str  # for metric ids: "resnet34", "effnetlite0"
    build: Callable[[Any], BuiltBackbone]  # (WeightsResolver) -> BuiltBackbone; may raise WeightsUnavailable
    description: str
    paper: bool = False  # the AXF paper's backbone (fine-tuned with verified weights: the standard result)


BACKBONES: dict[str, Backbone] = {}


def register_backbone(backbone: Backbone) -> Backbone:
    BACKBONES[backbone.name] = backbone
    return backbone


class _Normalised(nn.Module):
    """ImageNet normalisation in front of a feature network that ends in pooled features."""

    def __init__(self, net: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def _resnet34(resolver: Any) -> BuiltBackbone:
    from torchvision.models import resnet34

    resolved = resolver.resolve("resnet34-imagenet")
    net = resnet34(weights=None)
    net.load_state_dict(torch.load(resolved.path, map_location="cpu", weights_only=True), strict=True)
    net.fc = nn.Identity()
    return BuiltBackbone(_Normalised(net, IMAGENET_MEAN, IMAGENET_STD), 512, [resolved.ref()], resolved.verified)


class _EffnetPooled(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x).mean(dim=(2, 3))


def _effnet(resolver: Any) -> BuiltBackbone:
    from synthesis.pretrained import EFFNET_LITE0_MEAN, EFFNET_LITE0_STD, load_efficientnet_lite0

    resolved = resolver.resolve("efficientnet-lite0-imagenet")
    net = load_efficientnet_lite0("cpu").requires_grad_(True)  # a fresh copy: fine-tuning must not touch shared ones
    return BuiltBackbone(_Normalised(_EffnetPooled(net), EFFNET_LITE0_MEAN, EFFNET_LITE0_STD), 1280, [resolved.ref()],
                         False)


register_backbone(Backbone("resnet34", "resnet34", _resnet34,
                           "torchvision ResNet-34, ImageNet weights (IMAGENET1K_V1) from the weights resolver", paper=True))
register_backbone(Backbone("efficientnet-lite0", "effnetlite0", _effnet,
                           "EfficientNet-Lite0 ImageNet (packaged, offline), pooled head features"))


class ClassifierConfig(DetectorConfig):
    backbone: str = Field(CPU_BUDGET["backbone"], description="Registered backbone (resnet34: the paper's; "
                                                              "efficientnet-lite0: the offline substitute).")
    train_backbone: bool = Field(CPU_BUDGET["train_backbone"], description="Fine-tune the backbone (True) or train a "
                                                                           "linear head on frozen features (False).")
    image_size: int = Field(CPU_BUDGET["image_size"], description="Square input resolution of the backbone.")
    epochs: int = Field(CPU_BUDGET["epochs"], ge=1, description="Fixed number of epochs; the last is evaluated.")
    batch_size: int = Field(CPU_BUDGET["batch_size"], ge=1)
    lr: float = Field(CPU_BUDGET["lr"], gt=0, description="Adam learning rate.")
    weight_decay: float = Field(CPU_BUDGET["weight_decay"], ge=0, description="Adam weight decay.")
    eval_batch_size: int = Field(32, ge=1, description="Batch size of feature extraction and prediction (no effect "
                                                       "on results).")


class DefectTypeClassifier(Detector):
    name = "classifier"
    version = "1"
    Config = ClassifierConfig
    uses_synthesis = True
    summary = ("Defect-type classifier trained on the generated anomalies only (labels: the asked defect types), "
               "tested on the real test anomalies: ResNet-34 fine-tuned (GPU protocol, the paper's) or a linear head "
               "on frozen EfficientNet-Lite0 features (CPU substitute).")
    task: ClassVar[str] = "defect-type classification"
    weights_from_resolver: ClassVar[bool] = True  # the run's --weights-dir / --no-download apply to its backbone
    tiny_config = {"image_size": 32, "epochs": 20, "batch_size": 8, "lr": 1e-2}

    def __init__(self, config: dict[str, Any] | ClassifierConfig, seed: int, device: str = "cpu") -> None:
        super().__init__(config, seed, device)
        if self.config.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.config.backbone!r}; registered: {', '.join(sorted(BACKBONES))}")
        from benchmark.metrics.weights import WeightsResolver

        #: Where the backbone's weights come from; the harness replaces it with the run's resolver.
        self.resolver = WeightsResolver()
        self.labels: list[str] = []
        self._built: BuiltBackbone | None = None
        self.head: nn.Module | None = None
        self.feature_mean = torch.zeros(0)
        self.feature_std = torch.ones(0)

    @property
    def backbone(self) -> Backbone:
        return BACKBONES[self.config.backbone]

    @property
    def aims_at_paper(self) -> bool:
        """Configured as the paper's setting: its backbone, fine-tuned (standard once the weights verify)."""
        return self.backbone.paper and self.config.train_backbone

    @property
    def standard(self) -> bool:
        """The paper's setting with verified weights (known once the backbone is built)."""
        return self.aims_at_paper and self._built is not None and self._built.standard

    def weights(self) -> list[WeightsRef]:
        return list(self._built.weights) if self._built else []

    # -- model -------------------------------------------------------------------------------
    def _build(self, n_classes: int) -> None:
        """Backbone (weights via the resolver; may raise WeightsUnavailable) and a head seeded by ``seed``."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self._built = self.backbone.build(self.resolver)
            self.head = nn.Linear(self._built.dim, n_classes)
        self._built.net.to(self.device).requires_grad_(self.config.train_backbone)
        self.head.to(self.device)

    @torch.no_grad()
    def _features(self, images: np.ndarray) -> torch.Tensor:
        assert self._built is not None
        self._built.net.eval()
        return torch.cat([self._built.net(images_to_tensor(images[part], self.config.image_size, self.device))
                          for part in batches(len(images), self.config.eval_batch_size)])

    def _logits(self, images: np.ndarray) -> torch.Tensor:
        assert self._built is not None and self.head is not None
        features = self._features(images)
        return self.head((features - self.feature_mean) / self.feature_std)

    # -- the contract ------------------------------------------------------------------------
    def fit(self, normals: np.ndarray, synthetic: SyntheticSet | None, progress: bool = True) -> None:
        """Train on the generated set's images and defect types only (``normals`` are not used)."""
        synthetic = self._require_synthetic(synthetic)
        if synthetic.defect_types is None:
            raise ValueError("the classifier needs the generated samples' defect types (SyntheticSet.defect_types)")
        self.labels = sorted({str(t) for t in synthetic.defect_types})
        targets = torch.tensor([self.labels.index(str(t)) for t in synthetic.defect_types], device=self.device)
        self._build(len(self.labels))
        assert self._built is not None and self.head is not None
        c = self.config
        if c.train_backbone:
            self.feature_mean = torch.zeros(self._built.dim, device=self.device)
            self.feature_std = torch.ones(self._built.dim, device=self.device)
            parameters = [*self._built.net.parameters(), *self.head.parameters()]
            features = None
        else:
            features = self._features(synthetic.anomalous)
            self.feature_mean = features.mean(dim=0)
            self.feature_std = features.std(dim=0, unbiased=False).clamp_min(1e-6)
            features = (features - self.feature_mean) / self.feature_std
            parameters = list(self.head.parameters())
        optimizer = torch.optim.Adam(parameters, lr=c.lr, weight_decay=c.weight_decay)
        order = np.random.default_rng(self.seed)
        loss_fn = nn.CrossEntropyLoss()
        self.history = []
        n = len(synthetic)
        with torch.random.fork_rng(devices=[]), tqdm(total=c.epochs, desc=f"fit {self.name}", disable=not progress,
                                                     leave=False) as bar:
            torch.manual_seed(self.seed)
            for _ in range(c.epochs):
                permutation = order.permutation(n)
                losses = []
                if c.train_backbone:
                    self._built.net.train()
                for part in batches(n, c.batch_size):
                    index = permutation[part]
                    if features is not None:
                        inputs = features[torch.as_tensor(index, device=self.device)]
                    else:
                        inputs = self._built.net(images_to_tensor(synthetic.anomalous[index], c.image_size, self.device))
                    loss = loss_fn(self.head(inputs), targets[torch.as_tensor(index, device=self.device)])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    losses.append(loss.item())
                self.history.append(float(np.mean(losses)))
                bar.update(1)
                bar.set_postfix(loss=f"{self.history[-1]:.4f}", refresh=False)
        self._built.net.eval()
        self.fitted = True

    @torch.no_grad()
    def predict_types(self, images: np.ndarray) -> list[str]:
        """The defect type predicted for each image (one of the generated set's types)."""
        self._require_fitted()
        check_images(images)
        return [self.labels[i] for i in self._logits(images).argmax(dim=1).tolist()]

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise TypeError(f"{self.name!r} predicts defect types (predict_types), not anomaly scores and maps; "
                        "the harness evaluates it with benchmark.classification.evaluate_classifier")

    # -- caching -----------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        return {**super().meta(), "labels": self.labels}

    def _state(self) -> dict[str, Any]:
        assert self._built is not None and self.head is not None
        state = {"head": self.head.state_dict(), "feature_mean": self.feature_mean, "feature_std": self.feature_std}
        if self.config.train_backbone:
            state["backbone"] = self._built.net.state_dict()
        return state

    def load(self, folder: Any) -> None:
        import json
        from pathlib import Path

        self.labels = list(json.loads((Path(folder) / "detector.json").read_text()).get("labels", []))
        super().load(folder)

    def _load_state(self, state: dict[str, Any]) -> None:
        self._build(len(self.labels))
        assert self._built is not None and self.head is not None
        self.head.load_state_dict(state["head"])
        self.feature_mean, self.feature_std = state["feature_mean"].to(self.device), state["feature_std"].to(self.device)
        if "backbone" in state:
            self._built.net.load_state_dict(state["backbone"])
        self._built.net.eval()
