"""Caption faithfulness: does each generated defect look like what its caption asked for?

No published anchor exists for this metric; the benchmark defines it. Every variant looks only
at the defect region: a square crop around the mask's bounding box (side = 1.5 x the longest
box side, i.e. 25 % padding each way, at least max(16 px, 1/8 of the image side), shifted to lie
inside the image; an empty mask means the whole image). Values are per defect type (mean over
its generated images) and the category value is the mean over defect types.

``caption-faithfulness`` (standard; needs CLIP ViT-B/32 weights, a local folder or a hub id):
    cosine similarity between CLIP's embedding of the crop and of the asked caption (truncated
    to CLIP's 77 tokens), i.e. CLIPScore without its 2.5 rescaling and clipping at 0. Higher is
    better.

``caption-faithfulness-knn`` (offline substitute; EfficientNet-Lite0 + all-MiniLM-L6-v2):
    the crop is embedded with EfficientNet-Lite0 (global-average-pooled head features, L2
    normalised, 224 px) and compared with the same embedding of every real anomaly of the
    category that has a caption (training *and* test split, all defect types; test anomalies are
    used here for evaluation only, a synthesizer never sees them). Its k = 5 nearest real crops
    (cosine) vote with weights max(cos, 0) (uniform if all are <= 0); the score is the weighted
    mean MiniLM cosine similarity between the asked caption and the neighbours' captions.
    It measures whether the generated region *looks like real defects that were described the
    way this one was asked for*. Limits: it inherits EfficientNet-Lite0's ImageNet notion of
    visual similarity (texture and colour more than defect semantics); it is bounded by how
    much captions differ within the category (when all captions are alike, every image scores
    high, so the chance level - asked caption against random real captions - is high too); it
    rewards reproducing a training anomaly whose caption was asked (memorisation is measured
    by the IC diversity metrics instead); with few real anomalies the neighbours are few and
    the score is noisy. Compare it only between synthesizers on the same category and protocol.

``caption-type-accuracy-knn`` (offline companion): the fraction of generated crops whose
    weighted neighbour vote (same neighbours, all real anomalies, captioned or not; ties go to
    the type of the nearest tied neighbour) names the defect type the image was generated for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from benchmark.metrics import effnet
from benchmark.metrics.base import MetricContext, MetricOutput, MetricSpec
from benchmark.metrics.inputs import FidelityInputs, Item, images_hash, items_hash
from benchmark.metrics.weights import ResolvedWeights
from benchmark.results import ScoreRange

EFFNET = "efficientnet-lite0-imagenet"
MINILM = "all-minilm-l6-v2"
CLIP = "clip-vit-base-patch32"
K = 5
PAD = 0.25
CROP = {"box": "square around the mask bounding box", "padding_per_side": PAD,
        "min_side": "max(16 px, image side / 8)", "empty_mask": "whole image"}


# ---- crops ----------------------------------------------------------------------------------
def defect_box(mask: np.ndarray, pad: float = PAD) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the padded square crop around the mask (see the docstring)."""
    height, width = mask.shape
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return 0, height, 0, width
    longest = max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)
    side = int(round(longest * (1 + 2 * pad)))
    side = min(max(side, 16, round(min(height, width) / 8)), height, width)
    centre_y, centre_x = (ys.min() + ys.max() + 1) / 2, (xs.min() + xs.max() + 1) / 2
    top = int(np.clip(round(centre_y - side / 2), 0, height - side))
    left = int(np.clip(round(centre_x - side / 2), 0, width - side))
    return top, top + side, left, left + side


def defect_crop(item: Item) -> np.ndarray:
    top, bottom, left, right = defect_box(np.asarray(item.mask, dtype=bool))
    return np.ascontiguousarray(np.asarray(item.image)[top:bottom, left:right])


# ---- kNN retrieval (pure) ---------------------------------------------------------------------
@dataclass(frozen=True)
class Neighbours:
    indices: np.ndarray  # N x k, nearest first
    weights: np.ndarray  # N x k, rows sum to 1


def nearest(queries: np.ndarray, references: np.ndarray, k: int = K) -> Neighbours:
    """k nearest references by cosine (rows are unit vectors), weighted by max(cos, 0)."""
    sims = np.asarray(queries, dtype=np.float64) @ np.asarray(references, dtype=np.float64).T
    k = min(k, sims.shape[1])
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    weights = np.clip(np.take_along_axis(sims, order, axis=1), 0.0, None)
    sums = weights.sum(axis=1, keepdims=True)
    weights = np.where(sums > 0, weights / np.where(sums > 0, sums, 1.0), 1.0 / k)
    return Neighbours(order, weights)


