"""Inception Score: the formula on hand-computed cases, torch-fidelity parity, and honest labelling."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.metrics import WEIGHTS, FidelityInputs, GeneratedItem, RealItem, WeightsResolver, compute_fidelity
from benchmark.metrics.inception_score import INCEPTION, inception_score
from benchmark.results import MetricResult, ScoreRange


def logits(probs) -> np.ndarray:  # noqa: ANN001
    """Logits whose softmax is ``probs`` (a probability of 0 becomes e^-690, i.e. 0 to double precision)."""
    return np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-300, None))


def test_hand_computed_values() -> None:
    # q = (0.75, 0.25); KL = 0.5 ln(4/3) and ln(4/3); mean 0.75 ln(4/3)  ->  IS = (4/3) ** 0.75
    assert inception_score(logits([[0.5, 0.5], [1.0, 0.0]]), splits=1).mean == pytest.approx((4 / 3) ** 0.75)
    assert inception_score(logits(np.eye(2)), splits=1).mean == pytest.approx(2.0)  # two confident, distinct classes
    assert inception_score(logits([[0.2, 0.8]] * 4), splits=1).mean == pytest.approx(1.0)  # no diversity


def test_ten_splits_mean_and_std() -> None:
    # 20 rows, unshuffled: split i holds rows 2i and 2i+1. Five splits of two distinct one-hots
    # (IS 2) and five splits of two identical ones (IS 1): mean 1.5, population std 0.5.
    rows = []
    for i in range(10):
        rows += [[1.0, 0.0], [0.0, 1.0]] if i % 2 == 0 else [[1.0, 0.0], [1.0, 0.0]]
    score = inception_score(logits(rows), splits=10, shuffle=False)
    assert (score.mean, score.std, score.splits) == (pytest.approx(1.5), pytest.approx(0.5), 10)


def test_fewer_images_than_splits_form_one_split() -> None:
    # torch-fidelity would leave empty splits here; three distinct one-hots in one split score 3
    score = inception_score(logits(np.eye(3)), splits=10)
    assert score.splits == 1 and score.mean == pytest.approx(3.0) and score.std == pytest.approx(0.0)


def test_matches_torch_fidelity_including_the_seeded_shuffle() -> None:
    from torch_fidelity.metric_isc import isc_features_to_metric

    values = np.random.default_rng(3).normal(scale=3.0, size=(37, 11))
    ours = inception_score(values)
    theirs = isc_features_to_metric(torch.from_numpy(values), splits=10, shuffle=True, rng_seed=2020)
    assert ours.mean == pytest.approx(theirs["inception_score_mean"], rel=1e-9)
    assert ours.std == pytest.approx(theirs["inception_score_std"], rel=1e-7)


# ---- the standard metric's mechanics on random Inception weights ------------------------------
@pytest.fixture(scope="module")
def random_inception(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state dict of torch-fidelity's Inception-v3 with random weights (not the reference file)."""
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

    with pytest.MonkeyPatch.context() as patch:  # build the network without fetching or loading weights
        patch.setattr(tf_inception, "load_state_dict_from_url", lambda *args, **kwargs: {})
        patch.setattr(tf_inception.FeatureExtractorInceptionV3, "load_state_dict", lambda self, *args, **kwargs: None)
        torch.manual_seed(0)
        model = tf_inception.FeatureExtractorInceptionV3("inception-v3-compat", ["logits_unbiased"])
    path = tmp_path_factory.mktemp("inception") / "random-inception.pth"
    torch.save(model.state_dict(), path)
    return path


def _inputs() -> FidelityInputs:
    rng = np.random.default_rng(0)

    def item(cls: type) -> GeneratedItem | RealItem:
        mask = np.zeros((32, 32), bool)
        mask[8:20, 8:20] = True
        return cls(image=rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), mask=mask, caption="a scratch")

    return FidelityInputs(generated={"scratch": [item(GeneratedItem) for _ in range(3)]},
                          real_train={"scratch": [item(RealItem)]}, image_size=32)


def _by_id(results: list[MetricResult]) -> dict[str, MetricResult]:
    for result in results:
        MetricResult.model_validate(result.model_dump(mode="json"))
    return {result.id: result for result in results}


def test_random_weights_are_never_labelled_inception_score(random_inception: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    monkeypatch.setattr(FeatureExtractorInceptionV3, "INPUT_IMAGE_SIZE", 75)  # speed only: the smallest valid input
    cache = tmp_path / "features"
    relaxed = WeightsResolver(paths={INCEPTION: random_inception}, verify=False, allow_download=False)
    results = _by_id(compute_fidelity(["is"], _inputs(), relaxed, progress=False, cache_dir=cache))
    assert not results["is"].computed and results["is"].value is None and "not verified" in results["is"].reason
    unverified = results["is-unverified-weights"]
    # >= 1 up to rounding: torch-fidelity's reduction, p * (log p - log q), can end a few ulps below 1 for alike images
    assert unverified.computed and not unverified.comparable and unverified.value >= 1.0 - ScoreRange.TOLERANCE
    assert unverified.weights[0].sha256 == hashlib.sha256(random_inception.read_bytes()).hexdigest()
    substitute = results["is-effnetlite0-substitute"]
    assert substitute.computed and not substitute.comparable
    assert substitute.reason.startswith("not comparable with published values")

    # Only when the pinned hash matches is the number reported as the Inception Score.
    digest = hashlib.sha256(random_inception.read_bytes()).hexdigest()
    pinned = WeightsResolver(paths={INCEPTION: random_inception}, allow_download=False,
                             registry={**WEIGHTS, INCEPTION: replace(WEIGHTS[INCEPTION], sha256_prefix=digest[:8])})
    standard = _by_id(compute_fidelity(["is"], _inputs(), pinned, progress=False, cache_dir=cache))
    assert list(standard) == ["is"]  # no substitute when the standard one is computed
    result = standard["is"]
    assert result.computed and result.comparable and result.reason is None
    assert result.value == pytest.approx(unverified.value)  # same logits, read back from the feature cache
    assert result.settings["splits"] == 10 and result.settings["splits_used"] == {"scratch": 1}
    assert result.settings["weights"] == "pt_inception-2015-12-05"
