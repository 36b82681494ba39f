"""The pieces every metric shares: its declaration, the run context, and how a result is labelled.

A metric declares its id, human name, fixed settings and the weights it needs; its compute
function returns one value per defect type. Turning that into a :class:`MetricResult` is done
here, in one place, so the labelling rule cannot drift between metrics: a number is reported
under a standard id only when every weights file it used matched its pinned hash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from benchmark.metrics.cache import FeatureCache
from benchmark.metrics.inputs import FidelityInputs
from benchmark.metrics.weights import ResolvedWeights, WeightsResolver
from benchmark.results import MetricResult, ScoreRange, WeightsRef

AGGREGATION = ("per_defect: one value per defect type with generated images; value: unweighted mean of the "
               "per-defect values that exist (the category's value; averaging categories is left to the leaderboard)")
NOT_COMPARABLE = "not comparable with published values"
#: A standard metric computed on weights that do not match the pin is recorded as ``<id>`` + this.
UNVERIFIED_SUFFIX = "-unverified-weights"
T = TypeVar("T")


@dataclass
class MetricContext:
    resolver: WeightsResolver
    device: str = "cpu"
    cache: FeatureCache = field(default_factory=FeatureCache)
    progress: bool = True
    batch_size: int = 16


@dataclass
class MetricOutput:
    """What a compute function returns: per-defect values plus run-specific settings."""

    per_defect: dict[str, float | None]
    settings: dict[str, Any] = field(default_factory=dict)
    extra_weights: list[WeightsRef] = field(default_factory=list)  # e.g. packaged models used beside the main ones
    reason: str | None = None  # why some defect types have no value


ComputeFn = Callable[[FidelityInputs, MetricContext, Mapping[str, ResolvedWeights]], MetricOutput]


@dataclass(frozen=True)
class MetricSpec:
    """One metric: ``standard`` ones have reference weights; the others are named substitutes.

    ``value_range`` is what the metric's definition allows (per defect type and for the mean);
    the leaderboard rejects any recorded value outside it.
    """

    id: str
    name: str
    description: str
    settings: Mapping[str, Any]
    needs_weights: tuple[str, ...]
    compute: ComputeFn
    value_range: ScoreRange
    standard: bool = True
    substitutes: tuple[str, ...] = ()  # offered when a standard metric cannot be computed
    substitute_for: str | None = None
    higher_is_better: bool = True
    not_comparable: str | None = None  # for substitutes: what differs from the standard metric
    needs_captions: bool = False  # not computed on a set without captions (an imported set)


def build_result(spec: MetricSpec, output: MetricOutput, weights: Mapping[str, ResolvedWeights]) -> MetricResult:
    """Label a computed output: standard, substitute, or standard-computed-with-unverified-weights."""
    problems = [w.problem() for w in weights.values() if not w.verified]
    values = [v for v in output.per_defect.values() if v is not None]
    value = float(np.mean(values)) if values else None
    settings = {**spec.settings, **output.settings, "aggregation": AGGREGATION}
    refs = [w.ref() for w in weights.values()] + list(output.extra_weights)
    if spec.standard and not problems:
        metric_id, name, comparable, reason = spec.id, spec.name, True, None
    elif spec.standard:
        metric_id = f"{spec.id}{UNVERIFIED_SUFFIX}"
        name = f"{spec.name} architecture with unverified weights (not the standard metric)"
        comparable, reason = False, f"{NOT_COMPARABLE}: " + "; ".join(problems)
    else:
        metric_id, name, comparable = spec.id, spec.name, False
        reason = f"{NOT_COMPARABLE}: {spec.not_comparable}" + "".join(f"; {p}" for p in problems)
    if value is None:
        reason = "; ".join(filter(None, [reason, output.reason or "no defect type had enough images for a value"]))
    return MetricResult(
        id=metric_id, name=name, value=value, per_defect=dict(output.per_defect), settings=settings, weights=refs,
        computed=value is not None, comparable=comparable and value is not None, reason=reason,
        higher_is_better=spec.higher_is_better,
    )


def not_computed(spec: MetricSpec, reason: str, weights: Sequence[WeightsRef] = (),
                 defect_types: Sequence[str] = ()) -> MetricResult:
    return MetricResult(
        id=spec.id, name=spec.name, value=None, per_defect={defect: None for defect in defect_types},
        settings={**spec.settings, "aggregation": AGGREGATION},
        weights=list(weights), computed=False, comparable=False, reason=reason, higher_is_better=spec.higher_is_better,
    )


def batched(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def progress_bar(iterable: Sequence[T], ctx: MetricContext, desc: str) -> Iterator[T]:
    from tqdm.auto import tqdm

    return iter(tqdm(iterable, desc=desc, disable=not ctx.progress, leave=False))

