"""The reference row: PaDiM on the offline EfficientNet-Lite0, no synthesis."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.detectors import create_detector
from benchmark.detectors.toy import toy_task
from benchmark.evaluation import detection_scores
from synthesis.pretrained import EFFNET_LITE0_SHA256, efficientnet_lite0_weights_path, file_sha256


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def task():  # noqa: ANN201
    return toy_task(size=64, n_normal=16, n_synthetic=4, n_test=16, seed=2)


def test_padim_runs_offline_and_records_the_backbone_weights(task, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: pytest.fail("PaDiM tried to download something"))
    detector = create_detector("padim-effnetlite0", {"image_size": 64}, seed=0)
    assert detector.uses_synthesis is False
    [weights] = detector.weights()
    assert weights.sha256 == EFFNET_LITE0_SHA256 == file_sha256(str(efficientnet_lite0_weights_path()))
    assert "efficientnet-lite0" in weights.source
    detector.fit(task.normals, None, progress=False)
    scores, maps = detector.predict(task.test_images)
    result = detection_scores(scores, maps, task.test_labels, task.test_masks)
    assert result.image_auroc > 0.9 and result.pixel_auroc > 0.9, result


def test_padim_ignores_a_synthetic_set(task) -> None:  # noqa: ANN001
    with_set = create_detector("padim-effnetlite0", {"image_size": 64}, seed=0)
    with_set.fit(task.normals, task.synthetic, progress=False)
    without = create_detector("padim-effnetlite0", {"image_size": 64}, seed=0)
    without.fit(task.normals, None, progress=False)
    np.testing.assert_array_equal(with_set.predict(task.test_images)[1], without.predict(task.test_images)[1])


def test_padim_features_and_channel_subset(task) -> None:  # noqa: ANN001
    detector = create_detector("padim-effnetlite0", {"image_size": 64}, seed=0)
    assert detector.features.n_channels == 24 + 40 + 112
    assert len(detector.idx) == 100 and len(set(detector.idx.tolist())) == 100
    embedding = detector._embed(task.normals[:2])
    assert embedding.shape == (2, 100, 16, 16)  # stride-4 grid of a 64 px input
    other = create_detector("padim-effnetlite0", {"image_size": 64}, seed=1)
    assert not torch.equal(other.idx, detector.idx)  # the random subset follows the seed
    with pytest.raises(ValueError, match="n_features"):
        create_detector("padim-effnetlite0", {"image_size": 64, "n_features": 500}, seed=0)
    with pytest.raises(ValueError, match="blocks"):
        create_detector("padim-effnetlite0", {"image_size": 64, "blocks": [3, 4]}, seed=0)
