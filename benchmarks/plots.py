"""Plots of a benchmark (PNG, matplotlib's Agg backend): the paper's Figure 1 and training curves.

- ``adaptation.png``: the paper's Figure 1. Loss (top) and accuracy (bottom) on the
  unseen tasks of the hardest distribution against inner gradient steps, one column
  per env, each teacher against no curriculum (``"none"``, black dashed).
- ``omega.png``: ω over training for each teacher; a panel per coordinate, titled with
  its name, when ω is a vector (a family of several parameters).
- ``training_losses.png``: the normalised validation loss at the current ω (top) and
  the target loss on the fixed hardest validation tasks (bottom) over training.

Lines are means over seeds, bands 95% percentile bootstrap intervals of the mean.
Diverged runs (:data:`~metacurriculum.benchmarks.stats.DIVERGENCE_RULE`) are not drawn,
as they are left out of the tables; each legend entry says how many runs a curve holds
and how many diverged.
Needs matplotlib: ``pip install metacurriculum[plots]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from metacurriculum.benchmarks.stats import BASELINE, Run, band, load_runs, stack

#: Training curves: steps.jsonl column -> axis label.
TRAINING_LABELS = {
    "omega": "ω (classes per task)",
    "val_loss_normalized": "validation loss / chance at ω",
    "target_loss": "target loss (n = n_max)",
}


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ImportError("the plots need matplotlib: pip install metacurriculum[plots]") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def teacher_styles(teachers: Sequence[str]) -> dict[str, dict[str, Any]]:
    """A fixed colour per teacher (sorted names, tab10); the baseline black and dashed."""
    plt = _pyplot()
    colours = plt.get_cmap("tab10").colors
    others = [t for t in sorted(set(teachers)) if t != BASELINE]
    styles = {
        t: {"color": colours[i % len(colours)], "linestyle": "-"} for i, t in enumerate(others)
    }
    styles[BASELINE] = {"color": "black", "linestyle": "--"}
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
    ax: Any, x: np.ndarray, values: np.ndarray | None, label: str, style: dict[str, Any]
) -> None:
    """The mean of ``values[runs, points]`` with its band; ``None`` (every run diverged)
    draws nothing but keeps the teacher in the legend."""
    if values is None:
        ax.plot([], [], label=label, lw=1.8, **style)
        return
    mean, low, high = band(values)
    ax.plot(x[: len(mean)], mean, label=label, lw=1.8, **style)
    ax.fill_between(x[: len(mean)], low, high, color=style["color"], alpha=0.15, lw=0)


def _stack(curves: Sequence[np.ndarray]) -> np.ndarray | None:
    return stack(curves) if curves else None


def _grid(rows: int, envs: Sequence[str], title: str) -> tuple[Any, np.ndarray]:
    plt = _pyplot()
    width = max(5.0 * len(envs), 7.0)
    fig, axes = plt.subplots(rows, len(envs), figsize=(width, 3.3 * rows + 1.2), squeeze=False)
    fig.suptitle(title, fontsize=11)
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    return fig, axes


def _finish(fig: Any, axes: np.ndarray, path: Path) -> Path:
    """One legend for the figure, below the panels, so that no curve hides behind it."""
    handles, labels = axes[0, -1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), fontsize=9)
    rows = (len(labels) + 2) // 3
    fig.tight_layout(rect=(0, 0.045 * rows / axes.shape[0] + 0.02, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path


def plot_adaptation(runs: Sequence[Run], path: str | Path) -> Path:
    """The paper's Figure 1: loss and accuracy on unseen tasks against inner gradient steps."""
    groups = _groups(runs)
    styles = teacher_styles([r.teacher for r in runs])
    for i, style in enumerate(styles.values()):  # markers tell apart curves that coincide
        style.update(marker="osD^vP*X"[i % 8], markersize=4)
    fig, axes = _grid(2, list(groups), "Figure 1: adaptation to unseen tasks of the hardest ω")
    for col, (env_id, teachers) in enumerate(groups.items()):
        for teacher, members in teachers.items():
            kept, label = [r for r in members if not r.diverged], _label(teacher, members)
            for row, metric in enumerate(("loss", "accuracy")):
                values = _stack([r.curve(metric) for r in kept])
                x = np.arange(0 if values is None else values.shape[1])
                _band(axes[row, col], x, values, label, styles[teacher])
        example = next(iter(teachers.values()))[0]
        tasks = example.config["eval_tasks"]
        axes[0, col].set_title(f"{env_id}\n{tasks} unseen tasks", fontsize=10)
        log = _spread(axes[0, col]) > 5  # pre-adaptation losses dwarf the final ones
        axes[0, col].set_yscale("log" if log else "linear")
        axes[0, col].set_ylabel("query loss" + (" (log scale)" if log else ""))
        axes[1, col].set_ylabel("query accuracy")
        axes[1, col].set_xlabel("inner gradient steps")
        for ax in axes[:, col]:
            ax.xaxis.get_major_locator().set_params(integer=True)
    return _finish(fig, axes, Path(path))


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over ``window`` points (edges repeat the end values)."""
    if window <= 1 or len(values) < window:
        return values
    padded = np.pad(values, (window // 2, window - 1 - window // 2), mode="edge")
    return np.convolve(padded, np.ones(window) / window, mode="valid")


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
    (so about ``points`` independent values per curve) before the mean over seeds:
    teachers that jump around (random, the bandits) stay readable.
    """
    groups = _groups(runs)
    styles = teacher_styles([r.teacher for r in runs])
    rows_of = {
        env: list(keys(_flat(teachers)) if callable(keys) else keys)
        for env, teachers in groups.items()
    }
    fig, axes = _grid(max(map(len, rows_of.values())), list(groups), title)
    for col, (env_id, teachers) in enumerate(groups.items()):
        env_keys = rows_of[env_id]
        steps = max(len(r.steps["meta_step"]) for ms in teachers.values() for r in ms)
        window = max(1, steps // points)
        for teacher, members in teachers.items():
            kept, label = [r for r in members if not r.diverged], _label(teacher, members)
            x = max((r.steps["meta_step"] for r in kept), key=len, default=np.zeros(0))
            for row, key in enumerate(env_keys):
                values = _stack([smooth(r.steps[key], window) for r in kept])
                _band(axes[row, col], x, values, label, styles[teacher])
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


#: The plots of :func:`plot_all`: file name -> function of (runs, path).
PLOTS: dict[str, Callable[[Sequence[Run], Path], Path]] = {
    "adaptation.png": plot_adaptation,
    "omega.png": lambda runs, path: plot_training(
        runs, omega_keys, path, "ω chosen by each teacher"
    ),
    "training_losses.png": lambda runs, path: plot_training(
        runs,
        ["val_loss_normalized", "target_loss"],
        path,
        "Validation loss at ω, target loss at n_max",
    ),
}


def plot_all(root: str | Path, out: str | Path | None = None) -> list[Path]:
    """Draw every plot of the finished runs under ``root`` into ``out`` (default ``root/plots``).

    Returns:
        The PNG paths written.
    """
    runs = load_runs(root)
    out = Path(root) / "plots" if out is None else Path(out)
    return [plot(runs, out / name) for name, plot in PLOTS.items()]
