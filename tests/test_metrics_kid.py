"""KID against torch-fidelity's own implementation on random features, and its place in the registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

from benchmark.metrics import METRICS, FidelityInputs, GeneratedItem, RealItem, WeightsResolver, compute_fidelity
from benchmark.metrics.kid import COEF0, DEGREE, RNG_SEED, SUBSET_SIZE, SUBSETS, kid


def _features(seed: int, n: int, d: int = 16, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(shift, 1.0, (n, d))


def test_settings_are_torch_fidelitys_defaults() -> None:
    from torch_fidelity.defaults import DEFAULTS

    assert (SUBSETS, SUBSET_SIZE, DEGREE, COEF0, RNG_SEED) == (
        DEFAULTS["kid_subsets"], DEFAULTS["kid_subset_size"], DEFAULTS["kid_kernel_poly_degree"],
        DEFAULTS["kid_kernel_poly_coef0"], DEFAULTS["rng_seed"])
    assert DEFAULTS["kid_kernel_poly_gamma"] is None and DEFAULTS["kid_kernel"] == "poly"
    settings = METRICS["kid"].settings
    assert settings["subsets"] == 100 and settings["subset_size"] == 1000 and settings["degree"] == 3
    assert settings["gamma"] == "1 / feature dimension" and settings["coef0"] == 1


def test_kid_equals_torch_fidelitys_function_on_random_features() -> None:
    a, b = _features(0, 60), _features(1, 45, shift=0.3)
    ours = kid(a, b, subsets=20, subset_size=30)
    theirs = kid_features_to_metric(torch.from_numpy(a), torch.from_numpy(b), kid_subsets=20, kid_subset_size=30,
                                    verbose=False)  # torch-fidelity's defaults for everything else
    assert ours.mean == pytest.approx(theirs[KEY_METRIC_KID_MEAN], rel=1e-12)
    assert ours.std == pytest.approx(theirs[KEY_METRIC_KID_STD], rel=1e-12)
    assert ours.subset_size == 30


def test_kid_is_the_unbiased_mmd_with_the_cubic_polynomial_kernel() -> None:
    """One subset of all samples: the estimator written out (independent of torch-fidelity's code)."""
    a, b = _features(2, 12, d=8), _features(3, 12, d=8, shift=0.5)

    def k(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (x @ y.T / x.shape[1] + 1.0) ** 3

    m = len(a)
    kxx, kyy, kxy = k(a, a), k(b, b), k(a, b)
    expected = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.sum() / m**2
    assert kid(a, b, subsets=1).mean == pytest.approx(expected, rel=1e-10)


def test_subset_size_is_clamped_to_the_smaller_set_and_distance_grows_with_the_shift() -> None:
    same, far = kid(_features(4, 40), _features(5, 25)), kid(_features(4, 40), _features(5, 25, shift=2.0))
    assert same.subset_size == far.subset_size == 25
    assert abs(same.mean) < far.mean
    with pytest.raises(ValueError, match="at least 2"):
        kid(_features(6, 1), _features(7, 10))
    with pytest.raises(ValueError, match="same D"):
        kid(_features(6, 5, d=4), _features(7, 5, d=5))


def _inputs() -> FidelityInputs:
    rng = np.random.default_rng(0)

    def item(cls: type, offset: int) -> GeneratedItem | RealItem:
        mask = np.zeros((32, 32), bool)
        mask[8:16, 8:16] = True
        image = np.clip(rng.normal(110 + offset, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
        return cls(image=image, mask=mask, caption="a dent")

    return FidelityInputs(generated={"dent": [item(GeneratedItem, 0) for _ in range(4)],
                                     "hole": [item(GeneratedItem, 0) for _ in range(3)]},
                          real_train={"dent": [item(RealItem, 40)]},
                          real_test={"dent": [item(RealItem, 40) for _ in range(3)], "hole": [item(RealItem, 40)]},
                          image_size=32)


def test_offline_kid_is_refused_and_the_named_substitute_computed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MVTEC_BENCH_WEIGHTS_DIR", raising=False)
    resolver = WeightsResolver(allow_download=False, cache_dir=tmp_path / "weights")
    results = {r.id: r for r in compute_fidelity(["kid"], _inputs(), resolver, progress=False, cache_dir=tmp_path)}
    assert set(results) == {"kid", "kid-effnetlite0-substitute"}
    assert not results["kid"].computed and "not found" in results["kid"].reason
    substitute = results["kid-effnetlite0-substitute"]
    assert substitute.computed and not substitute.comparable and not substitute.higher_is_better
    assert substitute.per_defect["hole"] is None  # one real test anomaly: no value
    assert substitute.value == substitute.per_defect["dent"]
    assert substitute.settings["subset_size_used"] == {"dent": 3} and substitute.settings["degree"] == 3
    assert substitute.settings["no_value"] == {"hole": "3 generated, 1 real test anomalies (at least 2 each)"}
