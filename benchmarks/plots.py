"""Plots of a benchmark (PNG, matplotlib's Agg backend): the final result, Figure 1, curves.

- ``final.png``: the result itself. Per env, every teacher's final loss and accuracy on
  the unseen tasks of the hardest distribution: the mean (dot) with its 95% t-interval
  (whisker) and each seed (small circles), teachers ordered by mean loss, the baseline
  ``none`` in black with a dashed line at its mean.
- ``adaptation.png``: the paper's Figure 1. Loss (top) and accuracy (bottom) on the
  unseen tasks against inner gradient steps, one column per env.
- ``sample_efficiency.png``: the target loss (the fixed hardest validation tasks) over
  training, and its area under the curve per teacher (dot and whisker, as ``final.png``).
- ``compute.png``: the target loss over the FLOPs of meta-training (the compute each run
  spent, :mod:`~metacurriculum.benchmarks.costs`), with the equal compute ``C`` that
  every run reached marked, and the target loss at ``C`` per teacher (dot and whisker);
  drawn when the runs recorded their compute.
- ``omega.png``: ω over training, a panel per teacher (and per coordinate of a vector ω):
  each seed's ω as the teacher set it at every env step (thin) and their mean (thick),
  from the first step on (the value at reset, before the teacher acted, is not drawn).
- ``training_losses.png``: the normalised validation loss at the current ω (top) and the
  target loss (bottom) over training.

Curves are means over seeds with 95% t-interval bands
(:func:`~metacurriculum.benchmarks.stats.band`); every teacher has its own colour, line
style and marker, and curves that coincide stay visible: Figure 1 draws the teachers
side by side (a small horizontal offset, said on its axis), the training curves put
their markers at staggered steps. Diverged runs
(:data:`~metacurriculum.benchmarks.stats.DIVERGENCE_RULE`) are not drawn, as they are
left out of the tables; each label says how many runs a curve holds and how many
diverged. Legends are sized to fit the figure. Every file is written atomically.
Needs matplotlib: ``pip install metacurriculum[plots]``.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from metacurriculum.benchmarks.atomic import write_atomic
from metacurriculum.benchmarks.stats import BASELINE, Run, band, load_runs, stack, summarize

logger = logging.getLogger("metacurriculum")

#: Training curves: steps.jsonl column -> axis label.
TRAINING_LABELS = {
    "omega": "ω (classes per task)",
    "val_loss_normalized": "validation loss / chance at ω",
    "target_loss": "target loss (n = n_max)",
}
LINESTYLES = [
    "-",
    (0, (6, 2)),
    (0, (1, 1.2)),
    (0, (6, 2, 1, 2)),
    (0, (3, 1.5)),
    (0, (8, 2, 1, 2, 1, 2)),
]
MARKERS = "osD^vP*Xh<>p"
#: Figure 1's horizontal offset between the first and the last teacher, in inner steps.
DODGE = 0.3


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ImportError("the plots need matplotlib: pip install metacurriculum[plots]") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def teacher_styles(teachers: Sequence[str]) -> dict[str, dict[str, Any]]:
    """A fixed colour, line style and marker per teacher (sorted names); the baseline black
    and dashed."""
    plt = _pyplot()
    colours = plt.get_cmap("tab10").colors
    others = [t for t in sorted(set(teachers)) if t != BASELINE]
    styles = {
        t: {
            "color": colours[i % len(colours)],
            "linestyle": LINESTYLES[i % len(LINESTYLES)],
            "marker": MARKERS[i % len(MARKERS)],
        }
        for i, t in enumerate(others)
    }
    styles[BASELINE] = {"color": "black", "linestyle": (0, (4, 2)), "marker": "x"}
    return styles


def _groups(runs: Sequence[Run]) -> dict[str, dict[str, list[Run]]]:
    """env -> teacher -> runs, baseline first, then teachers by name."""
    out: dict[str, dict[str, list[Run]]] = {}
    for run in runs:
        out.setdefault(run.env_id, {}).setdefault(run.teacher, []).append(run)
    return {
        env: dict(sorted(teachers.items(), key=lambda kv: (kv[0] != BASELINE, kv[0])))
        for env, teachers in out.items()
    }


def _label(teacher: str, members: Sequence[Run]) -> str:
    """``"adaptive (4 seeds, 1 diverged, not drawn)"``: how many runs each curve holds."""
    kept = sum(not r.diverged for r in members)
    diverged = len(members) - kept
    note = f", {diverged} diverged, not drawn" if diverged else ""
    return f"{teacher} ({kept} seed{'s' * (kept != 1)}{note})"


def _band(
    ax: Any,
    x: np.ndarray,
    values: np.ndarray | None,
    label: str,
    style: dict[str, Any],
    markevery: Any = None,
) -> None:
    """The mean of ``values[runs, points]`` with its band; ``None`` (every run diverged)
    draws nothing but keeps the teacher in the legend."""
    if values is None:
        ax.plot([], [], label=label, lw=1.6, **style)
        return
    mean, low, high = band(values)
    ax.plot(x[: len(mean)], mean, label=label, lw=1.6, markersize=4, markevery=markevery, **style)
    ax.fill_between(x[: len(mean)], low, high, color=style["color"], alpha=0.12, lw=0)


def _stack(curves: Sequence[np.ndarray]) -> np.ndarray | None:
    return stack(curves) if curves else None


def _grid(
    rows: int, cols: int, title: str, width: float = 5.0, height: float = 3.3
) -> tuple[Any, np.ndarray]:
    plt = _pyplot()
    size = (max(width * cols, 7.0), height * rows + 1.0)
    fig, axes = plt.subplots(rows, cols, figsize=size, squeeze=False)
    fig.suptitle(title, fontsize=11)
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    return fig, axes


def _legend(fig: Any, handles: list[Any], labels: list[str]) -> float:
    """One legend below the panels, in as many columns (3 at most) as fit the figure's
    width, the figure widened if one column does not; returns its height as a fraction."""
    renderer = fig.canvas.get_renderer()
    for ncol in range(min(len(labels), 3), 0, -1):
        legend = fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=9)
        width = legend.get_window_extent(renderer).width
        if width <= 0.98 * fig.bbox.width or ncol == 1:
            break
        legend.remove()
    if width > 0.98 * fig.bbox.width:
        fig.set_figwidth(width / fig.dpi / 0.96)
    return legend.get_window_extent(renderer).height / fig.bbox.height


def _top(fig: Any) -> float:
    """The top of the panels' area as a fraction of the figure: room for the suptitle
    (tight_layout leaves it none on tall figures, whose first titles it overlapped)."""
    return 1.0 - 0.4 / fig.get_figheight()


def _finish(fig: Any, axes: np.ndarray, path: Path) -> Path:
    """Lay out ``fig`` with the legend of its last panel of the first row (if any) below the
    panels, so that no curve hides behind it, and write it atomically as PNG."""
    handles, labels = axes[0, -1].get_legend_handles_labels()
    bottom = _legend(fig, handles, labels) + 0.01 if labels else 0.0
    fig.tight_layout(rect=(0, bottom, 1, _top(fig)))
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    _pyplot().close(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, buffer.getvalue())


# -- the final result --------------------------------------------------------------------


def _dots(
    ax: Any,
    rows: Sequence[Any],
    runs: dict[str, list[Run]],
    metric: str,
    key: str | Callable[[Run], float],
) -> None:
    """Dot (mean), whisker (t-interval) and seeds of ``metric`` per teacher, top to bottom in
    the order of ``rows``; the baseline black, with a dashed line at its mean. ``key`` is
    the ``done.json`` key of a run's value, or a function of the run."""
    styles = teacher_styles([r.teacher for r in rows])
    for y, row in enumerate(rows):
        estimate = row.metrics[metric].mean
        style = styles[row.teacher]
        members = [r for r in runs[row.teacher] if not r.diverged]
        kept = [key(r) if callable(key) else r.score(key) for r in members]
        seeds = [v for v in kept if math.isfinite(v)]
        jitter = np.linspace(-0.12, 0.12, len(seeds)) if len(seeds) > 1 else np.zeros(len(seeds))
        ax.scatter(seeds, y + jitter, s=14, facecolors="none", edgecolors=style["color"], alpha=0.7)
        if not math.isnan(estimate.low):
            ax.plot([estimate.low, estimate.high], [y, y], color=style["color"], lw=2.2)
        ax.plot([estimate.value], [y], marker="o", markersize=7, color=style["color"])
        if row.teacher == BASELINE and math.isfinite(estimate.value):
            ax.axvline(estimate.value, color="black", ls=(0, (4, 2)), lw=1, alpha=0.6)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([_label(r.teacher, runs[r.teacher]) for r in rows], fontsize=9)
    for tick, row in zip(ax.get_yticklabels(), rows, strict=True):
        tick.set_fontweight("bold" if row.teacher == BASELINE else "normal")
    ax.set_ylim(len(rows) - 0.5, -0.5)  # the first row (the lowest mean) at the top
    ax.grid(alpha=0.3, axis="x")


