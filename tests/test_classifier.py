"""The defect-type classifier: scores with a known answer, a toy task it must solve, and its honest refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from benchmark.classification import PLOT_FILE, evaluate_classifier, score_predictions
from benchmark.detectors import DETECTORS, create_detector
from benchmark.detectors.base import SyntheticSet
from benchmark.detectors.classifier import (
    BACKBONES,
    CPU_BUDGET,
    GPU_BUDGET,
    Backbone,
    BuiltBackbone,
    ClassifierConfig,
    DefectTypeClassifier,
)
from benchmark.metrics.weights import WeightsResolver

pytestmark = pytest.mark.usefixtures("one_torch_thread")
COLOURS = {"blue": (30, 60, 220), "green": (40, 200, 60), "red": (220, 40, 40)}


def _toy(n_per_type: int, seed: int, size: int = 48) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Grey noise with one coloured square: the square's colour is the defect type (a known answer)."""
    rng = np.random.default_rng(seed)
    images, types, masks = [], [], []
    for name, rgb in COLOURS.items():
        for _ in range(n_per_type):
            image = rng.integers(90, 140, (size, size, 3), dtype=np.uint8)
            side = int(rng.integers(size // 4, size // 2))
            y, x = rng.integers(0, size - side, 2)
            image[y:y + side, x:x + side] = rgb
            mask = np.zeros((size, size), bool)
            mask[y:y + side, x:x + side] = True
            images.append(image), types.append(name), masks.append(mask)
    return np.stack(images), types, np.stack(masks)


def _synthetic(n_per_type: int = 6, seed: int = 0) -> SyntheticSet:
    images, types, masks = _toy(n_per_type, seed)
    return SyntheticSet(clean=images, anomalous=images, masks=masks, defect_types=np.array(types))


@pytest.fixture
def tiny_backbone(monkeypatch: pytest.MonkeyPatch) -> str:
    """A small random CNN standing in for ResNet-34 in the fine-tuning mechanics (no weights to fetch)."""
    def build(resolver: object) -> BuiltBackbone:
        net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        return BuiltBackbone(net, 16, [], False)

    monkeypatch.setitem(BACKBONES, "tiny-random", Backbone("tiny-random", "tiny", build, "tests only"))
    return "tiny-random"


# ---- scores with a known answer -------------------------------------------------------------------
def test_scores_of_known_predictions() -> None:
    true = ["a"] * 4 + ["b"] * 2 + ["c"] * 2
    predicted = ["a", "a", "a", "b", "b", "b", "a", "c"]
    scores = score_predictions(true, predicted, ["a", "b", "c"])
    assert scores["confusion_matrix"] == [[3, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert scores["per_type_accuracy"] == {"a": 0.75, "b": 1.0, "c": 0.5}
    assert scores["mean_accuracy"] == pytest.approx((0.75 + 1.0 + 0.5) / 3)
    assert scores["accuracy"] == pytest.approx(6 / 8)
    f1 = [2 * 3 / (2 * 3 + 1 + 1), 2 * 2 / (2 * 2 + 1 + 0), 2 * 1 / (2 * 1 + 0 + 1)]  # 2TP / (2TP + FP + FN)
    assert scores["macro_f1"] == pytest.approx(np.mean(f1))


# ---- the toy task ------------------------------------------------------------------------------------
def test_learns_the_toy_task_on_frozen_effnet_features(tmp_path: Path) -> None:
    classifier = create_detector("classifier", {"image_size": 64}, seed=0)
    test_images, test_types, _ = _toy(3, seed=1)
    types = ["good", *test_types]  # good test images are left out: only anomalies are classified
    images = np.concatenate([test_images[:1], test_images])
    result = evaluate_classifier(classifier, test_images[:2], _synthetic(), images, types, tmp_path, progress=False)
    assert result.applicable and result.computed and not result.comparable
    assert result.id == "defect-type-effnetlite0-substitute" and "paper's setting" in result.reason
    assert result.labels == ["blue", "green", "red"]
    assert result.mean_accuracy == 1.0 and result.accuracy == 1.0 and result.macro_f1 == 1.0
    assert result.confusion_matrix == [[3, 0, 0], [0, 3, 0], [0, 0, 3]]
    assert result.n_test_per_type == {"blue": 3, "green": 3, "red": 3}
    assert result.n_train_per_type == {"blue": 6, "green": 6, "red": 6}
    assert result.plot == PLOT_FILE and (tmp_path / PLOT_FILE).stat().st_size > 1000
    assert [w.name for w in classifier.weights()] == ["efficientnet-lite0-imagenet"]


def test_fine_tuning_mechanics_with_a_tiny_random_network(tiny_backbone: str, tmp_path: Path) -> None:
    config = {"backbone": tiny_backbone, "train_backbone": True, "image_size": 32, "epochs": 40, "batch_size": 6,
              "lr": 1e-2}
    first, second = (create_detector("classifier", config, seed=3) for _ in range(2))
    test_images, test_types, _ = _toy(3, seed=1)
    for classifier in (first, second):
        classifier.fit(test_images[:1], _synthetic(), progress=False)
    assert first.history == second.history and first.history[-1] < first.history[0]  # seeded, and it learns
    predicted = first.predict_types(test_images)
    assert predicted == second.predict_types(test_images)
    assert np.mean([p == t for p, t in zip(predicted, test_types)]) >= 2 / 3
    first.save(tmp_path / "model")
    restored = create_detector("classifier", config, seed=3)
    restored.load(tmp_path / "model")
    assert restored.labels == first.labels and restored.predict_types(test_images) == predicted
    assert "backbone" in torch.load(tmp_path / "model" / "state.pt", weights_only=True)  # fine-tuned: saved whole


# ---- honest refusals ----------------------------------------------------------------------------------
def test_a_single_defect_type_is_not_applicable() -> None:
    classifier = create_detector("classifier", {}, seed=0)
    images, _, masks = _toy(2, seed=0)
    synthetic = SyntheticSet(images, images, masks, defect_types=np.array(["logical_anomalies"] * len(images)))
    result = evaluate_classifier(classifier, images, synthetic, images, ["logical_anomalies"] * len(images),
                                 progress=False)
    assert not result.applicable and not result.computed and result.mean_accuracy is None
    assert result.reason.startswith("not applicable") and "logical_anomalies" in result.reason
    assert not classifier.fitted  # nothing was trained


def test_resnet34_without_weights_is_not_computed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MVTEC_BENCH_WEIGHTS_DIR", raising=False)
    classifier = create_detector("classifier", GPU_BUDGET, seed=0)
    classifier.resolver = WeightsResolver(allow_download=False, cache_dir=tmp_path)
    images, types, _ = _toy(2, seed=1)
    result = evaluate_classifier(classifier, images, _synthetic(2), images, types, progress=False)
    assert result.applicable and not result.computed and not result.comparable
    assert result.id == "defect-type-resnet34" and result.mean_accuracy is None
    assert result.reason.startswith("not computed: backbone weights unavailable (resnet34")


def test_resnet34_on_unverified_weights_is_never_the_standard_result(tmp_path: Path) -> None:
    from torchvision.models import resnet34

    path = tmp_path / "resnet34-b627a593.pth"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        torch.save(resnet34(weights=None).state_dict(), path)  # the right architecture, not the reference bytes
    config = {**GPU_BUDGET, "image_size": 32, "epochs": 1, "batch_size": 6}
    classifier = create_detector("classifier", config, seed=0)
    classifier.resolver = WeightsResolver(paths={"resnet34-imagenet": path}, verify=False, allow_download=False)
    images, types, _ = _toy(1, seed=1)
    result = evaluate_classifier(classifier, images, _synthetic(2), images, types, progress=False)
    assert result.computed and not result.comparable and result.id == "defect-type-resnet34-unverified-weights"
    assert classifier.weights()[0].name == "resnet34-imagenet" and len(classifier.weights()[0].sha256) == 64


def test_contract_details() -> None:
    assert DETECTORS["classifier"].uses_synthesis
    assert ClassifierConfig().model_dump() == {**ClassifierConfig().model_dump(), **CPU_BUDGET}  # defaults: CPU budget
    classifier = create_detector("classifier", DefectTypeClassifier.tiny_config, seed=0)
    images, _, masks = _toy(1, seed=0)
    with pytest.raises(ValueError, match="defect types"):
        classifier.fit(images, SyntheticSet(images, images, masks), progress=False)
    with pytest.raises(TypeError, match="predict_types"):
        classifier.predict(images)
    with pytest.raises(ValueError, match="unknown backbone"):
        create_detector("classifier", {"backbone": "nope"}, seed=0)
    with pytest.raises(ValueError, match="defect_types"):
        SyntheticSet(images, images, masks, defect_types=np.array(["a"]))
