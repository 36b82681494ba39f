"""Uncertainty over repetitions: summaries, paired differences and verdicts.

A repetition re-runs everything random in a benchmark cell (synthesizer fit, generation,
detector training) with its own seed, on the same test images. Protocols pin 3 (CPU) to 5 (GPU)
repetitions, so every interval here is built for small n:

* **Summary of one metric**: mean, sample standard deviation (ddof=1) and the 95 % Student-t
  interval ``mean ± t(0.975, n-1) · s / √n``. With n = 3-5 a percentile bootstrap over
  repetitions is degenerate (n = 3 has only 10 distinct resamples, and its interval is known to
  be far too narrow at such n); the t-interval is exact when the repetition values are normal
  and widens honestly with few repetitions (t = 4.30 at n = 3, 2.78 at n = 5).
* **Paired comparison of A and B**: both were run with the same repetition seeds on the same test
  images, so the per-repetition differences ``d_r = A_r − B_r`` remove what the two share
  (test-set difficulty, the seed's draw of normal images); the t-interval of the mean of ``d``
  decides. The test split is fixed, so the verdict is about this benchmark's test images: the
  uncertainty is that of training randomness, which is what differs between re-runs.
* **Verdict**: ``A better`` / ``B better`` when the interval of the difference excludes 0 (in the
  metric's better direction), else ``no detectable difference``. With one repetition there is no
  interval and no verdict other than a tie.

scipy supplies the t distribution; nothing else is needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

CONFIDENCE = 0.95
INTERVAL_METHOD = "student-t interval over repetitions"
INTERVAL_DESCRIPTION = (
    "95 % Student-t interval over the repetitions: mean ± t(0.975, n-1)·s/√n, s the sample standard deviation "
    "(ddof=1). Chosen for n = 3-5 repetitions, where a percentile bootstrap over repetitions is degenerate and too "
    "narrow. Repetitions differ in every random choice (fit, generation, detector training) and share the test "
    "images, so the interval is the uncertainty due to training randomness on this benchmark's fixed test split."
)

Verdict = Literal["A better", "B better", "no detectable difference"]
TIE: Verdict = "no detectable difference"


class Summary(BaseModel):
    """One metric over repetitions (``values`` in repetition order)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n: int
    values: list[float]
    mean: float
    std: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None

    @property
    def half_width(self) -> float | None:
        """Half the interval's width (the interval is symmetric), None with one repetition."""
        return None if self.ci_high is None else (self.ci_high - self.ci_low) / 2


def summarize(values: Sequence[float]) -> Summary:
    """Mean, sample std and the 95 % t-interval of ``values`` (std/interval None when n < 2)."""
    array = np.asarray([float(v) for v in values], dtype=np.float64)
    if array.size == 0:
        raise ValueError("cannot summarize zero values")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"non-finite value among {array.tolist()}")
    n, mean = int(array.size), float(array.mean())
    if n < 2:
        return Summary(n=n, values=array.tolist(), mean=mean)
    from scipy import stats  # here, not at the top: scipy.stats costs a second at import in every job process

    std = float(array.std(ddof=1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, df=n - 1)) * std / math.sqrt(n)
    return Summary(n=n, values=array.tolist(), mean=mean, std=std, ci_low=mean - half, ci_high=mean + half)


class PairedComparison(BaseModel):
    """A − B over paired repetitions, with its interval and verdict."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n: int
    mean_a: float
    mean_b: float
    difference: Summary
    higher_is_better: bool
    verdict: Verdict


def verdict_of(difference: Summary, higher_is_better: bool = True) -> Verdict:
    """``A better`` / ``B better`` only when the interval of A − B excludes zero."""
    if difference.ci_low is None or difference.ci_high is None:
        return TIE
    if difference.ci_low > 0:
        return "A better" if higher_is_better else "B better"
    if difference.ci_high < 0:
        return "B better" if higher_is_better else "A better"
    return TIE


def compare_paired(a: Sequence[float], b: Sequence[float], higher_is_better: bool = True) -> PairedComparison:
    """Paired comparison of two methods' values, repetition by repetition (same seeds, same test images)."""
    if len(a) != len(b):
        raise ValueError(f"paired values differ in length: {len(a)} vs {len(b)}")
    difference = summarize([x - y for x, y in zip(a, b)])
    return PairedComparison(n=len(a), mean_a=float(np.mean(a)), mean_b=float(np.mean(b)), difference=difference,
                            higher_is_better=higher_is_better, verdict=verdict_of(difference, higher_is_better))


def format_summary(summary: Summary | None, digits: int = 3) -> str:
    """``0.773 ± 0.027`` (mean ± half-width of the 95 % interval); the mean alone for one repetition."""
    if summary is None:
        return "–"
    if summary.half_width is None:
        return f"{summary.mean:.{digits}f}"
    return f"{summary.mean:.{digits}f} ± {summary.half_width:.{digits}f}"
