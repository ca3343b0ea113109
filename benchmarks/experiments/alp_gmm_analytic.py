"""Why ALP-GMM does not find the frontier on the three-dimensional analytic student.

Not a test (pytest collects only ``test_*.py``): the measurement the README quotes. Per
seed and budget, one episode of ``alp-gmm`` on ``MetaCurriculum-AnalyticMulti-v0``; it
prints the median distance (in the unit box) from each task whose ALP was measured to the
nearest task before it, the mean ALP, and the target loss at the last step::

    python benchmarks/experiments/alp_gmm_analytic.py --seeds 0 1 2 3 4 --budgets 1000 4000

If far neighbours were the cause, the distances would be large and a longer budget (more
points) would help.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from metacurriculum.envs import make_env
from metacurriculum.teachers import make_teacher

ENV_ID = "MetaCurriculum-AnalyticMulti-v0"


def nearest_distances(tasks: np.ndarray, warmup: int) -> np.ndarray:
    """For each task after ``warmup``, the distance to the nearest task before it."""
    return np.array(
        [np.linalg.norm(tasks[:i] - tasks[i], axis=1).min() for i in range(warmup + 1, len(tasks))]
    )


def measure(seed: int, budget: int) -> dict[str, float]:
    env = make_env(ENV_ID, budget=budget)
    teacher = make_teacher("alp-gmm")
    obs, info = env.reset(seed=seed)
    teacher.reset(env.observation_space, env.action_space, seed=seed)
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(teacher.act(obs, info))
        done = terminated or truncated
    tasks = np.stack(teacher.alp.tasks)
    alps = np.array([point[-1] for point in teacher.points])
    return {
        "seed": seed,
        "budget": budget,
        "tasks": len(tasks),
        "median_nn_distance": float(np.median(nearest_distances(tasks, teacher.warmup))),
        "mean_alp": float(alps[teacher.warmup + 1 :].mean()),
        "last_target_loss": float(info["target_loss"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--budgets", type=int, nargs="+", default=[1000, 4000])
    args = parser.parse_args()
    for budget in args.budgets:
        for seed in args.seeds:
            print(json.dumps(measure(seed, budget)), flush=True)


if __name__ == "__main__":
    main()
