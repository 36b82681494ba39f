"""Fidelity metrics of generated defects, with honest labels.

Standard metrics (``is``, ``ic-lpips-ad``, ``ic-lpips-dfmgan``, ``caption-faithfulness``) are
reported under their ids only when computed with their pinned reference weights; otherwise they
come back ``computed=False`` with the reason, followed by explicitly named substitutes built on
the offline EfficientNet-Lite0 / MiniLM networks (``comparable=False``). Also registered, for
protocols that list them: ``kid`` (with ``kid-effnetlite0-substitute``) and the rule-based
``caption-attribute-faithfulness-v1``. Entry point:
:func:`compute_fidelity`; definitions live in each metric's module docstring.
"""

from benchmark.metrics.base import MetricContext, MetricOutput, MetricSpec
from benchmark.metrics.cache import FeatureCache
from benchmark.metrics.inputs import FidelityInputs, GeneratedItem, RealItem
from benchmark.metrics.registry import (
    DIAGNOSTIC_METRICS,
    METRICS,
    compute_fidelity,
    compute_metric,
    get_metric,
    register_metric,
)
from benchmark.metrics.weights import WEIGHTS, ResolvedWeights, WeightsResolver, WeightsSpec, WeightsUnavailable

__all__ = [
    "DIAGNOSTIC_METRICS", "METRICS", "WEIGHTS", "FeatureCache", "FidelityInputs", "GeneratedItem", "MetricContext", "MetricOutput",
    "MetricSpec", "RealItem", "ResolvedWeights", "WeightsResolver", "WeightsSpec", "WeightsUnavailable",
    "compute_fidelity", "compute_metric", "get_metric", "register_metric",
]
