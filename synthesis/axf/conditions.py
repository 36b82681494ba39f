"""The frozen encoders' share of the X-embedding: caption tokens and masked-defect image tokens.

Training and sampling both need them, training before the network exists (their widths size
it), so they live here rather than in the synthesizer or the pipeline. Outputs are cached per
caption and per reference defect: an 800-step fit sees the same 20 captions and 20 defect
windows on every step, and a benchmark run asks for the same few captions hundreds of times.

Each caption and each window goes through its encoder alone: padding and batch composition then
cannot change an output in its last bits, so a caption encodes the same in training, in the
synthesizer and in a pipeline loaded in another process (outputs are compared byte for byte).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch

from synthesis.axf.config import DEFAULTS
from synthesis.axf.windows import resize, to_tensor, window_for

IMAGE_INPUT = 224  # the frozen image encoders' input resolution


def defect_key(image: np.ndarray, mask: np.ndarray) -> str:
    """A cache key for one reference defect: the hash of its pixels and mask."""
    digest = hashlib.blake2b(digest_size=16)
    for array in (np.ascontiguousarray(image), np.ascontiguousarray(mask, dtype=bool)):
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


@dataclass
class Conditioner:
    """Frozen text and image encoders by name (see :mod:`synthesis.axf.encoders`), with caches."""

    text_encoder: str | None = DEFAULTS.text_encoder
    image_encoder: str | None = DEFAULTS.image_encoder
    max_text_tokens: int = DEFAULTS.max_text_tokens
    image_grid: int = DEFAULTS.image_grid
    window_size: int = DEFAULTS.window_size
    window_margin: float = DEFAULTS.window_margin
    _text: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict, repr=False)
    _sentence: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    _image: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    def text_tokens(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Frozen text tokens padded to ``max_text_tokens``: ``[B, L, D]`` and their validity ``[B, L]``."""
        from synthesis.axf.encoders import text_encoder

        length = self.max_text_tokens
        missing = sorted({c for c in captions if c not in self._text})
        for caption in missing:
            tokens, valid = text_encoder(self._need(self.text_encoder, "text")).tokens([caption], length)
            padded = torch.zeros(length, tokens.shape[-1])
            mask = torch.zeros(length, dtype=torch.bool)
            n = min(length, tokens.shape[1])
            padded[:n], mask[:n] = tokens[0, :n], valid[0, :n]
            self._text[caption] = (padded, mask)
        return (torch.stack([self._text[c][0] for c in captions]),
                torch.stack([self._text[c][1] for c in captions]))

    def sentence_embedding(self, captions: list[str]) -> torch.Tensor:
        """Normalised sentence embeddings ``[B, D]`` (to find the training caption closest to an asked one)."""
        from synthesis.axf.encoders import text_encoder

        missing = sorted({c for c in captions if c not in self._sentence})
        for caption in missing:
            self._sentence[caption] = text_encoder(self._need(self.text_encoder, "text")).embed([caption])[0]
        return torch.stack([self._sentence[c] for c in captions])

    def masked_window(self, image: np.ndarray, mask: np.ndarray) -> torch.Tensor:
        """I ⊙ M: the defect's window with everything outside its mask black, ``[3, w, w]`` in [0, 1]."""
        win = window_for(mask, self.window_size, self.window_margin)
        return to_tensor(win.crop(image)) * torch.from_numpy(win.crop(mask).astype(np.float32))[None]

    def image_tokens(self, images: list[np.ndarray], masks: list[np.ndarray]) -> torch.Tensor:
        """Frozen image tokens ``[B, 1 + g*g, D]`` of each reference defect's masked window."""
        from synthesis.axf.encoders import image_encoder

        keys = [defect_key(i, m) for i, m in zip(images, masks)]
        missing = {k: (i, m) for k, i, m in zip(keys, images, masks) if k not in self._image}
        for key, (image, mask) in missing.items():
            window = resize(self.masked_window(image, mask)[None], IMAGE_INPUT)
            self._image[key] = image_encoder(self._need(self.image_encoder, "image")).tokens(window, self.image_grid)[0]
        return torch.stack([self._image[k] for k in keys])

    @staticmethod
    def _need(name: str | None, kind: str) -> str:
        if not name:
            raise ValueError(f"this AXF model has no {kind} branch: no {kind} encoder to run")
        return name
