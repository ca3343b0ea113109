"""Aggregation over seeds: per env and teacher, the results table's numbers.

The score of a run is its final evaluation after the last inner step: the mean
post-adaptation loss and accuracy over the unseen tasks of the hardest distribution
(``evaluation.json``). Across seeds, per env, teacher and metric (:data:`METRICS`),
with the intervals and tests of :mod:`~metacurriculum.benchmarks.intervals` (chosen
because their coverage holds at 3-10 seeds, which the percentile bootstrap's does not):

- the mean with its 95% t-interval, and the interquartile mean (IQM) with Yuen's
  interval from 4 seeds on (below that it trims nothing: NaN, "—" in the tables);
- against the baseline ``"none"`` (plain MAML on the hardest tasks), over the seeds both
  have (a seed gives every teacher the same initial student and evaluation tasks): the
  difference of the means with its paired t-interval, rliable's probability of
  improvement, the paired t-test and, from 6 pairs, the Wilcoxon signed-rank test, each
  Holm-adjusted over the teachers compared with the baseline on that env and metric;
  Welch's unpaired test too (``results.csv``). Constant differences are flagged
  ``zero_variance`` instead of tested.

Metrics: the loss and accuracy after adaptation (the score), before adaptation
(``initial_*``), the sample efficiency: the area under the target-loss curve over
training divided by the meta-steps (``target_auc``), and, where the runs recorded their
compute, the target loss at equal compute and its mean up to there
(:data:`~metacurriculum.benchmarks.costs.COMPUTE_METRICS`, at the compute every run of
the env reached: :func:`~metacurriculum.benchmarks.costs.equal_compute`).

Diverged runs (:data:`DIVERGENCE_RULE`) are counted apart and left out of every
statistic. The results files are written by :mod:`~metacurriculum.benchmarks.tables`.
Needs scipy: ``pip install metacurriculum[stats]``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from metacurriculum.benchmarks.costs import COMPUTE_METRICS, at_compute, equal_compute
from metacurriculum.benchmarks.intervals import (
    Comparison,
    Estimate,
    compare,
    holm,
    iqm_estimate,
    mean_estimate,
    t_intervals,
)
from metacurriculum.benchmarks.run_folders import (
    DONE,
    STEPS,
    DamagedRunError,
    read_run,
    read_steps,
    target_loss_auc,
)

BASELINE = "none"


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

#: The metrics where higher is better; for the rest (losses) lower is.
HIGHER_IS_BETTER = frozenset({"accuracy", "initial_accuracy"})

#: How diverged runs enter the results, stated in every table and plot.
DIVERGENCE_RULE = (
    "A run diverged when training stopped on divergence (a NaN or infinite loss, or a "
    "loss above divergence_threshold x chance), or when its final evaluation loss is not "
    "finite or above divergence_threshold x chance (log n_max). Diverged runs are counted "
    "apart and left out of every statistic, in every column alike."
)


class MetricResult(NamedTuple):
    """A metric of a teacher over its seeds, and its comparison with the baseline.

    Attributes:
        mean: the mean with its t-interval.
        iqm: the interquartile mean with Yuen's interval (NaN below 4 seeds).
        versus: the comparison with the baseline (``None`` for the baseline itself).
    """

    mean: Estimate
    iqm: Estimate
    versus: Comparison | None = None


@dataclass(frozen=True)
class TeacherResult:
    """One row of the results table: a teacher on an env, over its seeds.

    Attributes:
        env_id: the env.
        teacher: the teacher.
        seeds: finished runs that did not diverge: every statistic is over these.
        diverged: finished runs that diverged (:data:`DIVERGENCE_RULE`), reported apart.
        metrics: per metric of :data:`METRICS` and of
            :data:`~metacurriculum.benchmarks.costs.COMPUTE_METRICS`: its
            :class:`MetricResult`.
        equal_compute: the env's equal compute ``C`` in FLOPs, where the compute metrics
            are read (NaN when its runs recorded no compute).
    """

    env_id: str
    teacher: str
    seeds: int
    diverged: int
    metrics: dict[str, MetricResult]
    equal_compute: float = math.nan


def _scores(runs: Sequence[Run], key: str | Callable[[Run], float]) -> dict[int, float]:
    """Per seed, the finite values of ``key`` (a ``done.json`` key, or a function of a run)."""
    values = {r.seed: key(r) if callable(key) else r.score(key) for r in runs}
    return {seed: v for seed, v in values.items() if math.isfinite(v)}


def _metric(name: str, values: dict[int, float], base: dict[int, float] | None) -> MetricResult:
    """``values`` over seeds, compared with ``base`` (``None`` for the baseline itself)."""
    x = list(values.values())
    versus = None
    if base is not None:
        versus = compare(values, base, lower_is_better=name not in HIGHER_IS_BETTER)
    return MetricResult(mean_estimate(x), iqm_estimate(x), versus)


def summarize(runs: Sequence[Run], baseline: str = BASELINE) -> list[TeacherResult]:
    """The results table: one :class:`TeacherResult` per env and teacher.

    Rows of an env are sorted by mean final loss, lowest first. Diverged runs
    (:data:`DIVERGENCE_RULE`) are counted in ``diverged`` and left out of every metric
    and test, on the baseline's side too; ``seeds`` counts the rest. The p-values of the
    comparisons with the baseline are Holm-adjusted per env and metric, over the teachers
    compared (:func:`~metacurriculum.benchmarks.intervals.holm`).
    """
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.env_id, run.teacher), []).append(run)
    budgets = {
        env: equal_compute([r for r in runs if r.env_id == env and not r.diverged])
        for env in {r.env_id for r in runs}
    }
    at = {r.folder: at_compute(r, budgets[r.env_id]) for r in runs if not r.diverged}
    keys: dict[str, str | Callable[[Run], float]] = dict(METRICS)
    for name in COMPUTE_METRICS:
        keys[name] = lambda r, name=name: at[r.folder][name]
    rows = []
    for (env_id, teacher), members in groups.items():
        kept = [r for r in members if not r.diverged]
        base = [r for r in groups.get((env_id, baseline), []) if not r.diverged]
        metrics = {
            name: _metric(
                name, _scores(kept, key), None if teacher == baseline else _scores(base, key)
            )
            for name, key in keys.items()
        }
        diverged = len(members) - len(kept)
        rows.append(TeacherResult(env_id, teacher, len(kept), diverged, metrics, budgets[env_id]))
    rows = sorted(rows, key=lambda r: (r.env_id, _nan_last(r.metrics["loss"].mean.value)))
    return _holm_adjusted(rows)


def _holm_adjusted(rows: list[TeacherResult]) -> list[TeacherResult]:
    """``rows`` with each comparison's ``*_holm`` p-values set, per env and metric."""
    for env_id in {r.env_id for r in rows}:
        compared = [r for r in rows if r.env_id == env_id]
        for name in compared[0].metrics:
            family = [r for r in compared if r.metrics[name].versus is not None]
            versus = [r.metrics[name].versus for r in family]
            t_holm = holm([v.paired_t_p for v in versus])
            w_holm = holm([v.wilcoxon_p for v in versus])
            for row, v, t, w in zip(family, versus, t_holm, w_holm, strict=True):
                adjusted = dataclasses.replace(v, paired_t_holm=float(t), wilcoxon_holm=float(w))
                row.metrics[name] = row.metrics[name]._replace(versus=adjusted)
    return rows


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


def band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds of ``values[seeds, points]`` with its 95% t-interval per point.

    NaNs (runs that stopped early) are left out; a point with one seed has its mean as
    both bounds (a line with no band).

    Returns:
        ``(mean, low, high)``, each ``[points]``.
    """
    mean, low, high = t_intervals(np.asarray(values, float).T)
    return mean, np.where(np.isnan(low), mean, low), np.where(np.isnan(high), mean, high)
