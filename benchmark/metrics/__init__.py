"""Fidelity metrics of generated defects, with honest labels.

Standard metrics (``is``, ``ic-lpips-ad``, ``ic-lpips-dfmgan``, ``caption-faithfulness``) are
reported under their ids only when computed with their pinned reference weights; otherwise they
come back ``computed=False`` with the reason, followed by explicitly named substitutes built on
the offline EfficientNet-Lite0 / MiniLM networks (``comparable=False``). Also registered, for
protocols that list them: ``kid`` (with ``kid-effnetlite0-substitute``) and the rule-based
``caption-attribute-faithfulness-v1``. Entry point:
:func:`compute_fidelity`; definitions live in each metric's module docstring.

The registry's names (:data:`METRICS`, :func:`compute_fidelity`, ...) are loaded on first use: the registry imports
every metric, torch among them, and a process that only plans a run or does a job without metrics (``job run`` of a
fit) should not pay for that.
"""

from typing import Any

from benchmark.metrics.base import MetricContext, MetricOutput, MetricSpec
from benchmark.metrics.cache import FeatureCache
from benchmark.metrics.inputs import FidelityInputs, GeneratedItem, RealItem
from benchmark.metrics.weights import WEIGHTS, ResolvedWeights, WeightsResolver, WeightsSpec, WeightsUnavailable

__all__ = [
    "DIAGNOSTIC_METRICS", "METRICS", "WEIGHTS", "FeatureCache", "FidelityInputs", "GeneratedItem", "MetricContext", "MetricOutput",
    "MetricSpec", "RealItem", "ResolvedWeights", "WeightsResolver", "WeightsSpec", "WeightsUnavailable",
    "compute_fidelity", "compute_metric", "get_metric", "register_metric",
]

#: Names served from :mod:`benchmark.metrics.registry`, imported when one is first asked for.
_FROM_REGISTRY = ("DIAGNOSTIC_METRICS", "METRICS", "compute_fidelity", "compute_metric", "get_metric", "register_metric")


def __getattr__(name: str) -> Any:
    if name in _FROM_REGISTRY:
        from benchmark.metrics import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
