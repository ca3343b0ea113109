"""Intervals and tests over a few seeds: what the results tables and plots compute.

A benchmark has 3 to 10 seeds per teacher. At those sizes the percentile bootstrap
does not hold its level (at 3 seeds its "95%" interval of the mean is ``[min, max]``
and covers the true mean 75% of the time), so the tables use intervals built for
small samples, whose coverage ``tests/benchmarks/test_intervals.py`` measures by
simulation at 3, 5 and 10 seeds:

- the mean: Student's t-interval, ``mean ± t(n-1) · s / √n`` (exactly 95% for normal
  scores at any n ≥ 2);
- the interquartile mean (IQM, ``scipy.stats.trim_mean(x, 0.25)``, rliable's): Yuen's
  trimmed-mean t-interval (the Tukey-McLaughlin standard error from the winsorised
  variance, ``h - 1`` degrees of freedom, ``h`` the values kept): 93-95% for normal
  scores at 4-10 seeds. Below :data:`MIN_IQM_SEEDS` nothing is trimmed and the IQM is
  the mean, so it is not reported;
- a difference against the baseline over paired seeds: the t-interval of the
  differences, with the paired t-test; the Wilcoxon signed-rank test only from
  :data:`MIN_WILCOXON_PAIRS` pairs (its smallest possible two-sided p is ``2 / 2^n``:
  0.25 at 3 pairs, 0.0625 at 5, so below 6 it cannot say anything at 0.05);
- the probability of improvement as rliable defines it: ``P(X > Y) + ½ P(X = Y)`` over
  every pair of runs (the Mann-Whitney U statistic divided by ``n·m``);
- Holm's step-down correction of the p-values of a family of comparisons.

Constant differences (every seed differs from the baseline by the same amount, as a
deterministic teacher does) have no variance to test against: they are flagged, not
given a p-value. Needs scipy: ``pip install metacurriculum[stats]``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

CONFIDENCE = 0.95
#: The IQM trims a quarter from each end: ``int(0.25 * n)`` values, none below 4 seeds.
MIN_IQM_SEEDS = 4
#: With fewer pairs Wilcoxon's smallest two-sided p, ``2 / 2^n``, is above 0.05.
MIN_WILCOXON_PAIRS = 6
IQM_PROPORTION = 0.25


def scipy_stats() -> Any:
    """``scipy.stats``, or an error naming the extra to install."""
    try:
        from scipy import stats
    except ImportError:
        raise ImportError("the statistics need scipy: pip install metacurriculum[stats]") from None
    return stats


@dataclass(frozen=True)
class Estimate:
    """A statistic over seeds with its confidence interval (NaN bounds where none exists)."""

    value: float
    low: float
    high: float


def _t_quantile(df: np.ndarray | float, confidence: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return scipy_stats().t.ppf(0.5 + confidence / 2, df)


def t_intervals(
    values: np.ndarray, *, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means of ``values[..., n]`` over the last axis with their t-intervals, vectorised.

    NaNs are left out (a run that stopped early); fewer than two values give NaN bounds.

    Returns:
        ``(mean, low, high)``, each of ``values.shape[:-1]``.
    """
    values = np.asarray(values, float)
    n = np.sum(np.isfinite(values), axis=-1)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN or one-value slices
        mean = np.nanmean(values, axis=-1)
        half = _t_quantile(n - 1, confidence) * np.nanstd(values, axis=-1, ddof=1) / np.sqrt(n)
    half = np.where(n >= 2, half, np.nan)
    return mean, mean - half, mean + half


def mean_estimate(values: Sequence[float], *, confidence: float = CONFIDENCE) -> Estimate:
    """The mean with its t-interval; NaN bounds below two values, NaN for none."""
    values = np.asarray(values, float)
    if values.size == 0:
        return Estimate(math.nan, math.nan, math.nan)
    mean, low, high = t_intervals(values, confidence=confidence)
    return Estimate(float(mean), float(low), float(high))


def iqm(values: Sequence[float]) -> float:
    """Interquartile mean: the mean of the middle half (``trim_mean(x, 0.25)``, as rliable).

    It trims ``int(0.25 * n)`` values from each end: nothing below 4 values, where it is
    the mean (the tables show "—" there, :func:`iqm_estimate`).
    """
    values = np.asarray(values, float)
    return float(scipy_stats().trim_mean(values, IQM_PROPORTION)) if values.size else math.nan


