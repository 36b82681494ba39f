"""The entry point: offline refusal of every standard metric, substitutes, caching, result validity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmark.metrics import METRICS, FidelityInputs, GeneratedItem, RealItem, WeightsResolver, compute_fidelity
from benchmark.protocols import FIDELITY
from benchmark.results import MetricResult

SUBSTITUTES = {
    "is": {"is-effnetlite0-substitute"},
    "ic-lpips-ad": {"ic-lpips-ad-effnetlite0-substitute"},
    "ic-lpips-dfmgan": {"ic-lpips-dfmgan-effnetlite0-substitute"},
    "caption-faithfulness": {"caption-faithfulness-knn", "caption-type-accuracy-knn"},
}


def _item(cls: type, seed: int, caption: str) -> GeneratedItem | RealItem:
    rng = np.random.default_rng(seed)
    mask = np.zeros((48, 48), bool)
    mask[10:22, 12:30] = True
    return cls(image=rng.integers(0, 256, (48, 48, 3), dtype=np.uint8), mask=mask, caption=caption)


def _inputs() -> FidelityInputs:
    return FidelityInputs(
        generated={"crack": [_item(GeneratedItem, i, "a crack") for i in range(3)],
                   "dent": [_item(GeneratedItem, 10 + i, "a dent") for i in range(3)]},
        real_train={"crack": [_item(RealItem, 20, "a crack")], "dent": [_item(RealItem, 21, "a small dent")]},
        real_test={"crack": [_item(RealItem, 30, "a long crack")], "dent": [_item(RealItem, 31, "a dent")]},
        image_size=48,
    )


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> WeightsResolver:
    monkeypatch.delenv("MVTEC_BENCH_WEIGHTS_DIR", raising=False)
    return WeightsResolver(allow_download=False, cache_dir=tmp_path / "weights")


@pytest.fixture(scope="module")
def features(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("registry-features")


def test_every_protocol_metric_is_registered_with_its_substitutes() -> None:
    for metric_id in FIDELITY:
        spec = METRICS[metric_id]
        assert spec.standard and set(spec.substitutes) == SUBSTITUTES[metric_id]
        for substitute in spec.substitutes:
            assert not METRICS[substitute].standard and METRICS[substitute].substitute_for == metric_id
            assert METRICS[substitute].not_comparable


def test_every_metric_declares_the_range_its_definition_allows() -> None:
    ranges = {metric_id: (spec.value_range.low, spec.value_range.high) for metric_id, spec in METRICS.items()}
    assert ranges["is"] == (1.0, 1008.0) and ranges["is-effnetlite0-substitute"] == (1.0, 1000.0)
    assert ranges["ic-lpips-ad"] == ranges["ic-lpips-dfmgan"] == (0.0, float("inf"))
    assert ranges["caption-faithfulness"] == (-1.0, 1.0) and ranges["caption-type-accuracy-knn"] == (0.0, 1.0)
    is_range = METRICS["is"].value_range
    assert is_range.problem(1.0 - 1e-9) is None  # float rounding of exp(KL ~ 0)
    assert "outside [1, 1008]" in is_range.problem(0.5) and "not a finite number" in is_range.problem(float("nan"))


def test_offline_standard_metrics_are_refused_and_substitutes_offered(
        offline: WeightsResolver, features: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="benchmark.metrics.registry"):
        results = compute_fidelity(FIDELITY, _inputs(), offline, progress=False, cache_dir=features)
    by_id = {r.id: r for r in results}
    assert len(by_id) == len(results)  # each id once
    assert set(by_id) == set(FIDELITY) | set().union(*SUBSTITUTES.values())
    for metric_id in FIDELITY:
        standard = by_id[metric_id]
        assert not standard.computed and standard.value is None and not standard.comparable
        assert "not found" in standard.reason and standard.per_defect == {"crack": None, "dent": None}
    for metric_id in set().union(*SUBSTITUTES.values()):
        substitute = by_id[metric_id]
        assert substitute.computed and not substitute.comparable
        assert substitute.reason.startswith("not comparable with published values")
        assert set(substitute.per_defect) == {"crack", "dent"}
        assert substitute.value == pytest.approx(np.mean(list(substitute.per_defect.values())))
        assert "aggregation" in substitute.settings and substitute.weights
        assert all(w.sha256 and len(w.sha256) == 64 for w in substitute.weights)
        for value in [substitute.value, *substitute.per_defect.values()]:  # what the leaderboard checks
            assert METRICS[metric_id].value_range.problem(value) is None, (metric_id, value)
    for result in results:
        assert MetricResult.model_validate_json(result.model_dump_json()) == result
    # The record's reason is the same on every machine (no local folders: records are compared by
    # content hash); how to provide the weights is in the log.
    assert by_id["is"].reason == "reference weights unavailable: inception-v3-2015-12-05 not found or not verified"
    assert all(str(features.parent) not in (r.reason or "") for r in results)
    assert all(w.source.startswith("package: ") and "/" + "site-packages" not in w.source
               for r in results for w in r.weights)
    assert "Put weights-inception-2015-12-05-6726825d.pth" in caplog.text
    assert by_id["ic-lpips-ad-effnetlite0-substitute"].settings["max_per_cluster"] == 50
    assert by_id["ic-lpips-dfmgan-effnetlite0-substitute"].settings["max_per_cluster"] == 200


def test_features_are_cached_on_disk(offline: WeightsResolver, features: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = compute_fidelity(["is"], _inputs(), offline, progress=False, cache_dir=features)
    assert any((features / "effnetlite0-logits").glob("*.npy"))
    from benchmark.metrics import effnet

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("recomputed instead of reading the feature cache")

    monkeypatch.setattr(effnet, "class_logits", fail)
    again = compute_fidelity(["is"], _inputs(), offline, progress=False, cache_dir=features)
    assert again == first


def test_substitute_requested_directly_and_unknown_ids(offline: WeightsResolver, features: Path) -> None:
    results = compute_fidelity(["is-effnetlite0-substitute", "is"], _inputs(), offline, progress=False, cache_dir=features)
    assert [r.id for r in results] == ["is-effnetlite0-substitute", "is"]
    with pytest.raises(KeyError, match="unknown metric"):
        compute_fidelity(["fid"], _inputs(), offline, progress=False)


def test_no_generated_images(offline: WeightsResolver) -> None:
    empty = FidelityInputs(generated={}, real_train={}, image_size=48)
    (result,) = compute_fidelity(["is-effnetlite0-substitute"], empty, offline, progress=False)
    assert not result.computed and result.reason == "no generated images"


def test_inputs_are_checked() -> None:
    bad = GeneratedItem(image=np.zeros((32, 32, 3), np.uint8), mask=np.zeros((32, 32), bool), caption="x")
    with pytest.raises(ValueError, match="image_size=48"):
        FidelityInputs(generated={"crack": [bad]}, real_train={}, image_size=48)
    with pytest.raises(ValueError, match="uint8"):
        FidelityInputs(generated={"crack": [GeneratedItem(np.zeros((48, 48, 3)), np.zeros((48, 48), bool), "x")]},
                       real_train={}, image_size=48)


def test_missing_weights_are_told_once_per_run(offline: WeightsResolver, features: Path,
                                               caplog: pytest.LogCaptureFixture,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmark.metrics import registry

    monkeypatch.setattr(registry, "_told", set())
    with caplog.at_level("INFO", logger="benchmark.metrics.registry"):
        for _ in range(2):
            compute_fidelity(["is"], _inputs(), offline, progress=False, cache_dir=features)
    told = [r for r in caplog.records if r.getMessage().startswith("is not computed")]
    assert [r.levelname for r in told] == ["WARNING", "INFO"]