def caption_scores(asked: np.ndarray, neighbour_captions: np.ndarray, neighbours: Neighbours) -> np.ndarray:
    """Per query: weighted mean cosine between its asked caption and its neighbours' captions."""
    sims = np.einsum("nd,nkd->nk", asked, neighbour_captions[neighbours.indices])
    return (sims * neighbours.weights).sum(axis=1)


def type_votes(labels: Sequence[str], neighbours: Neighbours) -> list[str]:
    """Weighted majority label of each query's neighbours (ties: the nearest tied neighbour's label)."""
    winners = []
    for row, weights in zip(neighbours.indices, neighbours.weights):
        totals: dict[str, float] = {}
        for index, weight in zip(row, weights):
            totals[labels[index]] = totals.get(labels[index], 0.0) + float(weight)
        best = max(totals.values())
        winners.append(next(labels[i] for i in row if np.isclose(totals[labels[i]], best)))
    return winners


# ---- shared offline embeddings ----------------------------------------------------------------
def _crop_embeddings(items: Sequence[Item], ctx: MetricContext, sha: str) -> np.ndarray:
    if not items:
        return np.zeros((0, 1280))
    return ctx.cache.get_or_compute(
        "effnetlite0-crop-embeddings", {"weights": sha, "crop": CROP, "items": items_hash(items, with_masks=True)},
        lambda: effnet.embeddings([defect_crop(item) for item in items], ctx.device, ctx.batch_size))


def _caption_embeddings(captions: Sequence[str], ctx: MetricContext, sha: str) -> np.ndarray:
    def encode() -> np.ndarray:
        from synthesis.pretrained import load_minilm

        return load_minilm(ctx.device).encode(list(captions), normalize_embeddings=True, convert_to_numpy=True,
                                               show_progress_bar=False).astype(np.float64)

    key = images_hash(np.frombuffer(c.encode(), dtype=np.uint8) for c in captions)
    return ctx.cache.get_or_compute("minilm-captions", {"weights": sha, "captions": key}, encode)


@dataclass(frozen=True)
class _References:
    items: list[Item]
    defect_types: list[str]


def _references(inputs: FidelityInputs, captioned_only: bool) -> _References:
    items, types = [], []
    for group in (inputs.real_train, inputs.real_test):
        for defect in sorted(group):
            for item in group[defect]:
                if item.caption.strip() or not captioned_only:
                    items.append(item)
                    types.append(defect)
    return _References(items, types)


def _neighbours_per_defect(inputs: FidelityInputs, ctx: MetricContext, sha: str, refs: _References
                           ) -> dict[str, Neighbours]:
    ref_embeddings = _crop_embeddings(refs.items, ctx, sha)
    return {defect: nearest(_crop_embeddings(inputs.generated[defect], ctx, sha), ref_embeddings)
            for defect in inputs.defect_types}


def _no_references(inputs: FidelityInputs, what: str) -> MetricOutput:
    return MetricOutput({d: None for d in inputs.defect_types}, reason=f"no real anomalies {what} to retrieve from")


def _compute_knn(inputs: FidelityInputs, ctx: MetricContext, weights: Mapping[str, ResolvedWeights]) -> MetricOutput:
    refs = _references(inputs, captioned_only=True)
    if not refs.items:
        return _no_references(inputs, "with captions")
    neighbours = _neighbours_per_defect(inputs, ctx, weights[EFFNET].sha256, refs)
    ref_captions = _caption_embeddings([item.caption for item in refs.items], ctx, weights[MINILM].sha256)
    per_defect = {}
    for defect, found in neighbours.items():
        asked = _caption_embeddings([item.caption for item in inputs.generated[defect]], ctx, weights[MINILM].sha256)
        per_defect[defect] = float(caption_scores(asked, ref_captions, found).mean())
    return MetricOutput(per_defect, {"references": len(refs.items)})


def _compute_type_accuracy(inputs: FidelityInputs, ctx: MetricContext, weights: Mapping[str, ResolvedWeights]
                           ) -> MetricOutput:
    refs = _references(inputs, captioned_only=False)
    if not refs.items:
        return _no_references(inputs, "")
    neighbours = _neighbours_per_defect(inputs, ctx, weights[EFFNET].sha256, refs)
    per_defect = {defect: float(np.mean([vote == defect for vote in type_votes(refs.defect_types, found)]))
                  for defect, found in neighbours.items()}
    return MetricOutput(per_defect, {"references": len(refs.items), "reference_types": sorted(set(refs.defect_types))})


# ---- standard: CLIP -------------------------------------------------------------------------------
@lru_cache(maxsize=2)
def _clip(folder: str, device: str):  # noqa: ANN202 -> (CLIPModel, CLIPProcessor)
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(folder, local_files_only=True).eval().requires_grad_(False).to(device)
    return model, CLIPProcessor.from_pretrained(folder, local_files_only=True)


