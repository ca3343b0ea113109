"""Aggregation over seeds: per env and teacher, mean and IQM with bootstrap CIs, Welch tests.

The score of a run is its final evaluation after the last inner step: the mean
post-adaptation loss and accuracy over the unseen tasks of the hardest distribution
(``evaluation.json``). Across seeds, per env and teacher:

- the mean and the interquartile mean (IQM, ``scipy.stats.trim_mean(x, 0.25)``: robust
  to one bad seed), each with a 95% percentile bootstrap confidence interval
  (``scipy.stats.bootstrap``, 2000 resamples, seeded, so reports are reproducible);
- Welch's t-test (``scipy.stats.ttest_ind(equal_var=False)``) of each teacher against
  the baseline ``"none"`` (plain MAML on the hardest tasks), two-sided p-value;
- paired tests against the baseline over the seeds both have: every teacher of a seed
  starts from the same student and is evaluated on the same tasks, so the paired
  t-test (``ttest_rel``) and the Wilcoxon signed-rank test (``wilcoxon``) compare
  like with like.

Metrics (:data:`METRICS`): the loss and accuracy after adaptation (the score), before
adaptation (``initial_*``), and the sample efficiency: the area under the target-loss
curve over training divided by the meta-steps (``target_auc``).

Diverged runs (:data:`DIVERGENCE_RULE`) are counted apart and left out of every
statistic. One seed gives a CI of the value itself and no p-value (NaN); constant
values give a zero-width CI. The results files are written by
:mod:`~metacurriculum.benchmarks.tables`. Needs scipy: ``pip install metacurriculum[stats]``.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from metacurriculum.benchmarks.run_folders import (
    DONE,
    STEPS,
    DamagedRunError,
    read_run,
    read_steps,
    target_loss_auc,
)

BASELINE = "none"
RESAMPLES = 2000
CONFIDENCE = 0.95


def _scipy_stats() -> Any:
    try:
        from scipy import stats
    except ImportError:
        raise ImportError("the statistics need scipy: pip install metacurriculum[stats]") from None
    return stats


@dataclass(frozen=True)
class Run:
    """A finished run read back from its folder.

    Attributes:
        folder: the run's folder.
        config: ``config.json`` (env id and settings, teacher, seed, evaluation).
        summary: ``done.json`` (final loss and accuracy, timings).
        evaluation: ``evaluation.json`` (per inner step means and per-task arrays).
    """

    folder: Path
    config: dict[str, Any]
    summary: dict[str, Any]
    evaluation: dict[str, Any]

    @property
    def env_id(self) -> str:
        return self.config["env_id"]

    @property
    def teacher(self) -> str:
        return self.config["teacher"]

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    def curve(self, metric: str) -> np.ndarray:
        """Mean ``"loss"`` or ``"accuracy"`` over unseen tasks, per inner step (0 = before)."""
        return np.array(self.evaluation[f"{metric}_mean"], dtype=float)

    @property
    def name(self) -> str:
        """``<env_id>/<teacher>/seed_<s>``: the folder relative to the benchmark's root."""
        return "/".join(self.folder.parts[-3:])

    def score(self, key: str) -> float:
        """``done.json``'s ``key`` as a float (NaN for null); ``target_loss_auc`` of runs
        made before it was stored is computed from ``steps.jsonl``."""
        value = self.summary.get(key)
        if value is None and key == "target_loss_auc" and key not in self.summary:
            try:
                steps = self.steps
            except (DamagedRunError, OSError):
                return math.nan
            curve = list(zip(steps["meta_step"], steps["target_loss"], strict=True))
            return target_loss_auc(curve)
        return math.nan if value is None else float(value)

    @cached_property
    def diverged(self) -> bool:
        """Whether the run diverged (see :data:`DIVERGENCE_RULE`)."""
        if self.summary.get("diverged"):
            return True
        settings = self.config.get("env_settings", {})
        limit = settings.get("divergence_threshold", 100.0) * math.log(
            max(int(settings.get("n_max", 2)), 2)
        )
        for key in ("final_loss", "final_accuracy", "initial_loss"):
            value = self.summary.get(key)
            if value is None or not math.isfinite(value):
                return True
        return self.summary["final_loss"] > limit

    @cached_property
    def steps(self) -> dict[str, np.ndarray]:
        """``steps.jsonl`` as columns (missing values as NaN).

        Raises:
            DamagedRunError: for a truncated or damaged file, naming it and the fix.
        """
        lines = read_steps(self.folder / STEPS)
        keys = [k for k in lines[0] if k not in ("n_way", "action")]
        try:
            return {
                k: np.array([np.nan if r[k] is None else r[k] for r in lines], float) for k in keys
            }
        except (KeyError, TypeError, ValueError) as error:
            raise DamagedRunError(
                f"{self.folder / STEPS} has lines of different shapes ({error!r}); delete "
                f"{self.folder} and rerun `metacurriculum bench` to redo the run."
            ) from None


