"""Kernel Inception Distance (KID) between generated and real anomalies, per defect type; and its substitute.

KID (Binkowski et al., ICLR 2018) is the unbiased squared MMD between two feature sets under the
polynomial kernel k(x, y) = (gamma x.y + coef0)^degree, averaged over random subsets. Recent
anomaly-synthesis papers (O2MAG, MAGIC) report it beside IC-LPIPS because it compares the
generated anomalies with *real* ones instead of rewarding diversity alone. The value is computed
by torch-fidelity's own ``kid_features_to_metric`` with torch-fidelity's settings (100 subsets,
subset size 1000, degree 3, gamma 1/d, coef0 1, rng seed 2020). Lower is better; small negative
values are valid (the estimator is unbiased).

Per defect type: the generated images of the type against the **test split's real anomalies of
the same type** (held out from the synthesizer; used here for evaluation only). torch-fidelity
refuses subsets larger than either set; with the few real anomalies per type of MVTec the subset
size is therefore min(1000, n generated, n real), recorded per type in ``subset_size_used``; a
type with fewer than 2 real or generated images has no value. Values from different subset sizes
are not comparable with each other or with published numbers computed on thousands of images.

* ``kid``: the standard metric, on torch-fidelity's Inception-v3 2015-12-05 pool features (2048-d,
  input resized to 299 px by torch-fidelity), only with the pinned weights.
* ``kid-effnetlite0-substitute``: the same estimator on EfficientNet-Lite0's pooled head features
  (1280-d, 224 px); never comparable with published KID values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from benchmark.metrics import effnet
from benchmark.metrics.base import MetricContext, MetricOutput, MetricSpec, progress_bar
from benchmark.metrics.inception_score import first_output_in_batches
from benchmark.metrics.inputs import FidelityInputs, Item, items_hash
from benchmark.metrics.weights import ResolvedWeights
from benchmark.results import ScoreRange

INCEPTION = "inception-v3-2015-12-05"
EFFNET = "efficientnet-lite0-imagenet"
#: torch-fidelity 0.4's KID defaults (``torch_fidelity.defaults.DEFAULTS``), pinned here.
SUBSETS = 100
SUBSET_SIZE = 1000
DEGREE = 3
GAMMA: float | None = None  # None: 1 / feature dimension
COEF0 = 1.0
RNG_SEED = 2020
MIN_IMAGES = 2  # the unbiased estimator needs at least two samples per set


@dataclass(frozen=True)
class KidValue:
    mean: float
    std: float
    subset_size: int


def kid(generated: np.ndarray, real: np.ndarray, subsets: int = SUBSETS, subset_size: int = SUBSET_SIZE,
        degree: int = DEGREE, gamma: float | None = GAMMA, coef0: float = COEF0, rng_seed: int = RNG_SEED) -> KidValue:
    """KID of two N x D feature arrays by torch-fidelity's ``kid_features_to_metric``.

    The subset size is clamped to the smaller set (torch-fidelity refuses larger subsets).
    """
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    generated, real = np.asarray(generated, dtype=np.float64), np.asarray(real, dtype=np.float64)
    if generated.ndim != 2 or real.ndim != 2 or generated.shape[1] != real.shape[1]:
        raise ValueError(f"expected two N x D feature arrays of the same D, got {generated.shape} and {real.shape}")
    size = min(subset_size, len(generated), len(real))
    if size < MIN_IMAGES:
        raise ValueError(f"KID needs at least {MIN_IMAGES} samples per set, got {len(generated)} and {len(real)}")
    out = kid_features_to_metric(torch.from_numpy(generated), torch.from_numpy(real), kid_subsets=subsets,
                                 kid_subset_size=size, kid_kernel="poly", kid_kernel_poly_degree=degree,
                                 kid_kernel_poly_gamma=gamma, kid_kernel_poly_coef0=coef0, rng_seed=rng_seed,
                                 verbose=False)
    return KidValue(float(out[KEY_METRIC_KID_MEAN]), float(out[KEY_METRIC_KID_STD]), size)


def _per_defect(inputs: FidelityInputs, ctx: MetricContext, features_of: Callable[[Sequence[Item]], np.ndarray],
                desc: str) -> MetricOutput:
    per_defect: dict[str, float | None] = {}
    std, sizes, n_real, no_value = {}, {}, {}, {}
    for defect in progress_bar(inputs.defect_types, ctx, desc):
        generated, real = inputs.generated[defect], inputs.real_test.get(defect, [])
        n_real[defect] = len(real)
        if len(generated) < MIN_IMAGES or len(real) < MIN_IMAGES:
            per_defect[defect] = None
            no_value[defect] = f"{len(generated)} generated, {len(real)} real test anomalies (at least {MIN_IMAGES} each)"
            continue
        value = kid(features_of(generated), features_of(real))
        per_defect[defect], std[defect], sizes[defect] = value.mean, value.std, value.subset_size
    return MetricOutput(per_defect, {"subset_size_used": sizes, "std_over_subsets": std, "real_test_per_defect": n_real,
                                     "images_per_defect": {d: len(inputs.generated[d]) for d in inputs.defect_types},
                                     "no_value": no_value},
                        reason=f"fewer than {MIN_IMAGES} generated or real test anomalies per defect type" if no_value else None)


# ---- standard: torch-fidelity's Inception-v3 pool features -----------------------------------------
@lru_cache(maxsize=2)
def _inception_pool(path: str, device: str) -> torch.nn.Module:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    torch.load(path, map_location="cpu", weights_only=True)  # refuse a file that is more than tensors
    model = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=path)
    return model.to(device).eval()


def inception_pool_features(images: Sequence[np.ndarray], weights_path: str, device: str, batch_size: int = 16
                            ) -> np.ndarray:
    """torch-fidelity's KID/FID features (``2048``, N x 2048) of uint8 HxWx3 images."""
    return first_output_in_batches(_inception_pool(weights_path, device), images, device, batch_size)


