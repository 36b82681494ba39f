"""Caption faithfulness: crops, kNN retrieval by hand, a matching caption beats a mismatched one, CLIP path."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from benchmark.metrics import WEIGHTS, FidelityInputs, GeneratedItem, RealItem, WeightsResolver, compute_fidelity
from benchmark.metrics.caption_faithfulness import (
    CLIP,
    Neighbours,
    caption_scores,
    defect_box,
    nearest,
    type_votes,
)
from benchmark.results import MetricResult


def test_defect_box_pads_squares_and_clamps() -> None:
    mask = np.zeros((100, 100), bool)
    mask[40:60, 45:55] = True  # 20 x 10 box centred at (50, 50): side 20 * 1.5 = 30
    assert defect_box(mask) == (35, 65, 35, 65)
    corner = np.zeros((100, 100), bool)
    corner[0:20, 0:20] = True  # side 30, shifted inside the image
    assert defect_box(corner) == (0, 30, 0, 30)
    dot = np.zeros((200, 200), bool)
    dot[100, 100] = True  # minimum side: max(16, 200 / 8) = 25
    top, bottom, left, right = defect_box(dot)
    assert (bottom - top, right - left) == (25, 25) and top <= 100 < bottom
    assert defect_box(np.zeros((40, 50), bool)) == (0, 40, 0, 50)  # empty mask: whole image


def test_nearest_neighbours_and_weights_by_hand() -> None:
    references = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    query = np.array([[0.8, 0.6]])  # cosines: 0.8, 0.6, -0.8
    found = nearest(query, references, k=3)
    assert found.indices.tolist() == [[0, 1, 2]]
    np.testing.assert_allclose(found.weights, [[0.8 / 1.4, 0.6 / 1.4, 0.0]])  # negative cosines get no weight
    opposite = nearest(np.array([[0.0, -1.0]]), references[:2], k=2)  # cosines 0, -1: uniform weights
    np.testing.assert_allclose(opposite.weights, [[0.5, 0.5]])


def test_caption_score_and_type_vote_by_hand() -> None:
    neighbours = Neighbours(indices=np.array([[0, 1, 2]]), weights=np.array([[0.5, 0.3, 0.2]]))
    ref_captions = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    asked = np.array([[1.0, 0.0]])
    assert caption_scores(asked, ref_captions, neighbours)[0] == pytest.approx(0.5 + 0.2)
    assert type_votes(["crack", "hole", "hole"], neighbours) == ["crack"]  # 0.5 vs 0.3 + 0.2: tie -> nearest
    assert type_votes(["crack", "hole", "hole"], Neighbours(np.array([[0, 1, 2]]), np.array([[0.4, 0.3, 0.3]]))) == ["hole"]


# ---- a tiny constructed category ----------------------------------------------------------------
STAIN = ["a red round stain", "red circular stain spot", "small red stain"]
SCRATCH = ["a long white scratch", "thin bright scratch line", "straight white scratch"]


def _item(cls: type, kind: str, caption: str, seed: int) -> GeneratedItem | RealItem:
    rng = np.random.default_rng(seed)
    image = np.clip(rng.normal(110, 6, (64, 64, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((64, 64), bool)
    y, x = rng.integers(14, 34, size=2)
    if kind == "stain":
        yy, xx = np.mgrid[:64, :64]
        mask = (yy - y - 8) ** 2 + (xx - x - 8) ** 2 <= 49
        image[mask] = (200, 30, 30)
    else:
        mask[y:y + 2, 6:58] = True
        image[mask] = (250, 250, 250)
    return cls(image=image, mask=mask, caption=caption)


def _inputs(swap_captions: bool = False) -> FidelityInputs:
    asked = {"stain": SCRATCH if swap_captions else STAIN, "scratch": STAIN if swap_captions else SCRATCH}
    return FidelityInputs(
        generated={kind: [_item(GeneratedItem, kind, asked[kind][i], 100 + i + 10 * k) for i in range(2)]
                   for k, kind in enumerate(("stain", "scratch"))},
        real_train={"stain": [_item(RealItem, "stain", STAIN[0], 1)], "scratch": [_item(RealItem, "scratch", SCRATCH[0], 2)]},
        real_test={"stain": [_item(RealItem, "stain", STAIN[i], 10 + i) for i in (1, 2)],
                   "scratch": [_item(RealItem, "scratch", SCRATCH[i], 20 + i) for i in (1, 2)]},
        image_size=64,
    )


@pytest.fixture(scope="module")
def features(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("caption-features")


def _offline(inputs: FidelityInputs, cache: Path) -> dict[str, MetricResult]:
    resolver = WeightsResolver(allow_download=False, cache_dir=cache / "no-weights")
    return {r.id: r for r in compute_fidelity(["caption-faithfulness"], inputs, resolver, progress=False, cache_dir=cache)}


def test_matching_captions_score_higher_than_mismatched(features: Path) -> None:
    matching, mismatched = _offline(_inputs(), features), _offline(_inputs(swap_captions=True), features)
    standard = matching["caption-faithfulness"]
    assert not standard.computed and standard.value is None and CLIP in standard.reason
    assert set(standard.per_defect) == {"stain", "scratch"} and set(standard.per_defect.values()) == {None}
    good, bad = matching["caption-faithfulness-knn"], mismatched["caption-faithfulness-knn"]
    for result in (good, bad):
        MetricResult.model_validate(result.model_dump(mode="json"))
        assert result.computed and not result.comparable and result.reason.startswith("not comparable")
    for defect in ("stain", "scratch"):
        assert good.per_defect[defect] > bad.per_defect[defect] + 0.1
    assert good.settings["k"] == 5 and good.settings["references"] == 6
    accuracy = matching["caption-type-accuracy-knn"]
    assert accuracy.per_defect == {"stain": 1.0, "scratch": 1.0} and accuracy.value == 1.0
    assert mismatched["caption-type-accuracy-knn"].value == 1.0  # captions do not change what the crops look like


# ---- CLIP: a tiny random model folder ---------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random CLIP in transformers format with a character-level tokenizer (no download)."""
    import torch
    from tokenizers import pre_tokenizers
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    chars = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {token: i for i, token in enumerate(["<|startoftext|>", "<|endoftext|>", *chars, *(c + "</w>" for c in chars)])}
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    config = CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 77, "bos_token_id": 0, "eos_token_id": 1,
                     "pad_token_id": 1},
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        projection_dim=8)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-clip")
    CLIPModel(config).save_pretrained(folder)
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                                                 crop_size={"height": 32, "width": 32}), tokenizer=tokenizer)
    processor.save_pretrained(folder)
    return folder


