"""The intervals and tests of the results tables: their coverage at 3-10 seeds, measured by
simulation, and their arithmetic against scipy and rliable's definitions."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats as scipy_stats

from metacurriculum.benchmarks import intervals

SIMULATIONS = 40_000  # the coverage's standard error is 0.0011 at 95%


def coverage(low: np.ndarray, high: np.ndarray, truth: float) -> float:
    return float(np.mean((low <= truth) & (truth <= high)))


@pytest.mark.parametrize("n", [3, 5, 10])
def test_the_t_interval_of_the_mean_covers_95_percent_at_few_seeds(n):
    """Normal scores (a run's final loss over seeds is close to it): the t-interval's
    coverage is its level at every n; the percentile bootstrap's is not."""
    samples = np.random.default_rng(n).normal(0.7, 0.05, size=(SIMULATIONS, n))
    _, low, high = intervals.t_intervals(samples)
    assert coverage(low, high, 0.7) == pytest.approx(0.95, abs=0.006)


def test_the_coverage_check_catches_the_percentile_bootstrap():
    """The same check fails the interval the tables used before: at 3 seeds the percentile
    bootstrap of the mean is about [min, max], which covers 1 - 2 / 2^3 = 75%."""
    rng = np.random.default_rng(3)
    samples = rng.normal(size=(4000, 3))
    picks = rng.integers(3, size=(4000, 1000, 3))
    means = np.take_along_axis(samples[:, None, :], picks, axis=2).mean(axis=2)
    low, high = np.quantile(means, [0.025, 0.975], axis=1)
    assert coverage(low, high, 0.0) == pytest.approx(0.75, abs=0.02)


@pytest.mark.parametrize("n", [4, 5, 10])
def test_yuens_interval_of_the_iqm_covers_about_95_percent(n):
    """The IQM's interval (Yuen's, trimmed-mean t) on symmetric scores: 93-95% measured
    at 4-10 seeds, as the module says; its centre is scipy's trim_mean(x, 0.25)."""
    samples = np.random.default_rng(10 + n).normal(size=(SIMULATIONS, n))
    center, low, high = intervals.trimmed_intervals(samples)
    np.testing.assert_allclose(center[:5], scipy_stats.trim_mean(samples[:5], 0.25, axis=1))
    assert 0.93 <= coverage(low, high, 0.0) <= 0.96


def test_yuens_interval_matches_its_formula_on_known_numbers():
    values = [3.0, 1.0, 2.0, 10.0, 4.0, 5.0, 6.0, 7.0]  # g = 2, h = 4
    winsorised = np.array([3.0, 3.0, 3.0, 6.0, 4.0, 5.0, 6.0, 6.0])
    se = math.sqrt(7 * winsorised.var(ddof=1) / (4 * 3))
    half = scipy_stats.t.ppf(0.975, 3) * se
    estimate = intervals.iqm_estimate(values)
    assert estimate.value == pytest.approx(4.5)
    assert (estimate.low, estimate.high) == pytest.approx((4.5 - half, 4.5 + half))


def test_iqm_is_not_reported_below_four_seeds():
    assert all(math.isnan(v) for v in vars(intervals.iqm_estimate([1.0, 2.0, 4.0])).values())
    assert intervals.iqm([1.0, 2.0, 4.0]) == pytest.approx(7 / 3)  # trim_mean trims nothing
    assert intervals.iqm([100.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, -50.0]) == pytest.approx(3.5)


def test_mean_estimate_matches_scipy_and_says_nothing_with_one_seed():
    values = [0.8, 1.1, 0.9, 1.3]
    low, high = scipy_stats.t.interval(0.95, 3, np.mean(values), scipy_stats.sem(values))
    assert intervals.mean_estimate(values) == intervals.Estimate(
        pytest.approx(np.mean(values)), pytest.approx(low), pytest.approx(high)
    )
    one = intervals.mean_estimate([0.5])
    assert one.value == 0.5 and math.isnan(one.low) and math.isnan(one.high)
    assert intervals.mean_estimate([0.3, 0.3, 0.3]) == intervals.Estimate(0.3, 0.3, 0.3)
    assert math.isnan(intervals.mean_estimate([]).value)


def test_compare_pairs_seeds_and_matches_scipy():
    teacher = {s: v for s, v in enumerate([1.0, 1.2, 0.9, 1.1, 1.05, 0.8, 5.0])}
    base = {s: v for s, v in enumerate([1.4, 1.5, 1.35, 1.6, 1.3, 1.2])}  # no seed 6
    result = intervals.compare(teacher, base, lower_is_better=True)
    a, b = [teacher[s] for s in range(6)], [base[s] for s in range(6)]
    d = np.subtract(a, b)
    assert result.pairs == 6
    assert result.difference.value == pytest.approx(d.mean())
    low, high = scipy_stats.t.interval(0.95, 5, d.mean(), scipy_stats.sem(d))
    assert (result.difference.low, result.difference.high) == pytest.approx((low, high))
    assert result.paired_t_p == pytest.approx(scipy_stats.ttest_rel(a, b).pvalue)
    assert result.wilcoxon_p == pytest.approx(scipy_stats.wilcoxon(a, b).pvalue)
    welch = scipy_stats.ttest_ind(list(teacher.values()), b, equal_var=False).pvalue
    assert result.welch_p == pytest.approx(welch)
    assert not result.zero_variance


def test_wilcoxon_is_left_out_below_six_pairs():
    teacher, base = {s: 1.0 + s for s in range(5)}, {s: 2.0 + s * 1.1 for s in range(5)}
    result = intervals.compare(teacher, base, lower_is_better=True)
    assert math.isnan(result.wilcoxon_p) and math.isfinite(result.paired_t_p)


def test_a_constant_difference_is_flagged_not_tested():
    """A deterministic teacher 0.0004 above the baseline on every seed: no p-value (the old
    table said p < 0.001), the difference exact."""
    base = {0: 1.0, 1: 2.0, 2: 3.0}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = intervals.compare(
            {s: v + 0.0004 for s, v in base.items()}, base, lower_is_better=True
        )
        same = intervals.compare(dict(base), base, lower_is_better=True)
    assert result.zero_variance and math.isnan(result.paired_t_p)
    assert result.difference.low == pytest.approx(0.0004)
    assert result.difference.high == pytest.approx(0.0004)
    assert same.zero_variance and same.difference == intervals.Estimate(0.0, 0.0, 0.0)
    assert same.improvement_probability == 0.5
    assert math.isnan(intervals.welch_p([2.0, 2.0], [3.0, 3.0]))


@pytest.mark.parametrize("lower_is_better", [True, False], ids=["loss", "accuracy"])
def test_probability_of_improvement_is_rlibles(lower_is_better):
    """rliable: ``mannwhitneyu(x, y, alternative='greater').statistic / (n m)`` on scores
    where higher is better (a loss is negated)."""
    x, y = np.array([0.6, 0.7, 0.7, 0.9]), np.array([0.7, 0.8, 0.65])
    sign = -1.0 if lower_is_better else 1.0
    expected = scipy_stats.mannwhitneyu(sign * x, sign * y, alternative="greater").statistic / 12
    teacher, base = dict(enumerate(x)), dict(enumerate(y))
    result = intervals.compare(teacher, base, lower_is_better=lower_is_better)
    assert result.improvement_probability == pytest.approx(expected)
    assert intervals.improvement_probability([2.0, 3.0], [1.0]) == 1.0
    assert intervals.improvement_probability([1.0], [1.0, 2.0]) == 0.25


def test_holm_adjusts_a_family_and_leaves_nans_out():
    adjusted = intervals.holm([0.01, 0.04, 0.03, math.nan])
    np.testing.assert_allclose(adjusted[:3], [0.03, 0.06, 0.06])
    assert math.isnan(adjusted[3])
    assert intervals.holm([0.5, 0.9]).tolist() == [1.0, 1.0]
    assert intervals.holm([]).size == 0