#: The panels of ``final.png``: metric of the results -> (done.json key, axis label).
FINAL_PANELS = {
    "loss": ("final_loss", "final loss on unseen tasks (lower is better)"),
    "accuracy": ("final_accuracy", "final accuracy on unseen tasks (higher is better)"),
}


def plot_final(runs: Sequence[Run], path: str | Path) -> Path:
    """The result: each teacher's final loss and accuracy, mean with its 95% t-interval and
    the seeds, ordered by mean loss, the baseline marked; a row per env."""
    groups = _groups(runs)
    rows = summarize(runs)
    fig, axes = _grid(
        len(groups),
        len(FINAL_PANELS),
        "Final result: mean over seeds (dot) with its 95% t-interval, each seed a circle; "
        f"'{BASELINE}' in black, its mean dashed",
        width=5.6,
        height=0.45 * max(len(t) for t in groups.values()) + 1.6,
    )
    for r, (env_id, teachers) in enumerate(groups.items()):
        env_rows = [row for row in rows if row.env_id == env_id]
        for c, (metric, (key, label)) in enumerate(FINAL_PANELS.items()):
            _dots(axes[r, c], env_rows, teachers, metric, key)
            axes[r, c].set_xlabel(label)
            axes[r, c].set_title(env_id, fontsize=10)
            if c:
                axes[r, c].set_yticklabels([])
    return _finish(fig, axes, Path(path))


