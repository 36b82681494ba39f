"""Intra-cluster LPIPS (IC-LPIPS): diversity of generated defects around the real training anomalies.

Per defect type, every real training-split anomaly is a cluster centre; each generated image
joins the centre nearest to it by LPIPS (ties: the first centre). Each cluster keeps at most
``max_per_cluster`` members (the first ones in generation order) and scores the mean LPIPS
over its unordered member pairs; the defect type's value is the mean over clusters. Higher is
more diverse; a synthesizer that copies its training anomalies scores near 0.

Two named variants, because the literature uses both:

* ``ic-lpips-ad``: LPIPS-VGG, at most 50 images per cluster, clusters with fewer than two
  images dropped (no value if none is left).
* ``ic-lpips-dfmgan``: LPIPS-AlexNet, at most 200 images per cluster, every centre counts and a
  cluster with fewer than two images counts as 0.

Without the backbone weights each variant is offered as ``<id>-effnetlite0-substitute``: the same
clustering with an uncalibrated LPIPS-style distance on EfficientNet-Lite0's five stage outputs
(channel-normalised, squared difference summed over channels with unit weights, averaged over
positions and over stages). Its scale is unrelated to LPIPS.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np
import torch

from benchmark.metrics import effnet
from benchmark.metrics.base import MetricContext, MetricOutput, MetricSpec, progress_bar
from benchmark.metrics.inputs import FidelityInputs, images_hash
from benchmark.metrics.lpips import BACKBONE_WEIGHTS, HEAD_WEIGHTS, LayeredDistance, lpips_distance
from benchmark.metrics.weights import ResolvedWeights
from benchmark.results import ScoreRange

X = TypeVar("X")
Distance = Callable[[Sequence[X], Sequence[X]], np.ndarray]  # (a, b) -> len(a) x len(b)
SmallClusters = Literal["drop", "zero"]
EFFNET = "efficientnet-lite0-imagenet"
#: A mean of LPIPS distances: sums of non-negative weights times squared differences, so >= 0. The
#: definition gives no bound of 1 (the bound depends on the head weights), so none is claimed.
LPIPS_RANGE = ScoreRange(0.0, math.inf, "a mean of LPIPS distances, which are non-negative")
#: Channel-normalised features differ by at most 2 per position, so each stage term is in [0, 4];
#: the distance averages stages with unit weights.
EFFNET_DISTANCE_RANGE = ScoreRange(0.0, 4.0, "a mean of squared differences of unit vectors, each in [0, 4]")


@dataclass(frozen=True)
class ClusterDiversity:
    value: float | None  # the defect type's IC score
    assignment: list[int]  # centre index of every generated item
    sizes: list[int]  # members per cluster before the cap
    cluster_values: list[float | None]  # per centre; None where dropped


def intra_cluster_diversity(generated: Sequence[X], centres: Sequence[X], distance: Distance, *,
                            max_per_cluster: int, small_clusters: SmallClusters) -> ClusterDiversity:
    """IC score of ``generated`` around ``centres`` for any distance (see the module docstring)."""
    if not centres or not generated:
        return ClusterDiversity(None, [], [0] * len(centres), [None] * len(centres))
    to_centres = np.asarray(distance(generated, centres))
    assignment = [int(k) for k in np.argmin(to_centres, axis=1)]
    members = [[i for i, k in enumerate(assignment) if k == c] for c in range(len(centres))]
    cluster_values: list[float | None] = []
    for ids in members:
        kept = ids[:max_per_cluster]
        if len(kept) < 2:
            cluster_values.append(0.0 if small_clusters == "zero" else None)
            continue
        items = [generated[i] for i in kept]
        pairwise = np.asarray(distance(items, items))
        cluster_values.append(float(pairwise[np.triu_indices(len(kept), k=1)].mean()))
    scored = [v for v in cluster_values if v is not None]
    value = float(np.mean(scored)) if scored else None
    return ClusterDiversity(value, assignment, [len(ids) for ids in members], cluster_values)


@dataclass(frozen=True)
class Variant:
    id: str
    backbone: Literal["vgg", "alex"]
    max_per_cluster: int
    small_clusters: SmallClusters

    @property
    def settings(self) -> dict[str, object]:
        return {
            "centres": "real training-split anomalies of the defect type",
            "assignment": "nearest centre by the distance (ties: first centre)",
            "max_per_cluster": self.max_per_cluster,
            "cap_keeps": "the first members in generation order",
            "cluster_value": "mean distance over unordered member pairs",
            "clusters_with_fewer_than_2": ("dropped" if self.small_clusters == "drop" else "count as 0 (every centre counts)"),
            "per_defect": "mean over the scored clusters",
        }


AD = Variant("ic-lpips-ad", "vgg", 50, "drop")
DFMGAN = Variant("ic-lpips-dfmgan", "alex", 200, "zero")


def _per_defect(inputs: FidelityInputs, ctx: MetricContext, variant: Variant, distance: Distance,
                distance_key: dict[str, object], desc: str) -> MetricOutput:
    """Run the clustering per defect type; the whole distance result is cached by content."""
    per_defect: dict[str, float | None] = {}
    sizes: dict[str, list[int]] = {}
    empty = []
    for defect in progress_bar(inputs.defect_types, ctx, desc):
        generated = [item.image for item in inputs.generated[defect]]
        centres = [item.image for item in inputs.real_train.get(defect, [])]
        if not centres:
            empty.append(defect)
        parts = {**distance_key, "variant": variant.settings, "generated": images_hash(generated),
                 "centres": images_hash(centres)}

        def run() -> np.ndarray:
            result = intra_cluster_diversity(generated, centres, distance, max_per_cluster=variant.max_per_cluster,
                                             small_clusters=variant.small_clusters)
            return np.array([np.nan if result.value is None else result.value, *result.sizes], dtype=np.float64)

        row = ctx.cache.get_or_compute("ic-diversity", parts, run)
        per_defect[defect] = None if np.isnan(row[0]) else float(row[0])
        sizes[defect] = [int(s) for s in row[1:]]
    reason = f"no real training anomalies (cluster centres) for {', '.join(empty)}" if empty else None
    return MetricOutput(per_defect, {"resolution": inputs.image_size, "cluster_sizes": sizes}, reason=reason)


def _lpips_compute(variant: Variant) -> Callable[[FidelityInputs, MetricContext, Mapping[str, ResolvedWeights]], MetricOutput]:
    def compute(inputs: FidelityInputs, ctx: MetricContext, weights: Mapping[str, ResolvedWeights]) -> MetricOutput:
        backbone, heads = weights[BACKBONE_WEIGHTS[variant.backbone]], weights[HEAD_WEIGHTS[variant.backbone]]
        distance = lpips_distance(variant.backbone, str(backbone.path), str(heads.path), ctx.device, ctx.batch_size)
        key = {"distance": f"lpips-{variant.backbone}", "backbone": backbone.sha256, "heads": heads.sha256}
        return _per_defect(inputs, ctx, variant, distance, key, variant.id)

    return compute


def effnet_distance(device: str, batch_size: int = 16) -> LayeredDistance:
    """Uncalibrated LPIPS-style distance on EfficientNet-Lite0 stages (unit weights, mean over stages)."""
    channels = [m.shape[1] for m in effnet.stage_maps(torch.zeros(1, 3, 32, 32, device=device))]
    return LayeredDistance(effnet.stage_maps, [torch.full((c,), 1.0 / len(channels)) for c in channels], device, batch_size)


def _effnet_compute(variant: Variant) -> Callable[[FidelityInputs, MetricContext, Mapping[str, ResolvedWeights]], MetricOutput]:
    def compute(inputs: FidelityInputs, ctx: MetricContext, weights: Mapping[str, ResolvedWeights]) -> MetricOutput:
        key = {"distance": "effnetlite0-stages-unit", "weights": weights[EFFNET].sha256}
        return _per_defect(inputs, ctx, variant, effnet_distance(ctx.device, ctx.batch_size), key, f"{variant.id} substitute")

    return compute


def _specs(variant: Variant, backbone_name: str) -> tuple[MetricSpec, MetricSpec]:
    substitute_id = f"{variant.id}-effnetlite0-substitute"
    standard = MetricSpec(
        id=variant.id, name=f"IC-LPIPS ({variant.id.split('-')[-1]} variant, LPIPS-{backbone_name})",
        description=f"Intra-cluster LPIPS-{backbone_name} around the real training anomalies.",
        settings={**variant.settings, "distance": f"LPIPS v0.1, {backbone_name} backbone (torchvision ImageNet weights, "
                                                  "torchmetrics linear heads), inputs in [-1, 1], no resizing, spatial mean"},
        needs_weights=(BACKBONE_WEIGHTS[variant.backbone], HEAD_WEIGHTS[variant.backbone]),
        compute=_lpips_compute(variant), value_range=LPIPS_RANGE, substitutes=(substitute_id,),
    )
    substitute = MetricSpec(
        id=substitute_id, name=f"IC diversity, {variant.id.split('-')[-1]} clustering, EfficientNet-Lite0 distance (substitute)",
        description=f"{variant.id}'s clustering with an uncalibrated EfficientNet-Lite0 feature distance.",
        settings={**variant.settings, "distance": "EfficientNet-Lite0 stage outputs (5 stages), unit-normalised over "
                                                  "channels, squared difference summed over channels, mean over positions "
                                                  "and stages; inputs normalised to [-1, 1], no resizing"},
        needs_weights=(EFFNET,), compute=_effnet_compute(variant), value_range=EFFNET_DISTANCE_RANGE, standard=False,
        substitute_for=variant.id,
        not_comparable=f"an uncalibrated EfficientNet-Lite0 feature distance replaces LPIPS-{backbone_name}, so the "
                       "scale differs from any published IC-LPIPS",
    )
    return standard, substitute


IC_LPIPS_AD, IC_AD_EFFNET = _specs(AD, "VGG")
IC_LPIPS_DFMGAN, IC_DFMGAN_EFFNET = _specs(DFMGAN, "AlexNet")