def load_runs(root: str | Path) -> list[Run]:
    """Every finished run under ``root``, sorted by env, teacher and seed.

    Unfinished runs are left out, with a warning; so are damaged ones (a warning names
    each folder, what is wrong and the fix; ``bench`` redoes them), and nested
    benchmarks' plots.

    Raises:
        FileNotFoundError: when ``root`` holds no finished run.
    """
    root = Path(root)
    runs, unfinished, damaged = [], 0, []
    for folder in sorted(p for p in root.glob("*/*/seed_*") if p.is_dir()):
        if not (folder / DONE).is_file():
            unfinished += 1
            continue
        try:
            runs.append(Run(folder, *read_run(folder)))
        except DamagedRunError as error:
            damaged.append(str(error))
    if unfinished:
        warnings.warn(
            f"{unfinished} unfinished run(s) under {root} are left out; rerun the benchmark "
            "to finish them.",
            stacklevel=2,
        )
    for reason in damaged:
        warnings.warn(f"a damaged run is left out: {reason}", stacklevel=2)
    if not runs:
        raise FileNotFoundError(
            f"no finished run under {root}; expected <env_id>/<teacher>/seed_<s>/{DONE} "
            "(run `metacurriculum bench --out DIR` first)."
        )
    _warn_mixed_settings(runs)
    return sorted(runs, key=lambda r: (r.env_id, r.teacher, r.seed))


def _warn_mixed_settings(runs: Sequence[Run]) -> None:
    settings: dict[str, set[str]] = {}
    for run in runs:
        keys = ("env_settings", "eval_tasks", "eval_seed")
        key = json.dumps([run.config.get(k) for k in keys], sort_keys=True)
        settings.setdefault(run.env_id, set()).add(key)
    for env_id, found in settings.items():
        if len(found) > 1:
            warnings.warn(
                f"runs of {env_id} were made with {len(found)} different env or evaluation "
                "settings; their comparison mixes them (give each setting its own --out).",
                stacklevel=3,
            )


def iqm(values: Sequence[float]) -> float:
    """Interquartile mean: the mean of the middle 50% (``trim_mean(x, 0.25)``)."""
    values = np.asarray(values, float)
    return float(_scipy_stats().trim_mean(values, 0.25)) if values.size else math.nan


