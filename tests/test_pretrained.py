"""The offline pretrained networks: pinned files, every key loaded, and the right input normalisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from synthesis.pretrained import (
    EFFNET_LITE0_MEAN,
    EFFNET_LITE0_SHA256,
    EFFNET_LITE0_STD,
    efficientnet_lite0_weights_path,
    file_sha256,
    load_efficientnet_lite0,
    load_minilm,
)

PERFUME = 711  # ImageNet's closest class to a small labelled juice bottle seen from the side


def test_efficientnet_file_is_the_pinned_one() -> None:
    assert file_sha256(str(efficientnet_lite0_weights_path())) == EFFNET_LITE0_SHA256
    model = load_efficientnet_lite0()
    assert not model.training and not any(p.requires_grad for p in model.parameters())


@pytest.mark.real_data
def test_imagenet_normalisation_gives_plausible_classes(shared_data: Path) -> None:
    """With the wrong normalisation ([-1, 1]) the juice bottles are not recognised as bottles of perfume."""
    files = sorted((shared_data / "mvtec_loco" / "juice_bottle" / "train" / "good").glob("*.png"))[:6]
    images = torch.stack([
        torch.from_numpy(np.array(Image.open(f).convert("RGB").resize((224, 224)))).permute(2, 0, 1).float() / 255
        for f in files
    ])
    normalised = (images - torch.tensor(EFFNET_LITE0_MEAN).view(1, 3, 1, 1)) / torch.tensor(EFFNET_LITE0_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        top1 = load_efficientnet_lite0()(normalised).argmax(-1)
    assert (top1 == PERFUME).float().mean() >= 0.8


def test_minilm_embeds_similar_captions_close() -> None:
    vectors = load_minilm().encode(["The bottle has a large broken.", "The bottle has a small broken.",
                                    "There is glue on the leather."], normalize_embeddings=True)
    assert vectors.shape == (3, 384)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
