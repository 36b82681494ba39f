"""Inception Score (IS), torch-fidelity settings, per defect type; and its named offline substitute.

IS = exp(E_x KL(p(y|x) || p(y))), computed on 10 splits of the (seeded-shuffled) images and
averaged over splits by torch-fidelity's own reduction (``isc_splits=10``, ``samples_shuffle=True``,
``rng_seed=2020``, the unbiased logits of the 1008-way Inception-v3 2015-12-05 classifier, input
resized to 299 px by torch-fidelity's TensorFlow-compatible bilinear resize). torch-fidelity leaves
IS undefined for fewer images than splits (empty splits); such a defect type is scored as one split
of all its images (recorded in ``splits_used``; a split of one image would always score 1).

* ``is``: the standard metric, only with the pinned Inception weights.
* ``is-effnetlite0-substitute``: the same formula on EfficientNet-Lite0's ImageNet probabilities
  (1000 classes, 224 px). A different classifier gives a different scale: never compare it with
  published Inception Scores.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from benchmark.metrics import effnet
from benchmark.metrics.base import MetricContext, MetricOutput, MetricSpec, progress_bar
from benchmark.metrics.inputs import FidelityInputs, GeneratedItem, items_hash
from benchmark.metrics.weights import ResolvedWeights
from benchmark.results import ScoreRange

SPLITS = 10
RNG_SEED = 2020
INCEPTION = "inception-v3-2015-12-05"
EFFNET = "efficientnet-lite0-imagenet"


def _is_range(classes: int) -> ScoreRange:
    """exp of a mean KL divergence (>= 0) is >= 1, and at most exp(H(p(y))) <= the number of classes."""
    return ScoreRange(1.0, float(classes), f"exp of a mean KL divergence: at least 1, at most the {classes} classes")


@dataclass(frozen=True)
class ScoreValue:
    mean: float
    std: float
    splits: int


def inception_score(logits: np.ndarray, splits: int = SPLITS, shuffle: bool = True, rng_seed: int = RNG_SEED) -> ScoreValue:
    """IS of an N x C matrix of class logits, by torch-fidelity's own reduction (``isc_features_to_metric``).

    Split ``i`` holds rows ``[i*N//s, (i+1)*N//s)`` after a ``RandomState(rng_seed)`` permutation; ``std`` is over
    splits (population). Kept here: with fewer rows than splits all rows form one split (torch-fidelity's
    reduction would average empty splits).
    """
    from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

    x = np.asarray(logits, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"expected a non-empty N x C logit matrix, got shape {x.shape}")
    used = splits if len(x) >= splits else 1
    score = isc_features_to_metric(torch.from_numpy(x), splits=used, shuffle=shuffle, rng_seed=rng_seed)
    return ScoreValue(float(score[KEY_METRIC_ISC_MEAN]), float(score[KEY_METRIC_ISC_STD]), used)


def _per_defect_scores(inputs: FidelityInputs, ctx: MetricContext, logits_of: Callable[[Sequence[GeneratedItem]], np.ndarray],
                       desc: str) -> MetricOutput:
    per_defect: dict[str, float | None] = {}
    splits_used: dict[str, int] = {}
    for defect in progress_bar(inputs.defect_types, ctx, desc):
        score = inception_score(logits_of(inputs.generated[defect]))
        per_defect[defect], splits_used[defect] = score.mean, score.splits
    return MetricOutput(per_defect, {"splits_used": splits_used, "images_per_defect":
                                     {d: len(inputs.generated[d]) for d in inputs.defect_types}})


# ---- standard: torch-fidelity's Inception-v3 --------------------------------------------------
@lru_cache(maxsize=2)
def _inception(path: str, device: str) -> torch.nn.Module:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    torch.load(path, map_location="cpu", weights_only=True)  # refuse a file that is more than tensors
    model = FeatureExtractorInceptionV3("inception-v3-compat", ["logits_unbiased"], feature_extractor_weights_path=path)
    return model.to(device).eval()


@torch.no_grad()
def first_output_in_batches(model: torch.nn.Module, images: Sequence[np.ndarray], device: str, batch_size: int
                            ) -> np.ndarray:
    """A torch-fidelity feature extractor's first output (float64) over uint8 HxWx3 images, batch by batch."""
    out = []
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(np.stack(images[i:i + batch_size])).permute(0, 3, 1, 2).contiguous().to(device)
        out.append(model(x)[0].double().cpu())
    return torch.cat(out).numpy()


def inception_logits(images: Sequence[np.ndarray], weights_path: str, device: str, batch_size: int = 16) -> np.ndarray:
    """torch-fidelity's ISC features (``logits_unbiased``, N x 1008) of uint8 HxWx3 images."""
    return first_output_in_batches(_inception(weights_path, device), images, device, batch_size)


def _compute_is(inputs: FidelityInputs, ctx: MetricContext, weights: Mapping[str, ResolvedWeights]) -> MetricOutput:
    resolved = weights[INCEPTION]

    def logits_of(items: Sequence[GeneratedItem]) -> np.ndarray:
        return ctx.cache.get_or_compute(
            "inception-logits-unbiased", {"weights": resolved.sha256, "images": items_hash(items)},
            lambda: inception_logits([it.image for it in items], str(resolved.path), ctx.device, ctx.batch_size))

    return _per_defect_scores(inputs, ctx, logits_of, "IS (Inception-v3)")


# ---- substitute: EfficientNet-Lite0 ---------------------------------------------------------------
def _compute_is_effnet(inputs: FidelityInputs, ctx: MetricContext, weights: Mapping[str, ResolvedWeights]) -> MetricOutput:
    sha = weights[EFFNET].sha256

    def logits_of(items: Sequence[GeneratedItem]) -> np.ndarray:
        return ctx.cache.get_or_compute(
            "effnetlite0-logits", {"weights": sha, "images": items_hash(items), "size": effnet.CLASSIFIER_SIZE},
            lambda: effnet.class_logits([it.image for it in items], ctx.device, ctx.batch_size))

    return _per_defect_scores(inputs, ctx, logits_of, "IS substitute (EfficientNet-Lite0)")


_COMMON = {"splits": SPLITS, "samples_shuffle": True, "rng_seed": RNG_SEED, "per": "defect type",
           "fewer_images_than_splits": "one split of all images"}

IS = MetricSpec(
    id="is", name="Inception Score",
    description="Inception Score with torch-fidelity's Inception-v3 2015-12-05 weights, 10 splits, per defect type.",
    settings={**_COMMON, "implementation": "torch-fidelity FeatureExtractorInceptionV3 ('inception-v3-compat')",
              "weights": "pt_inception-2015-12-05", "feature_layer": "logits_unbiased", "classes": 1008,
              "input": "uint8 RGB resized to 299 px by torch-fidelity (TF1-compatible bilinear)"},
    needs_weights=(INCEPTION,), compute=_compute_is, value_range=_is_range(1008), substitutes=("is-effnetlite0-substitute",),
)

IS_EFFNET = MetricSpec(
    id="is-effnetlite0-substitute", name="Inception-Score-style score on EfficientNet-Lite0 (substitute)",
    description="The IS formula on EfficientNet-Lite0 ImageNet probabilities; offline stand-in for IS.",
    settings={**_COMMON, "classifier": "EfficientNet-Lite0 ImageNet (1000 classes)", "classes": 1000,
              "input": "resized to 224 px (bilinear, antialiased), normalised to [-1, 1]"},
    needs_weights=(EFFNET,), compute=_compute_is_effnet, value_range=_is_range(1000), standard=False, substitute_for="is",
    not_comparable="EfficientNet-Lite0's 1000-class ImageNet probabilities replace Inception-v3 2015-12-05's 1008-class "
                   "ones, so the scale differs from any published Inception Score",
)