def _iqm_axis(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return _scipy_stats().trim_mean(x, 0.25, axis=axis)


def bootstrap_ci(
    values: Sequence[float],
    statistic: Callable[..., Any] = np.mean,
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``statistic(values)``.

    Args:
        values: one number per seed.
        statistic: vectorised over its ``axis`` argument (``np.mean``, the IQM...).
        confidence: level of the interval.
        resamples: bootstrap resamples.
        seed: seeds the resampling.

    Returns:
        ``(low, high)``; ``(v, v)`` for one value or constant values, NaNs for none.
    """
    values = np.asarray(values, float)
    if values.size == 0:
        return math.nan, math.nan
    if values.size == 1 or np.all(values == values[0]):
        value = float(statistic(values, axis=-1))
        return value, value
    result = _scipy_stats().bootstrap(
        (values,),
        statistic,
        n_resamples=resamples,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def welch_p(values: Sequence[float], baseline: Sequence[float]) -> float:
    """Two-sided p-value of Welch's t-test; NaN with fewer than two values on a side."""
    values, baseline = np.asarray(values, float), np.asarray(baseline, float)
    if values.size < 2 or baseline.size < 2:
        return math.nan
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # zero variance on both sides
        return float(_scipy_stats().ttest_ind(values, baseline, equal_var=False).pvalue)


def paired_p(values: Sequence[float], baseline: Sequence[float]) -> tuple[float, float]:
    """Two-sided p-values of the paired t-test and the Wilcoxon signed-rank test.

    ``values[i]`` and ``baseline[i]`` come from the same seed: the same initial student
    and the same evaluation tasks, so the differences remove what the seeds share. NaN
    with fewer than two pairs, or when every difference is zero.
    """
    values, baseline = np.asarray(values, float), np.asarray(baseline, float)
    if values.size < 2 or np.all(values == baseline):
        return math.nan, math.nan
    stats = _scipy_stats()
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # constant differences
        warnings.simplefilter("ignore", UserWarning)  # Wilcoxon's small-sample notes
        return (
            float(stats.ttest_rel(values, baseline).pvalue),
            float(stats.wilcoxon(values, baseline).pvalue),
        )


@dataclass(frozen=True)
class Estimate:
    """A statistic over seeds with its confidence interval."""

    value: float
    low: float
    high: float


class MetricResult(NamedTuple):
    """A metric of a teacher over its seeds, and its tests against the baseline.

    Attributes:
        mean: the mean with its bootstrap CI.
        iqm: the interquartile mean with its bootstrap CI.
        welch_p: Welch's t-test against the baseline's seeds (unpaired).
        paired_t_p: the paired t-test over the seeds both have.
        wilcoxon_p: the Wilcoxon signed-rank test over the same pairs.
        pairs: how many seeds the paired tests use.
    """

    mean: Estimate
    iqm: Estimate
    welch_p: float
    paired_t_p: float = math.nan
    wilcoxon_p: float = math.nan
    pairs: int = 0


@dataclass(frozen=True)
class TeacherResult:
    """One row of the results table: a teacher on an env, over its seeds.

    Attributes:
        env_id: the env.
        teacher: the teacher.
        seeds: finished runs that did not diverge: every statistic is over these.
        diverged: finished runs that diverged (:data:`DIVERGENCE_RULE`), reported apart.
        metrics: per metric of :data:`METRICS`: its :class:`MetricResult`.
    """

    env_id: str
    teacher: str
    seeds: int
    diverged: int
    metrics: dict[str, MetricResult]


#: The metrics of the results: name -> key of ``done.json``. ``loss`` and ``accuracy``
#: are after adaptation to the unseen tasks (the score), ``initial_*`` before it, and
#: ``target_auc`` the mean target loss over training (sample efficiency).
METRICS = {
    "loss": "final_loss",
    "accuracy": "final_accuracy",
    "initial_loss": "initial_loss",
    "initial_accuracy": "initial_accuracy",
    "target_auc": "target_loss_auc",
}

#: How diverged runs enter the results, stated in every table and plot.
DIVERGENCE_RULE = (
    "A run diverged when training stopped on divergence (a NaN or infinite loss, or a "
    "loss above divergence_threshold x chance), or when its final evaluation loss is not "
    "finite or above divergence_threshold x chance (log n_max). Diverged runs are counted "
    "apart and left out of every statistic, in every column alike."
)


def _scores(runs: Sequence[Run], key: str) -> dict[int, float]:
    """Per seed, the finite values of ``key``."""
    values = {r.seed: r.score(key) for r in runs}
    return {seed: v for seed, v in values.items() if math.isfinite(v)}


def _metric(values: dict[int, float], base: dict[int, float] | None, seed: int) -> MetricResult:
    """``values`` over seeds, tested against ``base`` (``None`` for the baseline itself)."""
    x = np.array(list(values.values()), float)
    mean = Estimate(_mean(x), *bootstrap_ci(x, np.mean, seed=seed))
    robust = Estimate(iqm(x), *bootstrap_ci(x, _iqm_axis, seed=seed))
    if base is None:
        return MetricResult(mean, robust, math.nan)
    pairs = sorted(set(values) & set(base))
    paired = paired_p([values[s] for s in pairs], [base[s] for s in pairs])
    return MetricResult(mean, robust, welch_p(x, list(base.values())), *paired, len(pairs))


def summarize(runs: Sequence[Run], baseline: str = BASELINE, seed: int = 0) -> list[TeacherResult]:
    """The results table: one :class:`TeacherResult` per env and teacher.

    Rows of an env are sorted by final-loss IQM, lowest first. Diverged runs
    (:data:`DIVERGENCE_RULE`) are counted in ``diverged`` and left out of every metric
    and test, on the baseline's side too; ``seeds`` counts the rest.
    """
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.env_id, run.teacher), []).append(run)
    rows = []
    for (env_id, teacher), members in groups.items():
        kept = [r for r in members if not r.diverged]
        base = [r for r in groups.get((env_id, baseline), []) if not r.diverged]
        metrics = {
            name: _metric(
                _scores(kept, key), None if teacher == baseline else _scores(base, key), seed
            )
            for name, key in METRICS.items()
        }
        rows.append(TeacherResult(env_id, teacher, len(kept), len(members) - len(kept), metrics))
    return sorted(rows, key=lambda r: (r.env_id, _nan_last(r.metrics["loss"].iqm.value)))


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if values.size else math.nan


def _nan_last(value: float) -> float:
    return math.inf if math.isnan(value) else value


# -- curves for the plots ------------------------------------------------------------


def stack(curves: Sequence[np.ndarray]) -> np.ndarray:
    """Curves of different lengths (a diverged run stops early) as ``[runs, longest]``, NaN-padded."""
    longest = max(len(c) for c in curves)
    out = np.full((len(curves), longest), np.nan)
    for i, curve in enumerate(curves):
        out[i, : len(curve)] = curve
    return out


def bootstrap_band(
    values: np.ndarray, *, confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds of ``values[seeds, points]`` with a percentile bootstrap band per point.

    NaNs (runs that stopped early) are ignored. One seed gives a zero-width band.

    Returns:
        ``(mean, low, high)``, each ``[points]``.
    """
    values = np.asarray(values, float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        mean = np.nanmean(values, axis=0)
        if values.shape[0] < 2:
            return mean, mean.copy(), mean.copy()
        rng = np.random.default_rng(seed)
        picks = rng.integers(values.shape[0], size=(resamples, values.shape[0]))
        means = np.nanmean(values[picks], axis=1)
        alpha = (1 - confidence) / 2
        low, high = np.nanquantile(means, [alpha, 1 - alpha], axis=0)
    return mean, low, high
