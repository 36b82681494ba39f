"""Deterministic generation plans: which normal image, mask, caption and seed each sample gets.

The plan is the same for every synthesizer given the same split, counts and seed, so
synthesizers are compared on identical requests. Sample ``i`` of a defect type draws from its
own generator seeded by (seed, defect type, i), so a plan extended from n to n+k samples keeps
the first n unchanged (resumable generation relies on it).

Each sample's parts agree with each other: the training anomaly that lends the caption and the
mask is chosen by what the normal image shows (:mod:`synthesis.caption_choice`); the mask follows
the caption's place, size and count words (:mod:`synthesis.caption_masks`) and the category's
geometry (:mod:`synthesis.geometry`: no quarter turns of upright objects; in aligned categories
the mask moves with its image aligned to the normal one). A "missing" caption in an aligned category
grows the moved mask over what is left of the named part in this normal image
(:func:`synthesis.missing_content.part_pixels`: a label stuck a little lower than in the training
anomaly would otherwise keep its edge), so a synthesizer that fills the mask removes the whole part.
What was asked and planned is recorded in :class:`SamplePlan`, which the generated set's manifest keeps.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy import ndimage

from synthesis import caption_choice, caption_masks, geometry, missing_content
from synthesis.caption_choice import CaptionChoice
from synthesis.caption_masks import MaskAsk, MaskPlanned, ask_of, plan_mask, size_medians, zone_report
from synthesis.contract import FewShotAnomaly, SampleSpec, TrainSplit
from synthesis.geometry import alignment_shift, geometry_of, shift_mask
from synthesis.masks import augment_mask, estimate_foreground

#: Version of the planning rules as a whole (1: masks independent of the caption, anomalies in turn;
#: 2: caption-planned masks, captions chosen by the normal image, category geometry;
#: 3: "missing" captions in aligned categories grow the mask over the named part of the normal image).
PLANNER_VERSION = 3


def sample_seed(seed: int, defect_type: str, index: int) -> int:
    return int(np.random.SeedSequence([seed, zlib.crc32(defect_type.encode()), index]).generate_state(1)[0])


def planner_rules() -> dict[str, object]:
    """Everything that decides a plan besides its inputs, for the generated set's record."""
    return {"version": PLANNER_VERSION, "caption_masks": caption_masks.rules(), "geometry": geometry.table(),
            "caption_choice": {"version": caption_choice.CHOICE_RULE_VERSION, "mask_margin_px": caption_choice.MASK_MARGIN_PX,
                               "neighbours": "ceil(sqrt(candidates))"},
            "missing_parts": {"version": missing_content.MISSING_RULES_VERSION, "part_diff": missing_content.PART_DIFF,
                              "band_share": missing_content.BAND_SHARE, "blur_sigma": missing_content.BLUR_SIGMA,
                              "edge_px": missing_content.EDGE_PX}}