# -- curves -------------------------------------------------------------------------------


def plot_adaptation(runs: Sequence[Run], path: str | Path) -> Path:
    """The paper's Figure 1: loss and accuracy on unseen tasks against inner gradient steps.

    The teachers are drawn side by side, up to ``DODGE`` inner steps apart, so that
    curves that coincide (teachers that trained alike) all stay visible."""
    groups = _groups(runs)
    styles = teacher_styles([r.teacher for r in runs])
    fig, axes = _grid(2, len(groups), "Figure 1: adaptation to unseen tasks of the hardest ω")
    for col, (env_id, teachers) in enumerate(groups.items()):
        offsets = np.linspace(-DODGE / 2, DODGE / 2, len(teachers)) if len(teachers) > 1 else [0.0]
        for offset, (teacher, members) in zip(offsets, teachers.items(), strict=True):
            kept, label = [r for r in members if not r.diverged], _label(teacher, members)
            for row, metric in enumerate(("loss", "accuracy")):
                values = _stack([r.curve(metric) for r in kept])
                x = np.arange(0 if values is None else values.shape[1]) + offset
                _band(axes[row, col], x, values, label, styles[teacher])
        example = next(iter(teachers.values()))[0]
        tasks = example.config["eval_tasks"]
        axes[0, col].set_title(f"{env_id}\n{tasks} unseen tasks", fontsize=10)
        log = _spread(axes[0, col]) > 5  # pre-adaptation losses dwarf the final ones
        axes[0, col].set_yscale("log" if log else "linear")
        axes[0, col].set_ylabel("query loss" + (" (log scale)" if log else ""))
        axes[1, col].set_ylabel("query accuracy")
        note = f" (teachers side by side, up to {DODGE:g} apart, so that equal curves show)"
        axes[1, col].set_xlabel("inner gradient steps" + note * (len(teachers) > 1))
        for ax in axes[:, col]:
            ax.xaxis.get_major_locator().set_params(integer=True)
    return _finish(fig, axes, Path(path))


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over ``window`` points; near the ends the window shrinks to the
    points there are (no padding: an end value is not repeated into the average)."""
    values = np.asarray(values, float)
    if window <= 1 or len(values) < 2:
        return values
    half = window // 2
    sums = np.concatenate([[0.0], np.cumsum(values)])
    i = np.arange(len(values))
    low, high = np.maximum(i - half, 0), np.minimum(i + window - half, len(values))
    return (sums[high] - sums[low]) / (high - low)


def _spread(ax: Any) -> float:
    """Ratio of the largest to the smallest positive value drawn on ``ax``."""
    values = np.concatenate([np.asarray(line.get_ydata(), float) for line in ax.get_lines()])
    values = values[np.isfinite(values) & (values > 0)]
    return float(values.max() / values.min()) if values.size else 1.0


#: The keys of an env's panels, given its runs: :func:`plot_training`'s ``keys`` may be one.
KeysOf = Callable[[Sequence[Run]], Sequence[str]]


def omega_keys(runs: Sequence[Run]) -> list[str]:
    """The ``steps.jsonl`` columns of ω in ``runs`` (of one env): ``["omega"]`` for a
    one-parameter family, else a column per coordinate (``"omega/<name>"``)."""
    named = [key for key in runs[0].steps if key.startswith("omega/")]
    return named or ["omega"]


def plot_training(
    runs: Sequence[Run],
    keys: Sequence[str] | KeysOf,
    path: str | Path,
    title: str,
    points: int = 15,
) -> Path:
    """Columns of ``steps.jsonl`` (``keys``, one row each) against meta-steps, per env.

    ``keys`` may be a function of an env's runs (:func:`omega_keys`): envs with fewer rows
    leave the rest of their column empty. A named column (``"omega/<name>"``) titles
    its panel with the name.

    Each run's curve is smoothed by a moving average over ``len / points`` env steps
    (:func:`smooth`) before the mean over seeds: noisy losses stay readable. Markers sit
    at staggered steps per teacher, so that curves that coincide all show.
    """
    groups = _groups(runs)
    styles = teacher_styles([r.teacher for r in runs])
    rows_of = {
        env: list(keys(_flat(teachers)) if callable(keys) else keys)
        for env, teachers in groups.items()
    }
    fig, axes = _grid(max(map(len, rows_of.values())), len(groups), title)
    for col, (env_id, teachers) in enumerate(groups.items()):
        env_keys = rows_of[env_id]
        steps = max(len(r.steps["meta_step"]) for ms in teachers.values() for r in ms)
        window = max(1, steps // points)
        every = max(1, steps // 8)
        for i, (teacher, members) in enumerate(teachers.items()):
            kept, label = [r for r in members if not r.diverged], _label(teacher, members)
            x = max((r.steps["meta_step"] for r in kept), key=len, default=np.zeros(0))
            markevery = (i * every // len(teachers), every)
            for row, key in enumerate(env_keys):
                values = _stack([smooth(r.steps[key], window) for r in kept])
                _band(axes[row, col], x, values, label, styles[teacher], markevery)
        note = f" (moving average over {window} env steps)" if window > 1 else ""
        for row, key in enumerate(env_keys):
            _, named, name = key.partition("/")
            heading = [env_id + note] * (row == 0) + [f"ω: {name}"] * bool(named)
            if heading:
                axes[row, col].set_title("\n".join(heading), fontsize=10)
            axes[row, col].set_ylabel(TRAINING_LABELS.get(key, name or key))
        axes[len(env_keys) - 1, col].set_xlabel("meta-steps")
        for ax in axes[len(env_keys) :, col]:
            ax.set_visible(False)
    return _finish(fig, axes, Path(path))


def _flat(teachers: dict[str, list[Run]]) -> list[Run]:
    return [run for members in teachers.values() for run in members]


def _as_set(run: Run, key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(meta-steps, ω)`` of a run as the teacher set it: the ω of step k held over the
    meta-steps that step trained, from 0; the reset value (before any choice) replaced by
    the first choice."""
    x, omega = run.steps["meta_step"], run.steps[key].copy()
    if len(omega) > 1:
        omega[0] = omega[1]
    return x, omega