def _projected(output: object) -> torch.Tensor:
    """Unit-length projected embeddings (transformers 5 wraps them in ``pooler_output``; 4.x returned a tensor)."""
    features = output if isinstance(output, torch.Tensor) else output.pooler_output  # type: ignore[attr-defined]
    return torch.nn.functional.normalize(features, dim=-1)


@torch.no_grad()
def clip_scores(crops: Sequence[np.ndarray], captions: Sequence[str], folder: str, device: str,
                batch_size: int = 16) -> np.ndarray:
    """Cosine similarity between CLIP embeddings of each crop and its caption."""
    model, processor = _clip(folder, device)
    out = []
    for i in range(0, len(crops), batch_size):
        batch = processor(text=list(captions[i:i + batch_size]), images=list(crops[i:i + batch_size]),
                          return_tensors="pt", padding=True, truncation=True)
        batch = {key: value.to(device) for key, value in batch.items()}
        image = _projected(model.get_image_features(pixel_values=batch["pixel_values"]))
        text = _projected(model.get_text_features(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]))
        out.append((image * text).sum(dim=-1).double().cpu())
    return torch.cat(out).numpy()


def _compute_clip(inputs: FidelityInputs, ctx: MetricContext, weights: Mapping[str, ResolvedWeights]) -> MetricOutput:
    resolved = weights[CLIP]
    per_defect = {}
    for defect in inputs.defect_types:
        items = inputs.generated[defect]
        scores = ctx.cache.get_or_compute(
            "clip-crop-caption", {"weights": resolved.sha256, "crop": CROP,
                                  "items": items_hash(items, with_masks=True, with_captions=True)},
            lambda: clip_scores([defect_crop(it) for it in items], [it.caption for it in items], str(resolved.path),
                                ctx.device, ctx.batch_size))
        per_defect[defect] = float(np.mean(scores))
    return MetricOutput(per_defect)


_KNN_SETTINGS = {"crop": CROP, "image_embedding": "EfficientNet-Lite0 pooled head features, 224 px, L2-normalised",
                 "k": K, "neighbour_weights": "max(cosine, 0), normalised (uniform if all <= 0)",
                 "references": "real anomalies of the category, training and test splits, all defect types",
                 "per_defect": "mean over the defect type's generated images"}

COSINE = ScoreRange(-1.0, 1.0, "a (weighted mean) cosine similarity")
FRACTION = ScoreRange(0.0, 1.0, "a fraction of the generated crops")

CAPTION_FAITHFULNESS = MetricSpec(
    id="caption-faithfulness", name="Caption faithfulness (CLIP ViT-B/32, defect crop vs caption)",
    description="Cosine between CLIP ViT-B/32 embeddings of the defect crop and its caption; benchmark-defined.",
    settings={"crop": CROP, "model": "openai/clip-vit-base-patch32 (transformers)", "score": "cosine similarity",
              "text": "asked caption, truncated to 77 tokens", "per_defect": "mean over the defect type's generated images",
              "published_anchor": None},
    needs_weights=(CLIP,), compute=_compute_clip, value_range=COSINE,
    substitutes=("caption-faithfulness-knn", "caption-type-accuracy-knn"),
    needs_captions=True,
)

CAPTION_FAITHFULNESS_KNN = MetricSpec(
    id="caption-faithfulness-knn",
    name="Caption faithfulness by kNN caption retrieval (EfficientNet-Lite0 crops, MiniLM captions; substitute)",
    description="Weighted MiniLM similarity between the asked caption and the captions of the k nearest real defect crops.",
    settings={**_KNN_SETTINGS, "references": _KNN_SETTINGS["references"] + ", with a caption",
              "score": "weighted mean all-MiniLM-L6-v2 cosine between the asked caption and the neighbours' captions"},
    needs_weights=(EFFNET, MINILM), compute=_compute_knn, value_range=COSINE, standard=False,
    substitute_for="caption-faithfulness", needs_captions=True,
    not_comparable="retrieval through EfficientNet-Lite0 neighbours and MiniLM caption similarity replaces the CLIP "
                   "crop-caption score; its scale depends on the category's caption diversity",
)

CAPTION_TYPE_ACCURACY_KNN = MetricSpec(
    id="caption-type-accuracy-knn",
    name="Defect-type retrieval accuracy of generated crops (EfficientNet-Lite0 kNN; substitute companion)",
    description="Fraction of generated crops whose nearest real defect crops vote for the asked defect type.",
    settings={**_KNN_SETTINGS, "score": "1 if the weighted neighbour vote names the asked defect type, else 0",
              "ties": "the nearest tied neighbour's type"},
    needs_weights=(EFFNET,), compute=_compute_type_accuracy, value_range=FRACTION, standard=False,
    substitute_for="caption-faithfulness",
    not_comparable="an offline retrieval proxy; no published counterpart exists",
)