def trimmed_intervals(
    values: np.ndarray, *, confidence: float = CONFIDENCE, proportion: float = IQM_PROPORTION
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trimmed means of ``values[..., n]`` (last axis) with Yuen's intervals, vectorised.

    ``g = int(proportion * n)`` values are cut from each end, ``h = n - 2g`` kept; the
    standard error is ``sqrt((n - 1) · s_w² / (h (h - 1)))`` with ``s_w²`` the variance of
    the winsorised values, and the quantile is Student's t with ``h - 1`` degrees of
    freedom (Tukey & McLaughlin 1963; Yuen 1974).

    Returns:
        ``(trimmed mean, low, high)``; NaN bounds where ``h < 2``.
    """
    values = np.sort(np.asarray(values, float), axis=-1)
    n = values.shape[-1]
    g = int(proportion * n)
    h = n - 2 * g
    center = values[..., g : n - g].mean(axis=-1)
    if h < 2:
        nan = np.full(center.shape, np.nan)
        return center, nan, nan.copy()
    winsorised = np.clip(values, values[..., g : g + 1], values[..., n - g - 1 : n - g])
    se = np.sqrt((n - 1) * winsorised.var(axis=-1, ddof=1) / (h * (h - 1)))
    half = _t_quantile(h - 1, confidence) * se
    return center, center - half, center + half


def iqm_estimate(values: Sequence[float], *, confidence: float = CONFIDENCE) -> Estimate:
    """The IQM with Yuen's interval; all NaN below :data:`MIN_IQM_SEEDS` values."""
    values = np.asarray(values, float)
    if values.size < MIN_IQM_SEEDS:
        return Estimate(math.nan, math.nan, math.nan)
    center, low, high = trimmed_intervals(values, confidence=confidence)
    return Estimate(float(center), float(low), float(high))


def constant(values: np.ndarray) -> bool:
    """Whether ``values`` are one number up to rounding (``1e-9`` of their size)."""
    values = np.asarray(values, float)
    return bool(values.size) and float(np.ptp(values)) <= 1e-9 * max(
        1.0, float(np.max(np.abs(values)))
    )


@dataclass(frozen=True)
class Comparison:
    """A teacher's metric against the baseline's.

    Attributes:
        pairs: seeds both have (a seed gives both the same initial student and tasks).
        difference: teacher minus baseline, the mean over the pairs with its t-interval.
        improvement_probability: rliable's probability of improvement, over all runs of
            each (not only the pairs): ``P(teacher better) + ½ P(tie)``, where better is
            lower for a loss and higher for an accuracy.
        paired_t_p: two-sided p of the paired t-test (NaN: fewer than 2 pairs, or
            ``zero_variance``).
        wilcoxon_p: two-sided p of the Wilcoxon signed-rank test (NaN below
            :data:`MIN_WILCOXON_PAIRS` pairs, or ``zero_variance``).
        welch_p: two-sided p of Welch's unpaired t-test over all runs of each.
        zero_variance: every pair differs by the same amount: no spread to test against.
        paired_t_holm: ``paired_t_p`` Holm-adjusted over its family (set by the caller).
        wilcoxon_holm: ``wilcoxon_p`` Holm-adjusted over its family.
    """

    pairs: int
    difference: Estimate
    improvement_probability: float
    paired_t_p: float
    wilcoxon_p: float
    welch_p: float
    zero_variance: bool
    paired_t_holm: float = math.nan
    wilcoxon_holm: float = math.nan


def compare(
    values: dict[int, float], baseline: dict[int, float], *, lower_is_better: bool
) -> Comparison:
    """Compare ``values`` (seed -> score) with ``baseline``'s, pairing equal seeds."""
    seeds = sorted(set(values) & set(baseline))
    d = np.array([values[s] - baseline[s] for s in seeds], float)
    difference = mean_estimate(d)
    zero_variance = d.size >= 2 and constant(d)
    paired_t = wilcoxon = math.nan
    if d.size >= 2 and not zero_variance:
        stats = scipy_stats()
        paired_t = float(stats.ttest_1samp(d, 0.0).pvalue)
        if d.size >= MIN_WILCOXON_PAIRS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # ties and zeros
                wilcoxon = float(stats.wilcoxon(d).pvalue)
    x, y = np.array(list(values.values()), float), np.array(list(baseline.values()), float)
    return Comparison(
        pairs=len(seeds),
        difference=difference,
        improvement_probability=improvement_probability(-x, -y)
        if lower_is_better
        else improvement_probability(x, y),
        paired_t_p=paired_t,
        wilcoxon_p=wilcoxon,
        welch_p=welch_p(x, y),
        zero_variance=zero_variance,
    )


def improvement_probability(x: Sequence[float], y: Sequence[float]) -> float:
    """rliable's probability of improvement of ``x`` over ``y`` (higher is better):
    ``P(X > Y) + ½ P(X = Y)`` over every pair, 0.5 for identical samples, NaN for none."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.size == 0 or y.size == 0:
        return math.nan
    if np.array_equal(x, y):
        return 0.5
    greater = (x[:, None] > y[None, :]).sum() + 0.5 * (x[:, None] == y[None, :]).sum()
    return float(greater / (x.size * y.size))


def welch_p(values: Sequence[float], baseline: Sequence[float]) -> float:
    """Two-sided p of Welch's t-test; NaN with fewer than two values on a side or with no
    variance on either (a constant difference is no test)."""
    values, baseline = np.asarray(values, float), np.asarray(baseline, float)
    if values.size < 2 or baseline.size < 2 or (constant(values) and constant(baseline)):
        return math.nan
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(scipy_stats().ttest_ind(values, baseline, equal_var=False).pvalue)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaNs are not in the family).

    The i-th smallest of m p-values becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``:
    rejecting the adjusted p below α keeps the family-wise error rate at α.
    """
    p = np.asarray(pvalues, float)
    out = np.full(p.shape, np.nan)
    tested = np.flatnonzero(np.isfinite(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m = len(order)
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out
