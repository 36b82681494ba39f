"""Detection metrics of one category, computed with anomalib's metric classes on tensors.

* image level (one score per image): AUROC, AP, F1-max;
* pixel level (every pixel of every evaluated image): AUROC, AP, F1-max;
* AU-PRO (anomalib's AUPRO: per-region overlap integrated up to a false-positive rate of
  ``AUPRO_FPR_LIMIT`` and normalised by it).

Reported three ways: overall (all test images), per defect type (that type's anomalies with
all good test images) and the mean over defect types. AP is the step-wise average precision
(anomalib's ``_AUPR``), which equals scikit-learn's ``average_precision_score``.

torchmetrics reads inputs outside [0, 1] as logits and applies a sigmoid, which in float32
saturates large scores (a Mahalanobis distance of 40 and one of 50 both become 1.0) and would
create false ties. Scores and maps are therefore min-max rescaled in float64 first: a strictly
increasing map, so every rank-based metric is unchanged.
"""

from __future__ import annotations

import numpy as np
import torch
from anomalib.metrics.aupr import _AUPR
from anomalib.metrics.aupro import _AUPRO
from anomalib.metrics.auroc import _AUROC
from anomalib.metrics.f1_score import _F1Max

from benchmark.results import DetectionScores

AUPRO_FPR_LIMIT = 0.3
GOOD = "good"

#: What the numbers mean; the harness records these settings with each result.
EVALUATION_SETTINGS = {
    "image_metrics": "anomalib _AUROC / _AUPR (step-wise AP) / _F1Max on one score per image",
    "pixel_metrics": "anomalib _AUROC / _AUPR / _F1Max on all pixels of the evaluated images",
    "aupro": "anomalib _AUPRO, normalised by the FPR limit",
    "aupro_fpr_limit": AUPRO_FPR_LIMIT,
    "per_defect": "that defect type's test anomalies with all good test images",
    "mean_over_defects": "unweighted mean of the per-defect values (None ignored)",
}


def _unit(values: np.ndarray) -> torch.Tensor:
    """Strictly increasing rescale into [0, 1] (float64), so torchmetrics never applies its sigmoid."""
    x = torch.as_tensor(np.asarray(values, dtype=np.float64))
    low, high = x.min(), x.max()
    return (x - low) / (high - low) if high > low else torch.zeros_like(x)


def _metric(metric_cls: type, preds: torch.Tensor, target: torch.Tensor) -> float:
    metric = metric_cls()
    metric.update(preds, target)
    return float(metric.compute())


def _aupro(maps: np.ndarray, masks: np.ndarray, fpr_limit: float) -> float:
    metric = _AUPRO(fpr_limit=fpr_limit)
    metric.update(torch.as_tensor(np.asarray(maps, dtype=np.float32)), torch.as_tensor(masks.astype(np.uint8)))
    return float(metric.compute())


def _both_classes(target: np.ndarray) -> bool:
    return bool(target.any()) and not bool(target.all())


def detection_scores(scores: np.ndarray, maps: np.ndarray, labels: np.ndarray, masks: np.ndarray,
                     fpr_limit: float = AUPRO_FPR_LIMIT) -> DetectionScores:
    """All seven metrics on one set of images; a metric is None when its target has a single class."""
    out: dict[str, float | None] = {}
    labels = np.asarray(labels).astype(np.int64)
    masks = np.asarray(masks).astype(bool)
    if _both_classes(labels):
        preds, target = _unit(scores), torch.as_tensor(labels)
        out["image_auroc"] = _metric(_AUROC, preds, target)
        out["image_ap"] = _metric(_AUPR, preds, target)
        out["image_f1max"] = _metric(_F1Max, preds, target)
    if _both_classes(masks):
        preds, target = _unit(maps).flatten(), torch.as_tensor(masks.reshape(-1).astype(np.int64))
        out["pixel_auroc"] = _metric(_AUROC, preds, target)
        out["pixel_ap"] = _metric(_AUPR, preds, target)
        out["pixel_f1max"] = _metric(_F1Max, preds, target)
        out["aupro"] = _aupro(maps, masks, fpr_limit)
    return DetectionScores(**out)


def mean_scores(per_defect: dict[str, DetectionScores]) -> DetectionScores:
    """Unweighted mean over defect types of each metric (those that are None are left out)."""
    out: dict[str, float | None] = {}
    for field in DetectionScores.model_fields:
        values = [getattr(s, field) for s in per_defect.values() if getattr(s, field) is not None]
        out[field] = float(np.mean(values)) if values else None
    return DetectionScores(**out)


def evaluate_detection(scores: np.ndarray, maps: np.ndarray, labels: np.ndarray, masks: np.ndarray,
                       defect_types: list[str], fpr_limit: float = AUPRO_FPR_LIMIT,
                       ) -> tuple[DetectionScores, dict[str, DetectionScores], DetectionScores]:
    """(overall, per defect type, mean over defect types) for one category's test set.

    ``scores`` [N] and ``maps`` [N,H,W]: higher = more anomalous; ``labels`` [N]: 1 = anomalous;
    ``masks`` [N,H,W] bool; ``defect_types`` [N]: the defect type of each anomalous image (the
    entries of good images are ignored).
    """
    scores, maps = np.asarray(scores), np.asarray(maps)
    labels, masks = np.asarray(labels).astype(np.int64), np.asarray(masks).astype(bool)
    n = len(scores)
    if not (len(maps) == len(labels) == len(masks) == len(defect_types) == n):
        raise ValueError(f"lengths differ: scores {n}, maps {len(maps)}, labels {len(labels)}, "
                         f"masks {len(masks)}, defect_types {len(defect_types)}")
    if maps.shape != masks.shape or maps.ndim != 3:
        raise ValueError(f"maps {maps.shape} and masks {masks.shape} must both be [N,H,W]")
    if masks[labels == 0].any():
        raise ValueError("a good image (label 0) has defect pixels in its mask")
    overall = detection_scores(scores, maps, labels, masks, fpr_limit)
    good = labels == 0
    kinds = np.asarray(defect_types, dtype=object)
    per_defect = {}
    for kind in sorted({str(k) for k in kinds[~good]}):
        keep = good | ((kinds == kind) & ~good)
        per_defect[kind] = detection_scores(scores[keep], maps[keep], labels[keep], masks[keep], fpr_limit)
    return overall, per_defect, mean_scores(per_defect)
