"""IC-LPIPS: the clustering on hand-computed 1-D cases, LPIPS parity with torchmetrics, labelling."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.metrics import WEIGHTS, FidelityInputs, GeneratedItem, RealItem, WeightsResolver, compute_fidelity
from benchmark.metrics.ic_lpips import AD, DFMGAN, intra_cluster_diversity
from benchmark.metrics.lpips import build_lpips, lpips_distance
from benchmark.results import MetricResult


def absolute(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    return np.abs(np.subtract.outer(np.asarray(a, float), np.asarray(b, float)))


# centres 0, 10, 20, 30. Generated (in order): 1, 3, 11, 12, 14, -1, 31.
# Nearest centre: 0 <- {1, 3, -1}; 10 <- {11, 12, 14}; 20 <- {}; 30 <- {31}.
CENTRES = [0.0, 10.0, 20.0, 30.0]
GENERATED = [1.0, 3.0, 11.0, 12.0, 14.0, -1.0, 31.0]


def test_assignment_and_sizes() -> None:
    result = intra_cluster_diversity(GENERATED, CENTRES, absolute, max_per_cluster=50, small_clusters="drop")
    assert result.assignment == [0, 0, 1, 1, 1, 0, 3]
    assert result.sizes == [3, 3, 0, 1]


def test_ad_variant_drops_small_clusters() -> None:
    # pairs in {1, 3, -1}: 2, 2, 4 -> 8/3; in {11, 12, 14}: 1, 3, 2 -> 2; {} and {31} dropped.
    result = intra_cluster_diversity(GENERATED, CENTRES, absolute, max_per_cluster=AD.max_per_cluster,
                                     small_clusters=AD.small_clusters)
    assert result.cluster_values == [pytest.approx(8 / 3), pytest.approx(2.0), None, None]
    assert result.value == pytest.approx((8 / 3 + 2) / 2)


def test_dfmgan_variant_counts_small_clusters_as_zero() -> None:
    result = intra_cluster_diversity(GENERATED, CENTRES, absolute, max_per_cluster=DFMGAN.max_per_cluster,
                                     small_clusters=DFMGAN.small_clusters)
    assert result.cluster_values == [pytest.approx(8 / 3), pytest.approx(2.0), 0.0, 0.0]
    assert result.value == pytest.approx((8 / 3 + 2 + 0 + 0) / 4)


def test_cap_keeps_the_first_members_in_generation_order() -> None:
    # cap 2: {1, 3} -> 2 and {11, 12} -> 1
    drop = intra_cluster_diversity(GENERATED, CENTRES, absolute, max_per_cluster=2, small_clusters="drop")
    assert drop.value == pytest.approx(1.5) and drop.sizes == [3, 3, 0, 1]  # sizes are before the cap
    zero = intra_cluster_diversity(GENERATED, CENTRES, absolute, max_per_cluster=2, small_clusters="zero")
    assert zero.value == pytest.approx(3 / 4)


def test_ties_go_to_the_first_centre_and_empty_inputs_have_no_value() -> None:
    assert intra_cluster_diversity([5.0, 5.0], [0.0, 10.0], absolute, max_per_cluster=50,
                                   small_clusters="drop").assignment == [0, 0]
    assert intra_cluster_diversity([1.0, 2.0], [], absolute, max_per_cluster=50, small_clusters="zero").value is None
    assert intra_cluster_diversity([1.0], [0.0], absolute, max_per_cluster=50, small_clusters="drop").value is None


def test_variant_settings() -> None:
    assert (AD.id, AD.backbone, AD.max_per_cluster, AD.small_clusters) == ("ic-lpips-ad", "vgg", 50, "drop")
    assert (DFMGAN.id, DFMGAN.backbone, DFMGAN.max_per_cluster, DFMGAN.small_clusters) == (
        "ic-lpips-dfmgan", "alex", 200, "zero")


# ---- LPIPS from local files ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def random_alexnet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """torchvision-format AlexNet weights (random): the features plus a stray classifier key."""
    import torchvision

    torch.manual_seed(0)
    features = torchvision.models.alexnet(weights=None).features.state_dict()
    state = {f"features.{key}": value for key, value in features.items()}
    state["classifier.6.bias"] = torch.zeros(10)  # ignored: not part of LPIPS
    path = tmp_path_factory.mktemp("alexnet") / "random-alexnet.pth"
    torch.save(state, path)
    return path


def _heads(name: str) -> str:
    return str(WeightsResolver(allow_download=False).resolve(name).path)


def test_batched_distance_equals_torchmetrics_lpips(random_alexnet: Path) -> None:
    heads = _heads("lpips-alex-heads-v0.1")
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (48, 48, 3), dtype=np.uint8) for _ in range(3)]
    ours = lpips_distance("alex", str(random_alexnet), heads)(images, images)
    model = build_lpips("alex", str(random_alexnet), heads)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        reference = np.array([[model(x[i:i + 1], x[j:j + 1], normalize=True).item() for j in range(3)] for i in range(3)])
    np.testing.assert_allclose(ours, reference, atol=1e-6)
    streamed = lpips_distance("alex", str(random_alexnet), heads, batch_size=2)(images, images[:2])  # xs in batches
    np.testing.assert_allclose(streamed, reference[:, :2], atol=1e-6)
    head_file = torch.load(heads, map_location="cpu", weights_only=True)
    assert torch.equal(model.lin0.model[-1].weight, head_file["lin0.model.1.weight"])  # heads really loaded


def test_backbone_file_missing_a_layer_is_refused(random_alexnet: Path, tmp_path: Path) -> None:
    state = torch.load(random_alexnet, weights_only=True)
    del state["features.3.weight"]
    broken = tmp_path / "broken.pth"
    torch.save(state, broken)
    with pytest.raises(RuntimeError, match="Missing key"):
        build_lpips("alex", str(broken), _heads("lpips-alex-heads-v0.1"))


def _inputs() -> FidelityInputs:
    rng = np.random.default_rng(2)

    def item(cls: type) -> GeneratedItem | RealItem:
        mask = np.zeros((32, 32), bool)
        mask[4:12, 4:12] = True
        return cls(image=rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), mask=mask, caption="a hole")

    return FidelityInputs(generated={"hole": [item(GeneratedItem) for _ in range(4)]},
                          real_train={"hole": [item(RealItem) for _ in range(2)]}, image_size=32)


def test_dfmgan_variant_is_standard_only_with_the_pinned_backbone(random_alexnet: Path, tmp_path: Path) -> None:
    cache = tmp_path / "features"
    relaxed = WeightsResolver(paths={"alexnet-imagenet": random_alexnet}, verify=False, allow_download=False)
    results = {r.id: r for r in compute_fidelity(["ic-lpips-dfmgan"], _inputs(), relaxed, progress=False, cache_dir=cache)}
    assert set(results) == {"ic-lpips-dfmgan", "ic-lpips-dfmgan-unverified-weights", "ic-lpips-dfmgan-effnetlite0-substitute"}
    assert not results["ic-lpips-dfmgan"].computed and results["ic-lpips-dfmgan"].value is None
    assert results["ic-lpips-dfmgan-unverified-weights"].computed and not results["ic-lpips-dfmgan-unverified-weights"].comparable
    substitute = results["ic-lpips-dfmgan-effnetlite0-substitute"]
    assert substitute.computed and not substitute.comparable and substitute.settings["max_per_cluster"] == 200

    digest = hashlib.sha256(random_alexnet.read_bytes()).hexdigest()
    registry = {**WEIGHTS, "alexnet-imagenet": replace(WEIGHTS["alexnet-imagenet"], sha256_prefix=digest[:8])}
    pinned = WeightsResolver(paths={"alexnet-imagenet": random_alexnet}, allow_download=False, registry=registry)
    (standard,) = compute_fidelity(["ic-lpips-dfmgan"], _inputs(), pinned, progress=False, cache_dir=cache)
    MetricResult.model_validate(standard.model_dump(mode="json"))
    assert standard.id == "ic-lpips-dfmgan" and standard.computed and standard.comparable
    assert standard.value == pytest.approx(results["ic-lpips-dfmgan-unverified-weights"].value)
    assert standard.settings["clusters_with_fewer_than_2"].startswith("count as 0")
    assert sum(standard.settings["cluster_sizes"]["hole"]) == 4
    assert {w.name for w in standard.weights} == {"alexnet-imagenet", "lpips-alex-heads-v0.1"}


def test_vgg_backbone_maps_into_lpips(tmp_path: Path) -> None:
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    state = {f"features.{key}": value for key, value in make_layers(cfgs["D"]).state_dict().items()}  # VGG16 features
    path = tmp_path / "random-vgg16.pth"
    torch.save(state, path)
    heads = _heads("lpips-vgg-heads-v0.1")
    model = build_lpips("vgg", str(path), heads)
    assert torch.equal(model.net.slice5.get_submodule("28").weight, state["features.28.weight"])
    rng = np.random.default_rng(4)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(2)]
    distances = lpips_distance("vgg", str(path), heads)(images, images)
    assert distances[0, 0] == pytest.approx(0.0, abs=1e-7) and distances[0, 1] == pytest.approx(distances[1, 0])
    assert distances[0, 1] > 0
