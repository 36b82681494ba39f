"""Label and colour fidelity: do the generated images show what their masks label, and no colour the category lacks?

Benchmark-defined diagnostics with no published counterpart (none of the field's benchmarks
measures them), computed for every synthesizer from the generated image, its mask and the
normal image it was made from; no network, no weights. Per defect type: the mean over its
generated images; the category value: the mean over defect types.

``label-fidelity`` (higher is better): the share of the mask where the image visibly differs
    from its normal source. "Visibly" is :mod:`synthesis.fidelity`'s rule: the largest channel
    difference exceeds max(6 levels, 3 x the source's local robust standard deviation in a 9 x 9
    window). A synthesizer that smooths a thin crack away while keeping its mask scores low.
``label-spill`` (lower is better): the share of visibly changed pixels that lie outside the mask.
``label-fidelity-below-floor`` (lower is better): the share of images whose visible share is
    below the pinned floor (:data:`synthesis.fidelity.VISIBLE_FLOOR`): anomalies labelled but
    (almost) invisible.
``colour-added`` (lower is better): per image, the 99th percentile over the mask of the chroma
    (largest minus smallest channel) the image gained over its source, in grey levels.
``colour-added-share`` (lower is better): the share of images in which more than 1 % of the
    mask gained more than ``COLOUR_LEVELS`` levels of chroma (visible colour speckles).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from benchmark.metrics.base import MetricContext, MetricOutput, MetricSpec
from benchmark.metrics.inputs import FidelityInputs, GeneratedItem, images_hash
from benchmark.metrics.weights import ResolvedWeights
from benchmark.results import ScoreRange
from synthesis.colour import added_chroma
from synthesis.fidelity import SETTINGS as VISIBLE_SETTINGS
from synthesis.fidelity import VISIBLE_FLOOR, label_fidelity

COLOUR_LEVELS = 8.0
COLOUR_SHARE = 0.01
DIAGNOSTIC = "benchmark-defined diagnostic without a published counterpart"
#: Per-image values, computed once per defect type for all five metrics (columns of ``_values``).
COLUMNS = ("visible", "spill", "below_floor", "colour_p99", "colour_speckled")


def _row(item: GeneratedItem) -> list[float]:
    fidelity = label_fidelity(item.image, item.normal, item.mask)
    mask = np.asarray(item.mask, dtype=bool)
    gained = added_chroma(item.image, item.normal)[mask]
    colour_p99 = float(np.percentile(gained, 99)) if gained.size else 0.0
    speckled = float(gained.size > 0 and (gained > COLOUR_LEVELS).mean() > COLOUR_SHARE)
    return [fidelity.visible_share, fidelity.spill_share, float(fidelity.visible_share < VISIBLE_FLOOR), colour_p99, speckled]


def _values(items: Sequence[GeneratedItem], ctx: MetricContext) -> np.ndarray:
    """``len(items) x len(COLUMNS)``, cached by content (images, masks, sources) so the five metrics share it."""
    key = images_hash(a for item in items for a in (item.image, np.asarray(item.mask, dtype=bool), item.normal))
    return ctx.cache.get_or_compute("label-colour-fidelity", {"version": 1, "settings": VISIBLE_SETTINGS,
                                                               "colour_levels": COLOUR_LEVELS, "items": key},
                                    lambda: np.array([_row(item) for item in items], dtype=np.float64).reshape(-1, len(COLUMNS)))


def _per_defect(column: str) -> Callable[[FidelityInputs, MetricContext, Mapping[str, ResolvedWeights]], MetricOutput]:
    def compute(inputs: FidelityInputs, ctx: MetricContext, weights: Mapping[str, ResolvedWeights]) -> MetricOutput:
        per_defect: dict[str, float | None] = {}
        missing = []
        for defect in inputs.defect_types:
            items = inputs.generated[defect]
            if any(item.normal is None for item in items):
                per_defect[defect] = None
                missing.append(defect)
                continue
            per_defect[defect] = float(_values(items, ctx)[:, COLUMNS.index(column)].mean())
        reason = f"no normal source images given for {', '.join(missing)}" if missing else None
        return MetricOutput(per_defect, {"images": {d: len(inputs.generated[d]) for d in inputs.defect_types}}, reason=reason)

    return compute


SHARE = ScoreRange(0.0, 1.0, "a mean of shares")
GREY_LEVELS = ScoreRange(0.0, 255.0, "a chroma difference of 8-bit channels")


def _spec(metric_id: str, name: str, description: str, column: str, higher_is_better: bool,
          settings: Mapping[str, object], value_range: ScoreRange = SHARE) -> MetricSpec:
    return MetricSpec(id=metric_id, name=name, description=description,
                      settings={**settings, "per_defect": "mean over the defect type's generated images"},
                      needs_weights=(), compute=_per_defect(column), value_range=value_range, standard=False,
                      higher_is_better=higher_is_better, not_comparable=DIAGNOSTIC)


LABEL_FIDELITY = _spec("label-fidelity", "Label fidelity: visible share of the mask",
                       "Share of the mask where the image visibly differs from its normal source.",
                       "visible", True, {"visible": VISIBLE_SETTINGS["visible"]})
LABEL_SPILL = _spec("label-spill", "Label spill: share of visible change outside the mask",
                    "Share of the visibly changed pixels that lie outside the mask.",
                    "spill", False, {"visible": VISIBLE_SETTINGS["visible"]})
LABEL_BELOW_FLOOR = _spec("label-fidelity-below-floor", "Share of images below the label-fidelity floor",
                          "Share of generated images whose visible share is below the pinned floor.",
                          "below_floor", False, {"visible": VISIBLE_SETTINGS["visible"], "floor": VISIBLE_FLOOR})
COLOUR_ADDED = _spec("colour-added", "Colour added inside the mask (99th percentile, grey levels)",
                     "Per image, the 99th percentile over the mask of the chroma gained over the normal source.",
                     "colour_p99", False, {"chroma": "max channel - min channel", "percentile": 99}, GREY_LEVELS)
COLOUR_ADDED_SHARE = _spec("colour-added-share", "Share of images with colour speckles in the mask",
                           f"Share of images where more than {COLOUR_SHARE:.0%} of the mask gained more than "
                           f"{COLOUR_LEVELS:g} levels of chroma over the normal source.",
                           "colour_speckled", False,
                           {"chroma": "max channel - min channel", "levels": COLOUR_LEVELS, "mask_share": COLOUR_SHARE})

#: Diagnostics every benchmark run computes beside its protocol's fidelity metrics (cheap, no weights):
#: adding them changes no protocol and no protocol hash.
DIAGNOSTICS = (LABEL_FIDELITY, LABEL_SPILL, LABEL_BELOW_FLOOR, COLOUR_ADDED, COLOUR_ADDED_SHARE)
#: Their ids: computed for every synthesizer in every run (re-exported by :mod:`benchmark.metrics.registry`; planning
#: a run reads them here, without importing the torch-based metrics).
DIAGNOSTIC_METRICS = tuple(spec.id for spec in DIAGNOSTICS)
