"""Deterministic generation plans: which normal image, mask, caption and seed each sample gets.

The plan is the same for every synthesizer given the same split, counts and seed, so
synthesizers are compared on identical requests. Sample ``i`` of a defect type draws from its
own generator seeded by (seed, defect type, i), so a plan extended from n to n+k samples keeps
the first n unchanged (resumable generation relies on it).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from synthesis.contract import SampleSpec, TrainSplit
from synthesis.masks import augment_mask, estimate_foreground


def sample_seed(seed: int, defect_type: str, index: int) -> int:
    return int(np.random.SeedSequence([seed, zlib.crc32(defect_type.encode()), index]).generate_state(1)[0])


class Planner:
    """Plans samples for one training split (foregrounds are computed once per normal image)."""

    def __init__(self, train: TrainSplit, user_masks: Sequence[tuple[str, np.ndarray]] | None = None,
                 caption: str | None = None):
        if not train.normals:
            raise ValueError(f"{train.category}: the training split has no normal images to synthesize on")
        self.train = train
        self.user_masks = list(user_masks or [])
        if caption is not None and not caption.strip():
            raise ValueError("the caption is empty: give its text, or none to use the training captions")
        self.caption = caption
        self._foreground = lru_cache(maxsize=None)(self._foreground_of)

    def _foreground_of(self, normal_index: int) -> np.ndarray:
        return estimate_foreground(self.train.normals[normal_index].image)

    def plan(self, defect_type: str, n: int, seed: int, start: int = 0) -> list[SampleSpec]:
        anomalies = self.train.anomalies_of(defect_type)
        if not anomalies and not (self.user_masks and self.caption):
            raise ValueError(
                f"{self.train.category}/{defect_type}: no training-split anomalies to take masks and captions from "
                f"(types with some: {', '.join(self.train.defect_types) or 'none'}); give --mask and --caption"
            )
        specs = []
        for index in range(start, start + n):
            rng = np.random.default_rng(sample_seed(seed, defect_type, index))
            normal_index = int(rng.integers(len(self.train.normals)))
            normal = self.train.normals[normal_index]
            if self.user_masks:
                mask_name, mask = self.user_masks[index % len(self.user_masks)]
                mask_origin = f"user:{mask_name}"
                source_caption = anomalies[index % len(anomalies)].caption if anomalies else ""
            else:
                source = anomalies[index % len(anomalies)]
                mask, steps = augment_mask(source.mask, self._foreground(normal_index), rng)
                mask_origin = f"train:{defect_type}/{source.image_id} {steps}"
                source_caption = source.caption
            specs.append(
                SampleSpec(
                    defect_type=defect_type,
                    index=index,
                    caption=source_caption if self.caption is None else self.caption,
                    caption_origin="train" if self.caption is None else "user",
                    normal_id=normal.image_id,
                    mask=np.asarray(mask, dtype=bool),
                    mask_origin=mask_origin,
                    seed=int(rng.integers(0, 2**31 - 1)),
                )
            )
        return specs

    def normal_image(self, normal_id: str) -> np.ndarray:
        for normal in self.train.normals:
            if normal.image_id == normal_id:
                return normal.image
        raise KeyError(normal_id)
