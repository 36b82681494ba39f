"""Every registered detector: registry, shapes, determinism, caching and the fixed-budget rule."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest

from benchmark.detectors import DETECTORS, available, create_detector, describe, detector_class
from benchmark.detectors.base import Detector, SyntheticSet
from benchmark.detectors.toy import toy_task

NAMES = ["draem", "padim-effnetlite0", "probe-effnetlite0", "unet"]  # anomaly detectors: the score-and-map contract below
CLASSIFIERS = ["classifier"]  # defect-type classification (tests/test_classifier.py)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def task():  # noqa: ANN201
    return toy_task(size=32, n_normal=8, n_synthetic=8, n_test=6, seed=1)


def _tiny(name: str, seed: int = 0, **overrides: object) -> Detector:
    cls = detector_class(name)
    return create_detector(name, {**cls.tiny_config, **overrides}, seed=seed)


def _fit_predict(name: str, task, seed: int = 0) -> tuple[Detector, np.ndarray, np.ndarray]:  # noqa: ANN001
    detector = _tiny(name, seed)
    detector.fit(task.normals, task.synthetic, progress=False)
    scores, maps = detector.predict(task.test_images)
    return detector, scores, maps


def test_registry_lists_the_detectors() -> None:
    assert available() == sorted(NAMES + CLASSIFIERS)
    assert {name: entry.uses_synthesis for name, entry in DETECTORS.items()} == {
        "unet": True, "draem": True, "padim-effnetlite0": False, "classifier": True,
        "probe-effnetlite0": True}
    rows = describe()
    assert [row["name"] for row in rows] == sorted(NAMES + CLASSIFIERS)
    for row in rows:
        assert row["summary"] and row["config"]["image_size"]["description"]
        assert row["uses_synthesis"] == DETECTORS[row["name"]].uses_synthesis
    with pytest.raises(KeyError, match="unknown detector"):
        create_detector("nope", {})


@pytest.mark.parametrize("name", NAMES + CLASSIFIERS)
def test_config_rejects_unknown_keys_and_hash_tracks_config(name: str) -> None:
    with pytest.raises(ValueError):
        _tiny(name, typo_key=1)
    a, b = _tiny(name), _tiny(name, seed=5)
    assert a.config_hash == b.config_hash  # the seed is recorded apart from the config
    assert _tiny(name, image_size=64).config_hash != a.config_hash


@pytest.mark.parametrize("name", NAMES)
def test_fit_predict_shapes_and_determinism(name: str, task) -> None:  # noqa: ANN001
    detector, scores, maps = _fit_predict(name, task)
    assert scores.shape == (6,) and maps.shape == (6, 32, 32)
    assert np.isfinite(scores).all() and np.isfinite(maps).all()
    _, scores_again, maps_again = _fit_predict(name, task)
    np.testing.assert_array_equal(scores, scores_again)
    np.testing.assert_array_equal(maps, maps_again)
    # a second fit of the same object starts again from the seeded initialisation
    detector.fit(task.normals, task.synthetic, progress=False)
    np.testing.assert_array_equal(detector.predict(task.test_images)[0], scores)


@pytest.mark.parametrize("name", NAMES)
def test_save_load_gives_identical_predictions(name: str, task, tmp_path: Path) -> None:  # noqa: ANN001
    detector, scores, maps = _fit_predict(name, task)
    detector.save(tmp_path / name)
    restored = _tiny(name)
    restored.load(tmp_path / name)
    assert restored.history == detector.history
    loaded_scores, loaded_maps = restored.predict(task.test_images)
    np.testing.assert_array_equal(scores, loaded_scores)
    np.testing.assert_array_equal(maps, loaded_maps)
    with pytest.raises(ValueError, match="seed"):
        _tiny(name, seed=9).load(tmp_path / name)
    with pytest.raises(ValueError, match="config_hash"):
        _tiny(name, image_size=64).load(tmp_path / name)


@pytest.mark.parametrize("name", ["unet", "padim-effnetlite0", "probe-effnetlite0"])
def test_other_resolutions_are_resized_and_maps_come_back_at_input_size(name: str, task) -> None:  # noqa: ANN001
    detector = _tiny(name)
    big = np.repeat(np.repeat(task.normals, 2, axis=1), 2, axis=2)  # 64 px inputs for a 32 px detector
    synthetic = task.synthetic
    big_synthetic = SyntheticSet(*(np.repeat(np.repeat(a, 2, axis=1), 2, axis=2)
                                   for a in (synthetic.clean, synthetic.anomalous, synthetic.masks)))
    detector.fit(big, big_synthetic, progress=False)
    scores, maps = detector.predict(big[:3])
    assert scores.shape == (3,) and maps.shape == (3, 64, 64)


@pytest.mark.parametrize("name", NAMES)
def test_predict_before_fit_fails(name: str, task) -> None:  # noqa: ANN001
    with pytest.raises(RuntimeError, match="not fitted"):
        _tiny(name).predict(task.test_images)


@pytest.mark.parametrize("name", NAMES + CLASSIFIERS)
def test_fit_sees_only_training_data(name: str) -> None:
    """The fixed-budget rule: fit has no parameter through which test data or a validation set could arrive."""
    parameters = list(inspect.signature(detector_class(name).fit).parameters)
    assert parameters == ["self", "normals", "synthetic", "progress"]


@pytest.mark.parametrize("name", ["unet", "draem", "probe-effnetlite0"])
def test_synthesis_detectors_need_a_synthetic_set(name: str, task) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="SyntheticSet"):
        _tiny(name).fit(task.normals, None, progress=False)


def test_synthetic_set_validates_shapes() -> None:
    images = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="masks"):
        SyntheticSet(images, images, np.zeros((2, 8, 4), bool))
    with pytest.raises(ValueError, match="clean"):
        SyntheticSet(images[:1], images, np.zeros((2, 8, 8), bool))