def test_clip_weights_unpinned_are_not_reported_as_standard(tiny_clip: Path, features: Path) -> None:
    resolver = WeightsResolver(paths={CLIP: tiny_clip}, allow_download=False)
    results = {r.id: r for r in compute_fidelity(["caption-faithfulness"], _inputs(), resolver, progress=False,
                                                 cache_dir=features)}
    assert not results["caption-faithfulness"].computed and "pins no sha256" in results["caption-faithfulness"].reason
    unverified = results["caption-faithfulness-unverified-weights"]
    assert unverified.computed and not unverified.comparable and -1.0 <= unverified.value <= 1.0
    assert {"caption-faithfulness-knn", "caption-type-accuracy-knn"} <= set(results)

    digest = hashlib.sha256((tiny_clip / "model.safetensors").read_bytes()).hexdigest()
    pinned = WeightsResolver(paths={CLIP: tiny_clip}, allow_download=False,
                             registry={**WEIGHTS, CLIP: replace(WEIGHTS[CLIP], sha256=digest)})
    (standard,) = compute_fidelity(["caption-faithfulness"], _inputs(), pinned, progress=False, cache_dir=features)
    assert standard.id == "caption-faithfulness" and standard.computed and standard.comparable
    assert standard.value == pytest.approx(unverified.value) and standard.weights[0].sha256 == digest