#: Teachers per row of ``omega.png``.
OMEGA_COLUMNS = 4


def plot_omega(runs: Sequence[Run], path: str | Path) -> Path:
    """ω over training: a panel per teacher (a row of panels per coordinate of a vector ω),
    each seed's ω at every env step (thin) and their mean (thick), not smoothed."""
    groups = _groups(runs)
    styles = teacher_styles([r.teacher for r in runs])
    blocks = [(env, key) for env, ts in groups.items() for key in omega_keys(_flat(ts))]
    cols = min(OMEGA_COLUMNS, max(len(t) for t in groups.values()))
    heights = [math.ceil(len(groups[env]) / cols) for env, _ in blocks]
    fig, axes = _grid(
        sum(heights),
        cols,
        "ω chosen by each teacher, as set at every env step: each seed thin, their mean thick",
        width=3.4,
        height=2.4,
    )
    top = 0
    for (env_id, key), height in zip(blocks, heights, strict=True):
        teachers = groups[env_id]
        _, named, name = key.partition("/")
        for i, (teacher, members) in enumerate(teachers.items()):
            ax = axes[top + i // cols, i % cols]
            kept = [r for r in members if not r.diverged]
            curves = [_as_set(r, key) for r in kept]
            for x, omega in curves:
                ax.step(x, omega, where="pre", lw=0.7, alpha=0.45, color=styles[teacher]["color"])
            if len(curves) > 1:
                x = max((c[0] for c in curves), key=len)
                mean, _, _ = band(stack([c[1] for c in curves]))
                ax.step(x[: len(mean)], mean, where="pre", lw=2, color=styles[teacher]["color"])
            heading = f"{env_id}\n" if i == 0 else ""
            ax.set_title(f"{heading}{_label(teacher, members)}", fontsize=9)
            ax.set_ylabel(f"ω: {name}" if named else TRAINING_LABELS["omega"], fontsize=9)
            ax.set_xlabel("meta-steps", fontsize=9)
        for i in range(len(teachers), height * cols):
            axes[top + i // cols, i % cols].set_visible(False)
        _same_limits(axes[top : top + height].flat)
        top += height
    return _finish(fig, axes, Path(path))


def _same_limits(axes: Any) -> None:
    """One y range for the panels of a coordinate, so that their ω compare at a glance."""
    axes = [ax for ax in axes if ax.get_visible()]
    lows, highs = zip(*(ax.get_ylim() for ax in axes), strict=True)
    for ax in axes:
        ax.set_ylim(min(lows), max(highs))


def plot_sample_efficiency(runs: Sequence[Run], path: str | Path, points: int = 15) -> Path:
    """The target loss over training (left) and its area under the curve per teacher (right:
    the mean target loss over training, dot and whisker as in ``final.png``); a row per env."""
    groups = _groups(runs)
    rows = summarize(runs)
    styles = teacher_styles([r.teacher for r in runs])
    fig, axes = _grid(
        len(groups), 2, "Sample efficiency: the target loss (fixed hardest tasks) over training"
    )
    for r, (env_id, teachers) in enumerate(groups.items()):
        steps = max(len(run.steps["meta_step"]) for ms in teachers.values() for run in ms)
        window, every = max(1, steps // points), max(1, steps // 8)
        for i, (teacher, members) in enumerate(teachers.items()):
            kept = [run for run in members if not run.diverged]
            x = max((run.steps["meta_step"] for run in kept), key=len, default=np.zeros(0))
            values = _stack([smooth(run.steps["target_loss"], window) for run in kept])
            markevery = (i * every // len(teachers), every)
            _band(axes[r, 0], x, values, _label(teacher, members), styles[teacher], markevery)
        note = f" (moving average over {window} env steps)" if window > 1 else ""
        axes[r, 0].set_title(env_id + note, fontsize=10)
        axes[r, 0].set_xlabel("meta-steps")
        axes[r, 0].set_ylabel(TRAINING_LABELS["target_loss"])
        env_rows = [row for row in rows if row.env_id == env_id]
        env_rows.sort(key=lambda row: _nan_last(row.metrics["target_auc"].mean.value))
        _dots(axes[r, 1], env_rows, teachers, "target_auc", "target_loss_auc")
        axes[r, 1].set_xlabel("target-loss AUC / meta-steps (lower is sooner)")
        axes[r, 1].set_title("mean target loss over training, 95% t-interval", fontsize=10)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    bottom = _legend(fig, handles, labels) + 0.01 if labels else 0.0
    fig.tight_layout(rect=(0, bottom, 1, _top(fig)))
    return _save(fig, Path(path))


def _nan_last(value: float) -> float:
    return math.inf if math.isnan(value) else value


#: The plots of :func:`plot_all`: file name -> function of (runs, path).
PLOTS: dict[str, Callable[[Sequence[Run], Path], Path]] = {
    "final.png": plot_final,
    "adaptation.png": plot_adaptation,
    "sample_efficiency.png": plot_sample_efficiency,
    "compute.png": lambda runs, path: _compute_plot().plot_compute(runs, path),
    "omega.png": plot_omega,
    "training_losses.png": lambda runs, path: plot_training(
        runs,
        ["val_loss_normalized", "target_loss"],
        path,
        "Validation loss at ω, target loss at n_max",
    ),
}
#: The plots drawn from final numbers alone (a ``runs.csv`` without its run folders).
FROM_FINAL_NUMBERS = ("final.png",)
#: Plots drawn only when the runs have what they show: name -> test of the runs.
DRAWN_WHEN: dict[str, Callable[[Sequence[Run]], bool]] = {
    "compute.png": lambda runs: _compute_plot().recorded_compute(runs)
}


def _compute_plot() -> Any:
    from metacurriculum.benchmarks import compute_plot  # it draws with this module's helpers

    return compute_plot


def plot_all(root: str | Path, out: str | Path | None = None) -> list[Path]:
    """Draw every plot of the finished runs under ``root`` into ``out`` (default ``root/plots``).

    ``root`` may be a ``runs.csv`` whose run folders are gone: then only the plots of
    :data:`FROM_FINAL_NUMBERS` are drawn (default ``out``: ``plots/`` beside it), and the
    others are named in a log message.

    Returns:
        The PNG paths written.
    """
    from metacurriculum.benchmarks.scores import runs_from_csv

    root = Path(root)
    from_csv = root.is_file() and root.suffix == ".csv"
    runs = runs_from_csv(root) if from_csv else load_runs(root)
    out = (root.parent if from_csv else root) / "plots" if out is None else Path(out)
    names = [n for n in PLOTS if n in FROM_FINAL_NUMBERS or not from_csv]
    if from_csv:
        skipped = ", ".join(n for n in PLOTS if n not in names)
        logger.warning("%s holds final numbers only: %s need the run folders", root, skipped)
    for name, drawn in DRAWN_WHEN.items():
        if name in names and not drawn(runs):
            names.remove(name)
            logger.info("%s is not drawn: no run under %s recorded its compute", name, root)
    return [PLOTS[name](runs, out / name) for name in names]