class SamplePlan(BaseModel):
    """What the plan asked of a sample and what it planned (kept in the manifest)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    asked: MaskAsk
    planned: MaskPlanned
    caption_choice: CaptionChoice | None = None


class Planner:
    """Plans samples for one training split (foregrounds, colours and alignments are computed once)."""

    def __init__(self, train: TrainSplit, user_masks: Sequence[tuple[str, np.ndarray]] | None = None,
                 caption: str | None = None):
        if not train.normals:
            raise ValueError(f"{train.category}: the training split has no normal images to synthesize on")
        self.train = train
        self.user_masks = list(user_masks or [])
        if caption is not None and not caption.strip():
            raise ValueError("the caption is empty: give its text, or none to use the training captions")
        self.caption = caption
        self.geometry = geometry_of(train.category)
        self.medians = size_medians([a.mask for a in train.anomalies])
        self._foreground = lru_cache(maxsize=None)(self._foreground_of)
        self._normal_lab = lru_cache(maxsize=256)(lambda i: caption_choice.lab(self.train.normals[i].image))
        self._anomaly_lab = lru_cache(maxsize=None)(lambda i: caption_choice.lab(self.train.anomalies[i].image))
        self._shift = lru_cache(maxsize=None)(self._shift_of)

    def _foreground_of(self, normal_index: int) -> np.ndarray:
        return estimate_foreground(self.train.normals[normal_index].image)

    def _shift_of(self, anomaly_index: int, normal_index: int) -> tuple[int, int]:
        if not self.geometry.aligned:
            return (0, 0)
        return alignment_shift(self.train.anomalies[anomaly_index].image, self.train.normals[normal_index].image)

    def _source(self, defect_type: str, normal_index: int, index: int) -> tuple[int, CaptionChoice]:
        """The training anomaly (its index in the split) that lends this sample its caption and mask."""
        candidates = [i for i, a in enumerate(self.train.anomalies) if a.defect_type == defect_type]
        normal_lab, foreground = self._normal_lab(normal_index), self._foreground(normal_index)
        distances = []
        for i in candidates:
            shift = self._shift(i, normal_index)
            moved, _ = shift_mask(self.train.anomalies[i].mask, shift) if self.train.anomalies[i].mask.any() \
                else (self.train.anomalies[i].mask, shift)
            distances.append(caption_choice.outside_distance(
                normal_lab, caption_choice.shifted(self._anomaly_lab(i), shift), moved, foreground))
        chosen, rank, k = caption_choice.choose(distances, index)
        anomaly = self.train.anomalies[candidates[chosen]]
        return candidates[chosen], CaptionChoice(source=f"{defect_type}/{anomaly.image_id}", rank=rank, neighbours=k,
                                                 candidates=len(candidates), distance=round(distances[chosen], 3))

    def _grown(self, mask: np.ndarray, anomaly_index: int, normal_index: int, shift: tuple[int, int]) -> np.ndarray:
        """``mask`` grown over the rest of the missing part in the normal image (its source's removed look aligned)."""
        removed = caption_choice.shifted(np.asarray(self.train.anomalies[anomaly_index].image), shift)
        normal = self.train.normals[normal_index].image
        return ndimage.binary_fill_holes(missing_content.part_pixels(mask, normal, removed, self._foreground(normal_index)))

    def _mask(self, anomaly_index: int, normal_index: int, ask: MaskAsk, rng: np.random.Generator,
              caption: str = "") -> tuple[np.ndarray, str, MaskPlanned]:
        source: FewShotAnomaly = self.train.anomalies[anomaly_index]
        foreground = self._foreground(normal_index)
        key = f"train:{source.defect_type}/{source.image_id}"
        if self.geometry.aligned:
            moved, (dy, dx) = shift_mask(source.mask, self._shift(anomaly_index, normal_index))
            rows, cols = np.nonzero(moved)  # where the source's crop goes (Crop&Paste reads it)
            origin = f"{key} scale1.00 at{rows.min()},{cols.min()} shift{dy},{dx}"
            mask = moved
            if missing_content.missing_part(caption) is not None:  # the pixels added: "grownN" in the origin
                mask = self._grown(moved, anomaly_index, normal_index, (dy, dx))
                origin += f" grown{int((mask & ~moved).sum())}"
            zones, landed = zone_report(mask, foreground, ask)
            _, components = ndimage.label(mask, structure=np.ones((3, 3)))
            return mask, origin, MaskPlanned(mode="aligned", components=int(components), zones=zones, in_zone=landed,
                                             scale=1.0, shift=(dy, dx))
        if ask.empty:
            g = self.geometry
            mask, steps = augment_mask(source.mask, foreground, rng, scale_range=g.scale_range, flips=g.flips,
                                       quarter_turns=g.quarter_turns)
            scale = next((float(s[5:]) for s in steps.split() if s.startswith("scale")), None)
            return mask, f"{key} {steps}", MaskPlanned(mode="free", components=1, scale=scale)
        mask, steps, planned = plan_mask(source.mask, foreground, rng, ask, self.medians, self.geometry)
        return mask, f"{key} {steps}", planned

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
            choice = None
            source_caption = ""
            if anomalies:
                source_index, choice = self._source(defect_type, normal_index, index)
                source_caption = self.train.anomalies[source_index].caption
            caption = source_caption if self.caption is None else self.caption
            ask = ask_of(caption)
            if self.user_masks:
                mask_name, mask = self.user_masks[index % len(self.user_masks)]
                mask_origin = f"user:{mask_name}"
                zones, landed = zone_report(np.asarray(mask, bool), self._foreground(normal_index), ask)
                _, components = ndimage.label(np.asarray(mask, bool), structure=np.ones((3, 3)))
                planned = MaskPlanned(mode="user", components=int(components), zones=zones, in_zone=landed)
            else:
                mask, mask_origin, planned = self._mask(source_index, normal_index, ask, rng, caption)
            specs.append(
                SampleSpec(
                    defect_type=defect_type,
                    index=index,
                    caption=caption,
                    caption_origin="train" if self.caption is None else "user",
                    normal_id=normal.image_id,
                    mask=np.asarray(mask, dtype=bool),
                    mask_origin=mask_origin,
                    seed=int(rng.integers(0, 2**31 - 1)),
                    plan=SamplePlan(asked=ask, planned=planned, caption_choice=choice),
                )
            )
        return specs

    def normal_image(self, normal_id: str) -> np.ndarray:
        for normal in self.train.normals:
            if normal.image_id == normal_id:
                return normal.image
        raise KeyError(normal_id)
