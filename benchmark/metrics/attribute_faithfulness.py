"""Caption faithfulness by attribute: does each generated defect show the attributes its caption states?

Offline and interpretable, unlike the kNN retrieval proxy: every attribute a caption states
(position, size, count, colour; see :mod:`benchmark.metrics.attribute_checks` for the rules) is
checked on the generated image, its mask and the normal image it was made on. The score is the
share of checked attributes that are satisfied:

* ``per_defect``: the share over the defect type's generated images (None when none of its
  captions states a checkable attribute); ``value``: their unweighted mean (the common rule);
* ``settings["per_kind"]``: the share per attribute kind over all generated images, and
  ``settings["per_kind_per_defect"]`` / ``settings["counts"]`` the breakdown and the numbers
  checked, satisfied and stated-but-not-checkable;
* a set in which no caption states a checkable attribute reports "not applicable" (no value).

The size reference is the category's real annotated defects (the few-shot training third and
the test split; test anomalies are used for evaluation only, as in the kNN metric). What the
checks reach on the real anomalies themselves - the ceiling - is printed by
``scripts/attribute_ceiling.py`` and quoted in the README. The rules are pinned by the rules and
vocabulary versions in the id and settings, and by the sha256 of all their constants, recorded
as the metric's "weights" (a rule-based scorer's parameters, so the leaderboard can check them
like a network's).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from benchmark.metrics import attribute_checks as checks
from benchmark.metrics.attribute_checks import KINDS, AttributeCheck, SizeReference, check_caption
from benchmark.metrics.base import MetricContext, MetricOutput, MetricSpec, progress_bar
from benchmark.metrics.inputs import FidelityInputs
from benchmark.metrics.weights import ResolvedWeights
from benchmark.results import ScoreRange, WeightsRef
from mvtec_caption.attributes import VOCABULARY_VERSION, vocabulary
from synthesis.contract import canonical_hash

#: v1 = check rules 1 on caption vocabulary 2. Any change of either makes a new id.
METRIC_ID = "caption-attribute-faithfulness-v1"
NOT_APPLICABLE = "not applicable: no generated caption states a checkable attribute (position, size, count, colour)"


def rules_ref() -> WeightsRef:
    """The scorer's parameters (check rules and caption vocabulary), pinned by sha256."""
    return WeightsRef(name=f"attribute-rules-v{checks.CHECK_RULES_VERSION}-vocabulary-v{VOCABULARY_VERSION}",
                      source="package: benchmark/metrics/attribute_checks.py + mvtec_caption/attributes.py",
                      sha256=canonical_hash({"rules": checks.rules(), "vocabulary": vocabulary()}))


def share(results: Iterable[AttributeCheck]) -> float | None:
    decided = [c.satisfied for c in results if c.satisfied is not None]
    return sum(decided) / len(decided) if decided else None


def tally(results: Iterable[AttributeCheck]) -> dict[str, int]:
    results = list(results)
    return {"checked": sum(c.satisfied is not None for c in results), "satisfied": sum(c.satisfied is True for c in results),
            "not_checkable": sum(c.satisfied is None for c in results)}


def summarise(per_defect_checks: Mapping[str, list[AttributeCheck]]) -> dict[str, Any]:
    """Shares per defect type, per kind, per kind and defect type, and the counts behind them."""
    everything = [c for found in per_defect_checks.values() for c in found]
    return {
        "per_defect": {d: share(found) for d, found in per_defect_checks.items()},
        "per_kind": {kind: share(c for c in everything if c.kind == kind) for kind in KINDS},
        "per_kind_per_defect": {kind: {d: share(c for c in found if c.kind == kind) for d, found in per_defect_checks.items()}
                                for kind in KINDS},
        "counts": {kind: tally(c for c in everything if c.kind == kind) for kind in KINDS},
    }


def _compute(inputs: FidelityInputs, ctx: MetricContext, weights: Mapping[str, ResolvedWeights]) -> MetricOutput:
    reference = SizeReference.from_masks([item.mask for group in (inputs.real_train, inputs.real_test)
                                          for items in group.values() for item in items])
    per_defect_checks: dict[str, list[AttributeCheck]] = defaultdict(list)
    for defect in progress_bar(inputs.defect_types, ctx, "attribute checks"):
        for item in inputs.generated[defect]:
            per_defect_checks[defect] += check_caption(item.caption, item.image, item.mask, item.normal, reference)
    summary = summarise({d: per_defect_checks[d] for d in inputs.defect_types})
    missing_normals = sum(item.normal is None for d in inputs.defect_types for item in inputs.generated[d])
    settings = {key: summary[key] for key in ("per_kind", "per_kind_per_defect", "counts")}
    settings.update(size_reference={"medians": reference.medians, "n_real_defects": reference.n},
                    generated_without_normal_image=missing_normals)
    return MetricOutput(summary["per_defect"], settings, extra_weights=[rules_ref()],
                        reason=None if any(v is not None for v in summary["per_defect"].values()) else NOT_APPLICABLE)


ATTRIBUTE_FAITHFULNESS = MetricSpec(
    id=METRIC_ID,
    name="Caption faithfulness by attribute (rule-based checks of position, size, count and colour)",
    description="Share of the attributes stated in the generated images' captions that the image and mask satisfy.",
    settings={"rules": checks.rules(), "metric_version": 1, "check_rules_version": checks.CHECK_RULES_VERSION,
              "vocabulary_version": VOCABULARY_VERSION,
              "per_defect": "share of satisfied attributes among the checkable ones stated for the type's images",
              "not_checkable": "stated attributes the rules cannot check (e.g. 'front', 'transparent') are counted "
                               "apart and left out of the shares",
              "normal_image": "the generated sample's normal source image (generated sets record normal_id)",
              "published_anchor": None},
    needs_weights=(), compute=_compute, value_range=ScoreRange(0.0, 1.0, "a share of the checkable stated attributes"),
)
