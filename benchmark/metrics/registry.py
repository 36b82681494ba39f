"""Metrics by id, and the single entry point the harness calls.

For every requested id, :func:`compute_fidelity` returns the standard result - computed only
with verified reference weights, otherwise ``computed=False`` with a machine-independent reason
(how to provide the weights is logged) - followed, when the standard one could not be computed, by its named substitutes
(``comparable=False``). A standard metric run on weights that do not match the pinned hash
(``WeightsResolver(verify=False)``) is reported as ``<id>-unverified-weights``, never under the
standard id.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from benchmark.metrics.attribute_faithfulness import ATTRIBUTE_FAITHFULNESS
from benchmark.metrics.base import UNVERIFIED_SUFFIX, MetricContext, MetricSpec, build_result, not_computed
from benchmark.metrics.cache import FeatureCache
from benchmark.metrics.caption_faithfulness import (
    CAPTION_FAITHFULNESS,
    CAPTION_FAITHFULNESS_KNN,
    CAPTION_TYPE_ACCURACY_KNN,
)
from benchmark.metrics.ic_lpips import IC_AD_EFFNET, IC_DFMGAN_EFFNET, IC_LPIPS_AD, IC_LPIPS_DFMGAN
from benchmark.metrics.inception_score import IS, IS_EFFNET
from benchmark.metrics.inputs import FidelityInputs
from benchmark.metrics.kid import KID, KID_EFFNET
from benchmark.metrics.label_fidelity import DIAGNOSTIC_METRICS, DIAGNOSTICS  # noqa: F401 (DIAGNOSTIC_METRICS: re-exported)
from benchmark.metrics.weights import ResolvedWeights, WeightsResolver, WeightsUnavailable
from benchmark.results import MetricResult

logger = logging.getLogger(__name__)
_told: set[str] = set()


def _tell_once(message: str) -> None:
    """Warn once per process (a run repeats the same missing weights for every category and synthesizer)."""
    logger.log(logging.INFO if message in _told else logging.WARNING, message)
    _told.add(message)

METRICS: dict[str, MetricSpec] = {}


def register_metric(spec: MetricSpec) -> MetricSpec:
    if spec.id in METRICS and METRICS[spec.id] is not spec:
        raise ValueError(f"metric {spec.id} is already registered")
    METRICS[spec.id] = spec
    return spec


for _spec in (IS, IS_EFFNET, IC_LPIPS_AD, IC_AD_EFFNET, IC_LPIPS_DFMGAN, IC_DFMGAN_EFFNET,
              CAPTION_FAITHFULNESS, CAPTION_FAITHFULNESS_KNN, CAPTION_TYPE_ACCURACY_KNN, KID, KID_EFFNET,
              ATTRIBUTE_FAITHFULNESS, *DIAGNOSTICS):
    register_metric(_spec)



def get_metric(metric_id: str) -> MetricSpec:
    if metric_id not in METRICS:
        raise KeyError(f"unknown metric {metric_id!r}; known: {', '.join(sorted(METRICS))}")
    return METRICS[metric_id]


def recorded_metric_spec(recorded_id: str) -> MetricSpec | None:
    """The metric a result's metric id was computed by (``<id>-unverified-weights`` included); None if unknown."""
    return METRICS.get(recorded_id.removesuffix(UNVERIFIED_SUFFIX))


def _resolve(spec: MetricSpec, resolver: WeightsResolver) -> dict[str, ResolvedWeights]:
    return {name: resolver.resolve(name) for name in spec.needs_weights}


def compute_metric(spec: MetricSpec, inputs: FidelityInputs, ctx: MetricContext) -> list[MetricResult]:
    """One metric's results: the standard (or substitute) result, plus substitutes when it fails."""
    if spec.needs_captions and inputs.defect_types and not inputs.has_captions:
        reason = "the generated set has no captions (an imported set): nothing to be faithful to"
        return [not_computed(spec, reason, defect_types=inputs.defect_types)] + _substitutes(spec, inputs, ctx)
    try:
        weights = _resolve(spec, ctx.resolver)
    except WeightsUnavailable as err:
        # The full message names this machine's folders: it goes to the log, where the user sees how
        # to provide the weights; the record keeps a reason that is the same on every machine.
        _tell_once(f"{spec.id} not computed: {err}")
        reason = f"reference weights unavailable: {', '.join(spec.needs_weights)} not found or not verified"
        results = [not_computed(spec, reason, defect_types=inputs.defect_types)]
        return results + _substitutes(spec, inputs, ctx)
    if not inputs.defect_types:
        return [not_computed(spec, "no generated images", [w.ref() for w in weights.values()])]
    unverified = [w.problem() for w in weights.values() if not w.verified]
    results = []
    if spec.standard and unverified:
        results.append(not_computed(spec, "reference weights not verified: " + "; ".join(unverified)
                                    + f" (computed as {spec.id}{UNVERIFIED_SUFFIX} instead)",
                                    [w.ref() for w in weights.values()], inputs.defect_types))
    results.append(build_result(spec, spec.compute(inputs, ctx, weights), weights))
    if spec.standard and (unverified or not results[-1].computed):
        results += _substitutes(spec, inputs, ctx)
    return results


def _substitutes(spec: MetricSpec, inputs: FidelityInputs, ctx: MetricContext) -> list[MetricResult]:
    return [result for substitute in spec.substitutes for result in compute_metric(get_metric(substitute), inputs, ctx)]


def compute_fidelity(metric_ids: Sequence[str], inputs: FidelityInputs, resolver: WeightsResolver | None = None,
                     device: str = "cpu", progress: bool = True, cache_dir: Path | None = None,
                     batch_size: int = 16) -> list[MetricResult]:
    """Every requested metric (standard results first, then substitutes), each id reported once."""
    ctx = MetricContext(resolver=resolver or WeightsResolver(), device=device, cache=FeatureCache(cache_dir),
                        progress=progress, batch_size=batch_size)
    results: dict[str, MetricResult] = {}
    for metric_id in metric_ids:
        for result in compute_metric(get_metric(metric_id), inputs, ctx):
            results.setdefault(result.id, result)
    return list(results.values())
