"""benchmark.evaluation against values worked out by hand and against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from benchmark.evaluation import AUPRO_FPR_LIMIT, detection_scores, evaluate_detection


def _maps_from_scores(scores: np.ndarray, size: int = 4) -> np.ndarray:
    return np.repeat(np.asarray(scores, dtype=np.float32)[:, None, None], size * size).reshape(-1, size, size)


def test_perfect_separation_scores_one() -> None:
    labels = np.array([0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    masks = np.zeros((5, 4, 4), bool)
    masks[3:, 1:3, 1:3] = True
    maps = masks.astype(np.float32) * 5 + 0.01  # defect pixels above every other pixel
    result = detection_scores(scores, maps, labels, masks)
    for value in result.model_dump().values():
        assert value == pytest.approx(1.0)


def test_known_auroc_three_quarters() -> None:
    # positives 0.4 and 0.8, negatives 0.1 and 0.6: of the 4 (pos, neg) pairs, 3 are ordered right
    labels = np.array([0, 1, 0, 1])
    scores = np.array([0.1, 0.4, 0.6, 0.8])
    result = detection_scores(scores, np.zeros((4, 2, 2)), labels, np.zeros((4, 2, 2), bool))
    assert result.image_auroc == pytest.approx(0.75)
    # ranks by score: 0.8 (pos) 0.6 (neg) 0.4 (pos) 0.1 (neg): AP = (1/1 + 2/3) / 2
    assert result.image_ap == pytest.approx((1 + 2 / 3) / 2)
    # F1 at threshold 0.4: precision 2/3, recall 1 -> 0.8 (better than 1.0 precision at recall 0.5: 0.667)
    assert result.image_f1max == pytest.approx(0.8)
    assert result.pixel_auroc is None and result.aupro is None  # no defect pixel: undefined, not 0


def test_matches_sklearn_on_random_data() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 60)
    scores = rng.normal(size=60) + labels * 0.8
    masks = np.zeros((60, 8, 8), bool)
    for i in np.flatnonzero(labels):
        y, x = rng.integers(0, 5, 2)
        masks[i, y:y + 3, x:x + 3] = True
    maps = rng.normal(size=(60, 8, 8)).astype(np.float32) + masks * 1.0
    result = detection_scores(scores * 40 + 100, maps * 30, labels, masks)  # far outside [0, 1]: no sigmoid ties
    assert result.image_auroc == pytest.approx(roc_auc_score(labels, scores), abs=1e-6)
    assert result.image_ap == pytest.approx(average_precision_score(labels, scores), abs=1e-6)
    assert result.pixel_auroc == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()), abs=1e-6)
    assert result.pixel_ap == pytest.approx(average_precision_score(masks.ravel(), maps.ravel()), abs=1e-6)


def test_aupro_on_constructed_regions() -> None:
    """Two regions (A, B) of 2 pixels, 10 background pixels.

    Thresholds from the top: A (0.9) -> FPR 0, PRO 1/2; one background pixel (0.8) -> FPR 0.1;
    B (0.75) -> PRO 1; the remaining background pixels take FPR past the 0.3 limit.
    Area up to 0.3: 0.1 * 0.5 + 0.2 * 1.0 = 0.25, normalised by 0.3 -> 5/6.
    """
    masks = np.zeros((2, 1, 7), bool)
    maps = np.zeros((2, 1, 7), np.float32)
    masks[0, 0, :2] = True
    maps[0, 0, :2] = 0.9  # region A
    masks[1, 0, :2] = True
    maps[1, 0, :2] = 0.75  # region B
    background = [0.8, 0.5, 0.45, 0.4, 0.35, 0.3, 0.25, 0.2, 0.15, 0.1]
    maps[~masks] = background
    result = detection_scores(np.array([1.0, 0.5]), maps, np.array([1, 1]), masks)
    assert AUPRO_FPR_LIMIT == 0.3
    assert result.aupro == pytest.approx(5 / 6, abs=1e-6)
    # B below every background pixel: PRO stays 1/2 up to the limit -> 0.5
    maps[1, 0, :2] = 0.05
    assert detection_scores(np.array([1.0, 0.5]), maps, np.array([1, 1]), masks).aupro == pytest.approx(0.5, abs=1e-6)


def test_per_defect_uses_all_good_images_and_mean() -> None:
    labels = np.array([0, 0, 1, 1, 1])
    kinds = ["good", "good", "crack", "crack", "hole"]
    scores = np.array([0.1, 0.5, 0.9, 0.3, 0.7])
    masks = np.zeros((5, 2, 2), bool)
    masks[2:, 0, 0] = True
    maps = masks * 1.0 + 0.0
    overall, per_defect, mean = evaluate_detection(scores, maps, labels, masks, kinds)
    assert sorted(per_defect) == ["crack", "hole"]
    # crack: positives 0.9, 0.3 vs negatives 0.1, 0.5 -> 3 of 4 pairs; hole: 0.7 beats both -> 1.0
    assert per_defect["crack"].image_auroc == pytest.approx(0.75)
    assert per_defect["hole"].image_auroc == pytest.approx(1.0)
    assert mean.image_auroc == pytest.approx(0.875)
    assert overall.image_auroc == pytest.approx(roc_auc_score(labels, scores))
    assert mean.pixel_auroc == pytest.approx(1.0)


def test_rejects_inconsistent_inputs() -> None:
    masks = np.zeros((2, 2, 2), bool)
    masks[0, 0, 0] = True
    with pytest.raises(ValueError, match="good image"):
        evaluate_detection(np.zeros(2), np.zeros((2, 2, 2)), np.array([0, 1]), masks, ["good", "x"])
    with pytest.raises(ValueError, match="lengths"):
        evaluate_detection(np.zeros(3), np.zeros((2, 2, 2)), np.array([0, 1]), masks, ["good", "x"])
