"""Intervals, paired comparisons and verdicts on hand-made inputs whose answers are known."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from benchmark.statistics import TIE, compare_paired, format_summary, summarize, verdict_of


def test_summary_is_the_student_t_interval() -> None:
    summary = summarize([1.0, 2.0, 3.0])
    assert summary.n == 3 and summary.mean == 2.0 and summary.std == pytest.approx(1.0)
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2) * s / sqrt(n)
    assert summary.ci_low == pytest.approx(2.0 - half) and summary.ci_high == pytest.approx(2.0 + half)
    assert summary.half_width == pytest.approx(half)
    five = summarize([0.70, 0.72, 0.74, 0.76, 0.78])
    assert five.half_width == pytest.approx(stats.t.ppf(0.975, 4) * five.std / math.sqrt(5))
    assert format_summary(summary) == f"2.000 ± {half:.3f}"


def test_one_repetition_has_no_interval_and_bad_values_are_refused() -> None:
    single = summarize([0.5])
    assert single.std is None and single.ci_low is None and single.half_width is None
    assert format_summary(single) == "0.500"
    assert verdict_of(single) == TIE
    with pytest.raises(ValueError, match="zero values"):
        summarize([])
    with pytest.raises(ValueError, match="non-finite"):
        summarize([0.5, float("nan")])


def test_a_consistent_paired_gain_is_a_win() -> None:
    """Differences 0.10, 0.11, 0.09: interval [0.075, 0.125] excludes 0."""
    result = compare_paired([0.80, 0.82, 0.81], [0.70, 0.71, 0.72])
    assert result.difference.mean == pytest.approx(0.10)
    assert result.difference.ci_low == pytest.approx(0.10 - 4.302652729911275 * 0.01 / math.sqrt(3))
    assert result.verdict == "A better"
    assert compare_paired([0.70, 0.71, 0.72], [0.80, 0.82, 0.81]).verdict == "B better"


def test_a_difference_within_the_seed_spread_is_a_tie() -> None:
    """Mean difference 0.017 with differences 0.05, -0.10, 0.10: the interval spans 0, so it is a tie."""
    result = compare_paired([0.80, 0.70, 0.90], [0.75, 0.80, 0.80])
    assert result.difference.ci_low < 0 < result.difference.ci_high
    assert result.verdict == TIE


def test_pairing_removes_what_both_methods_share() -> None:
    """Unpaired, these overlap completely (seed effects of ±0.1); paired, A is ahead by 0.02 every time."""
    b = [0.60, 0.80, 0.70]
    a = [x + 0.02 + e for x, e in zip(b, (0.001, -0.001, 0.0))]
    assert summarize(a).ci_low < summarize(b).ci_high  # the two intervals overlap
    assert compare_paired(a, b).verdict == "A better"


def test_lower_is_better_metrics_flip_the_verdict() -> None:
    assert compare_paired([0.30, 0.31, 0.29], [0.50, 0.52, 0.51], higher_is_better=False).verdict == "A better"
    with pytest.raises(ValueError, match="differ in length"):
        compare_paired([0.1, 0.2], [0.1])