def _compute_kid(inputs: FidelityInputs, ctx: MetricContext, weights: Mapping[str, ResolvedWeights]) -> MetricOutput:
    resolved = weights[INCEPTION]

    def features_of(items: Sequence[Item]) -> np.ndarray:
        return ctx.cache.get_or_compute(
            "inception-pool-2048", {"weights": resolved.sha256, "images": items_hash(items)},
            lambda: inception_pool_features([it.image for it in items], str(resolved.path), ctx.device, ctx.batch_size))

    return _per_defect(inputs, ctx, features_of, "KID (Inception-v3)")


# ---- substitute: EfficientNet-Lite0 ---------------------------------------------------------------
def _compute_kid_effnet(inputs: FidelityInputs, ctx: MetricContext, weights: Mapping[str, ResolvedWeights]
                        ) -> MetricOutput:
    sha = weights[EFFNET].sha256

    def features_of(items: Sequence[Item]) -> np.ndarray:
        return ctx.cache.get_or_compute(
            "effnetlite0-pooled", {"weights": sha, "images": items_hash(items), "size": effnet.CLASSIFIER_SIZE},
            lambda: effnet.pooled_features([it.image for it in items], ctx.device, ctx.batch_size))

    return _per_defect(inputs, ctx, features_of, "KID substitute (EfficientNet-Lite0)")


_COMMON = {"implementation": "torch_fidelity.metric_kid.kid_features_to_metric (torch-fidelity 0.4)",
           "subsets": SUBSETS, "subset_size": SUBSET_SIZE, "subset_size_rule": "min(subset_size, n generated, n real)",
           "kernel": "poly", "degree": DEGREE, "gamma": "1 / feature dimension" if GAMMA is None else GAMMA,
           "coef0": COEF0, "rng_seed": RNG_SEED, "estimator": "unbiased MMD^2, mean over subsets",
           "reference": "the test split's real anomalies of the same defect type (held out from the synthesizer)",
           "per": "defect type", "features_dtype": "float64"}

#: The unbiased MMD^2 estimate is a difference of kernel means: near 0 for matching sets and slightly
#: negative by chance, with no finite bound either way for the polynomial kernel.
KID_RANGE = ScoreRange(-math.inf, math.inf, "an unbiased MMD^2 estimate (may be slightly negative)")

KID = MetricSpec(
    id="kid", name="Kernel Inception Distance",
    description="KID between generated and real test anomalies per defect type, torch-fidelity's Inception-v3 features.",
    settings={**_COMMON, "feature_extractor": "torch-fidelity FeatureExtractorInceptionV3 ('inception-v3-compat')",
              "weights": "pt_inception-2015-12-05", "feature_layer": "2048",
              "input": "uint8 RGB resized to 299 px by torch-fidelity (TF1-compatible bilinear)"},
    needs_weights=(INCEPTION,), compute=_compute_kid, value_range=KID_RANGE, substitutes=("kid-effnetlite0-substitute",),
    higher_is_better=False,
)

KID_EFFNET = MetricSpec(
    id="kid-effnetlite0-substitute", name="KID-style distance on EfficientNet-Lite0 features (substitute)",
    description="The KID estimator on EfficientNet-Lite0 pooled features; offline stand-in for KID.",
    settings={**_COMMON, "feature_extractor": "EfficientNet-Lite0 ImageNet, global-average-pooled head (1280-d)",
              "input": "resized to 224 px (bilinear, antialiased), normalised to [-1, 1]"},
    needs_weights=(EFFNET,), compute=_compute_kid_effnet, value_range=KID_RANGE, standard=False, substitute_for="kid", higher_is_better=False,
    not_comparable="EfficientNet-Lite0's 1280-d pooled features replace Inception-v3 2015-12-05's 2048-d pool "
                   "features, so the scale differs from any published KID",
)
