"""Learned teachers: train SB3 policies on an analytic profile, rank them with the hand-made.

Each algorithm of :data:`~metacurriculum.teachers.sb3.SB3_ALGOS` is trained with its
settings (its reward and action type included) for its number of env steps, then run as
a teacher on held-out seeds (100..104; training resets from seed 0 on,
SB3's ``seed + i`` and onwards, never those) beside the hand-made teachers, scored as
the harness scores a run (the final loss on unseen tasks of the hardest distribution,
the same tasks for every teacher). The table gives each teacher's mean final loss with
a 95% t-interval, Welch's t-test against ``none`` and ``random``, the gap to the best
hand-made teacher, and for the policies the env steps and the CPU time of training::

    python -m metacurriculum.benchmarks.experiments.sb3_teachers --env MetaCurriculum-AnalyticEasyFirst-v0 \\
        --algos ppo,a2c,sac,dqn --seeds 5 --out docs/sb3_teachers

Writes ``sb3_teachers.json`` and ``sb3_teachers.md`` under ``--out`` (and the policies,
``<algo>.zip``). Needs SB3 and scipy (``pip install metacurriculum[sb3,stats]``).
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

import metacurriculum  # noqa: F401 - registers the ids
from metacurriculum.cli import parse_kwargs
from metacurriculum.envs import make_env
from metacurriculum.teachers import SB3_ALGOS, SB3Teacher, train_sb3_teacher
from metacurriculum.teachers.evaluation import evaluate_teacher

#: Env steps each algorithm trains for (about 160 episodes of the analytic profiles), and
#: the students it trains at once (``n_envs``).
TRAINING = {"ppo": (40_960, 4), "a2c": (40_960, 4), "sac": (30_000, 1), "dqn": (40_000, 1)}
#: The hand-made teachers it is compared with.
HAND_MADE = ("none", "random", "linear", "static", "adaptive", "adaptive-paper")


def ci95(values: list[float]) -> float:
    """Half-width of the 95% t-interval of the mean."""
    from scipy import stats

    if len(values) < 2:
        return math.nan
    return float(
        stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / math.sqrt(len(values))
    )


def welch(values: list[float], other: list[float]) -> float:
    """Two-sided Welch's t-test p-value (NaN when both are constant)."""
    from scipy import stats

    if np.std(values) == 0 and np.std(other) == 0:
        return 0.0 if values[0] != other[0] else math.nan
    return float(stats.ttest_ind(values, other, equal_var=False).pvalue)


def train(
    algo: str,
    env_id: str,
    timesteps: int,
    n_envs: int,
    seed: int,
    out: Path,
    env_kwargs: dict[str, Any],
    overrides: dict[str, Any],
) -> dict[str, Any]:
    """Train one policy; its model, env steps, CPU and wall time, evaluation curve."""
    start, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = train_sb3_teacher(
            algo,
            env_id,
            timesteps,
            seed=seed,
            path=out / f"{algo}.zip",
            n_envs=n_envs,
            env_kwargs=env_kwargs,
            eval_freq=max(timesteps // 8, 1),
            **overrides,
        )
    return {
        "model": model,
        "env_steps": int(model.num_timesteps),
        "cpu_s": time.process_time() - cpu,
        "wall_s": time.perf_counter() - start,
        "curve": model.teacher_eval_curve,
        "warnings": [str(w.message) for w in caught],
    }


def table(rows: dict[str, dict[str, Any]], best_hand_made: str) -> str:
    """Markdown: one row per teacher, the policies first."""
    none, rand = rows["none"]["losses"], rows["random"]["losses"]
    best = float(np.mean(rows[best_hand_made]["losses"]))
    lines = [
        "| teacher | final loss [95% CI] | p vs none | p vs random | gap to "
        f"{best_hand_made} | env steps | CPU s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in rows.items():
        losses = row["losses"]
        mean = float(np.mean(losses))
        steps = f"{row['env_steps']}" if "env_steps" in row else ""
        cpu = f"{row['cpu_s']:.0f}" if "cpu_s" in row else ""
        lines.append(
            f"| {name} | {mean:.3f} [{mean - row['ci']:.3f}, {mean + row['ci']:.3f}] "
            f"| {welch(losses, none):.2g} | {welch(losses, rand):.2g} | {mean - best:+.3f} "
            f"| {steps} | {cpu} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="MetaCurriculum-AnalyticEasyFirst-v0")
    parser.add_argument("--algos", default="ppo,a2c,sac,dqn")
    parser.add_argument("--seeds", type=int, default=5, help="held-out seeds 100..100+N-1")
    parser.add_argument("--train-seed", type=int, default=0)
    parser.add_argument("--timesteps", type=int, help="for every algorithm (default: TRAINING)")
    parser.add_argument("--n-envs", type=int, help="for every algorithm (default: TRAINING)")
    parser.add_argument(
        "--env-kwargs", type=parse_kwargs, default={}, help="env settings, e.g. reward=target"
    )
    parser.add_argument(
        "--algo-kwargs", type=parse_kwargs, default={}, help="model settings, e.g. gamma=0.999"
    )
    parser.add_argument("--eval-tasks", type=int, default=100)
    parser.add_argument("--out", default="runs/sb3_teachers")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # the policies are small; one thread is fastest and fair
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(100, 100 + args.seeds))  # training resets from --train-seed on
    rows: dict[str, dict[str, Any]] = {}
    for algo in args.algos.split(","):
        timesteps, n_envs = TRAINING[algo]
        trained = train(
            algo,
            args.env,
            args.timesteps or timesteps,
            args.n_envs or n_envs,
            args.train_seed,
            out,
            args.env_kwargs,
            args.algo_kwargs,
        )
        env = make_env(args.env, **{**SB3_ALGOS[algo].env_kwargs, **args.env_kwargs})
        episodes = evaluate_teacher(env, SB3Teacher(trained.pop("model")), seeds, args.eval_tasks)
        rows[f"sb3 {algo}"] = {"losses": [e.test_loss for e in episodes], **trained}
        print(
            f"{algo}: {np.mean(rows[f'sb3 {algo}']['losses']):.3f} ({trained['cpu_s']:.0f} s CPU)"
        )
    env = make_env(args.env)
    for name in HAND_MADE:
        rows[name] = {
            "losses": [e.test_loss for e in evaluate_teacher(env, name, seeds, args.eval_tasks)]
        }
    for row in rows.values():
        row["ci"] = ci95(row["losses"])
    best = min(HAND_MADE, key=lambda name: float(np.mean(rows[name]["losses"])))
    text = table(rows, best)
    (out / "sb3_teachers.md").write_text(text + "\n")
    (out / "sb3_teachers.json").write_text(
        json.dumps({"args": vars(args), "seeds": seeds, "rows": rows}, indent=1, default=str) + "\n"
    )
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
