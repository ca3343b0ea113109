"""A benchmark's ``runs.csv`` read back: runs for the tables and figures, and rliable's format.

``runs.csv`` (written by :func:`~metacurriculum.benchmarks.tables.write_results`) holds
each run's final numbers, so the tables and the final-score figure can be remade from it
alone when the run folders are gone (``metacurriculum table path/to/runs.csv``), and it
converts to the score format of rliable (Agarwal et al. 2021, "Deep RL at the edge of
the statistical precipice"), a dict of algorithm -> ``[runs, tasks]`` array, in one line::

    from metacurriculum.benchmarks.scores import rliable_scores
    scores = rliable_scores("runs/reduced")              # {teacher: [seeds, envs]}

    from rliable import library, metrics                 # pip install rliable
    iqm = lambda x: np.array([metrics.aggregate_iqm(x)])
    estimates, intervals = library.get_interval_estimates(scores, iqm, reps=2000)
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from metacurriculum.benchmarks.stats import Run

RUNS_CSV = "runs.csv"
#: The columns every row of a ``runs.csv`` needs.
REQUIRED = ("env_id", "teacher", "seed", "diverged")


def _csv_path(source: str | PathLike) -> Path:
    path = Path(source)
    return path / RUNS_CSV if path.is_dir() else path


def _value(text: str) -> Any:
    """A cell of ``runs.csv`` as written: a number, a flag, JSON (a vector ω), or text."""
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    try:
        return float(text)
    except ValueError:
        pass
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
    return text


def _rows(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} does not exist; give a benchmark's folder or its runs.csv (written by "
            "`metacurriculum bench` or `metacurriculum table`)."
        ) from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"{path} is not a readable runs.csv ({error}).") from None
    missing = [c for c in REQUIRED if rows and c not in rows[0]]
    if not rows or missing:
        raise ValueError(
            f"{path} holds no runs or lacks the columns {missing}; rewrite it with "
            "`metacurriculum table` on the benchmark's folder."
        )
    return rows


def runs_from_csv(source: str | PathLike) -> list[Run]:
    """The runs of a ``runs.csv`` (or of the one in a folder) as :class:`Run` objects.

    Each run's ``summary`` holds its row's numbers; ``diverged`` is the row's (the
    divergence rule as the benchmark applied it). There are no curves (``evaluation``
    is empty, no ``steps.jsonl``) and the config holds only the env, teacher and seed.

    Raises:
        FileNotFoundError: when there is no such file.
        ValueError: for a file that is not a ``runs.csv``.
    """
    path = _csv_path(source)
    runs = []
    for row in _rows(path):
        summary = {key: _value(text) for key, text in row.items() if key not in REQUIRED}
        summary["diverged"] = row["diverged"] == "True"
        config = {"env_id": row["env_id"], "teacher": row["teacher"], "seed": int(row["seed"])}
        folder = row.get("folder") or f"{row['env_id']}/{row['teacher']}/seed_{row['seed']}"
        runs.append(Run(path.parent / folder, config, summary, {}))
    return sorted(runs, key=lambda r: (r.env_id, r.teacher, r.seed))


def rliable_scores(
    source: str | PathLike,
    metric: str = "final_accuracy",
    *,
    negate: bool = False,
    envs: list[str] | None = None,
) -> dict[str, np.ndarray]:
    """rliable's score dict from a benchmark: ``{teacher: scores[seeds, envs]}``.

    Columns are the env ids, sorted (or ``envs``, in its order); rows the seeds that a
    teacher finished without diverging on every one of them, in seed order (a teacher's
    other seeds are left out with a warning, as the tables leave diverged runs out).

    Args:
        source: a benchmark's folder or its ``runs.csv``.
        metric: a numeric column of ``runs.csv``: ``final_accuracy`` (default: rliable's
            aggregates assume that higher is better), ``final_loss``, ``target_loss_auc``...
        negate: return ``-metric`` (for a loss, so that higher is better).
        envs: the env ids to use as tasks (default: all).

    Raises:
        ValueError: for an unknown metric, or a teacher that did not run on an env.
    """
    runs = [r for r in runs_from_csv(source) if not r.diverged]
    if not runs:
        raise ValueError(f"{_csv_path(source)} holds no run that did not diverge.")
    numeric = {k for r in runs for k, v in r.summary.items() if isinstance(v, float)}
    if metric not in numeric:
        raise ValueError(
            f"metric={metric!r} is not a numeric column; choose one of {sorted(numeric)}."
        )
    tasks = envs or sorted({r.env_id for r in runs})
    values: dict[str, dict[str, dict[int, float]]] = {}
    for run in runs:
        value = run.score(metric)
        if run.env_id in tasks and math.isfinite(value):
            values.setdefault(run.teacher, {}).setdefault(run.env_id, {})[run.seed] = value
    scores = {}
    for teacher, per_env in sorted(values.items()):
        missing = [env for env in tasks if env not in per_env]
        if missing:
            raise ValueError(
                f"teacher {teacher!r} has no finished run on {missing}; pass envs=[...] with "
                "the envs every teacher ran on."
            )
        seeds = sorted(set.intersection(*(set(per_env[env]) for env in tasks)))
        dropped = sorted(set().union(*(set(per_env[env]) for env in tasks)) - set(seeds))
        if dropped:
            warnings.warn(
                f"teacher {teacher!r}: seeds {dropped} are left out (not finished on every env).",
                stacklevel=2,
            )
        array = np.array([[per_env[env][s] for env in tasks] for s in seeds], dtype=float)
        scores[teacher] = -array if negate else array
    return scores
