"""``compute.png``: the target loss over the FLOPs of meta-training, and at equal compute.

Drawn by :func:`~metacurriculum.benchmarks.plots.plot_all` (with the helpers, styles and
layout of :mod:`~metacurriculum.benchmarks.plots`) when the runs recorded their compute
(:mod:`~metacurriculum.benchmarks.costs`). Needs matplotlib.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from metacurriculum.benchmarks import plots
from metacurriculum.benchmarks.costs import at_compute, compute_curve
from metacurriculum.benchmarks.stats import Run, summarize


def _on_grid(run: Run, grid: np.ndarray, window: int) -> np.ndarray:
    """``run``'s target loss (smoothed over ``window`` env steps) at the compute of ``grid``,
    interpolated between its env steps; NaN beyond the compute it spent."""
    flops, loss = compute_curve(run)  # type: ignore[misc]
    values = np.interp(grid, flops, plots.smooth(loss, window))
    return np.where(grid <= flops[-1], values, np.nan)


def plot_compute(runs: Sequence[Run], path: str | Path, points: int = 15) -> Path:
    """The target loss over the FLOPs of meta-training (left), the equal compute ``C``
    dashed, and the target loss at ``C`` per teacher (right: dot and whisker, as
    ``final.png``); a row per env. Runs that recorded no compute are left out."""
    groups = plots._groups([r for r in runs if compute_curve(r) is not None])
    rows = summarize(runs)
    styles = plots.teacher_styles([r.teacher for r in runs])
    fig, axes = plots._grid(
        len(groups), 2, "Compute: the target loss (fixed hardest tasks) over meta-training FLOPs"
    )
    for r, (env_id, teachers) in enumerate(groups.items()):
        kept_runs = [run for ms in teachers.values() for run in ms if not run.diverged]
        top = max((compute_curve(run)[0][-1] for run in kept_runs), default=1.0)
        grid = np.linspace(0.0, top, 200)
        # the axis in units of 10^k FLOPs, said in the label (matplotlib's offset text
        # would sit on the label)
        exponent = math.floor(math.log10(top)) if top > 0 else 0
        scale = 10.0**exponent
        steps = max(len(run.steps["meta_step"]) for ms in teachers.values() for run in ms)
        window, every = max(1, steps // points), 25
        for i, (teacher, members) in enumerate(teachers.items()):
            kept = [run for run in members if not run.diverged]
            values = plots._stack([_on_grid(run, grid, window) for run in kept])
            # a teacher's curve ends where its first run ended: past it the mean and its
            # band would be over fewer and fewer seeds, a different statistic
            if values is not None:
                values[:, np.isnan(values).any(axis=0)] = np.nan
            markevery = (i * every // len(teachers), every)
            plots._band(
                axes[r, 0],
                grid / scale,
                values,
                plots._label(teacher, members),
                styles[teacher],
                markevery,
            )
        env_rows = [row for row in rows if row.env_id == env_id and row.teacher in teachers]
        budget = env_rows[0].equal_compute if env_rows else math.nan
        note = f" (moving average over {window} env steps)" if window > 1 else ""
        axes[r, 0].set_title(env_id + note, fontsize=10)
        unit = f" (x 1e{exponent})" if exponent else ""
        axes[r, 0].set_xlabel(
            f"FLOPs of meta-training{unit}; dashed: C, which every run reached\n"
            "(a curve ends where its teacher's first run ended)",
            fontsize=9,
        )
        axes[r, 0].set_ylabel(plots.TRAINING_LABELS["target_loss"])
        if math.isfinite(budget):
            axes[r, 0].axvline(budget / scale, color="grey", ls=(0, (4, 2)), lw=1)
            env_rows.sort(
                key=lambda row: plots._nan_last(row.metrics["target_at_compute"].mean.value)
            )
            at = {run.folder: at_compute(run, budget)["target_at_compute"] for run in kept_runs}
            plots._dots(
                axes[r, 1],
                env_rows,
                teachers,
                "target_at_compute",
                lambda run, at=at: at[run.folder],
            )
        axes[r, 1].set_xlabel(f"target loss at equal compute C = {budget:.3g} FLOPs")
        axes[r, 1].set_title("mean with its 95% t-interval, each seed a circle", fontsize=10)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    bottom = plots._legend(fig, handles, labels) + 0.01 if labels else 0.0
    fig.tight_layout(rect=(0, bottom, 1, plots._top(fig)))
    return plots._save(fig, Path(path))


def recorded_compute(runs: Sequence[Run]) -> bool:
    """Whether any of ``runs`` recorded its compute per step (``compute.png`` needs it)."""
    return any(compute_curve(r) is not None for r in runs)
