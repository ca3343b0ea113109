"""Measure teachers on the real MAML student at the 'reduced' settings (2 CPU cores).

Not a test (pytest collects only ``test_*.py``): the script behind the thresholds and
the measurements quoted in the teachers' docstrings. One line of JSON per run::

    . .venv/bin/activate && export METACURRICULUM_DATA=/work/shared/data
    python benchmarks/experiments/measure_reduced.py none linear 'adaptive:{"floor": "none"}' \\
        --seeds 0 --out /tmp/measure.jsonl

Each run: ``make_env("MetaCurriculum-Omniglot5-v0", **REDUCED)`` (the benchmark's
'reduced' preset: Table I, 16 filters x 3 blocks, first-order, 200 meta-steps),
the teacher, then the final evaluation on 100 unseen test tasks (seed 0), as the
harness does. A run takes about 50 s on a free core (one torch thread).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch

from metacurriculum.benchmarks.presets import PRESETS
from metacurriculum.envs import make_env
from metacurriculum.teachers import make_teacher, teacher_summary

ENV_ID = "MetaCurriculum-Omniglot5-v0"
#: The benchmark's 'reduced' preset's env settings (Table I included), read from the preset.
REDUCED: dict[str, Any] = dict(PRESETS["reduced"].env_kwargs)


def run(name: str, kwargs: dict[str, Any], seed: int, eval_tasks: int = 100) -> dict[str, Any]:
    """One episode of teacher ``name`` on the reduced student; the trace and the evaluation."""
    env = make_env(ENV_ID, **REDUCED)
    teacher = make_teacher(name, **kwargs)
    start = time.perf_counter()
    obs, info = env.reset(seed=seed)
    teacher.reset(env.observation_space, env.action_space, seed=seed)
    trace: dict[str, list[float]] = {"omega": [], "val": [], "target": []}
    while True:
        obs, _, terminated, truncated, info = env.step(teacher.act(obs, info))
        trace["omega"].append(round(float(info["omega"]), 3))
        trace["val"].append(round(float(info["val_loss_normalized"]), 4))
        trace["target"].append(round(float(info["target_loss_normalized"]), 4))
        if terminated or truncated:
            break
    curves = env.unwrapped.evaluate_test(eval_tasks, 0)
    env.close()
    val = np.array(trace["val"])
    return {
        "teacher": name,
        "kwargs": kwargs,
        "seed": seed,
        "final_loss": float(np.mean(curves.loss[:, -1])),
        "final_accuracy": float(np.mean(curves.accuracy[:, -1])),
        "final_target_loss_normalized": trace["target"][-1],
        "val_loss_normalized_min": float(val.min()),
        "val_loss_normalized_quartiles": [float(q) for q in np.quantile(val, [0.25, 0.5, 0.75])],
        "summary": teacher_summary(teacher),
        "seconds": round(time.perf_counter() - start, 1),
        "trace": trace,
    }


def parse(spec: str) -> tuple[str, dict[str, Any]]:
    """``name`` or ``name:{json kwargs}``."""
    name, _, kwargs = spec.partition(":")
    return name, json.loads(kwargs) if kwargs else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("teachers", nargs="+", help="name or name:{json kwargs}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", default="measure.jsonl")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for seed in args.seeds:
        for spec in args.teachers:
            record = run(*parse(spec), seed)
            with open(args.out, "a") as f:
                f.write(json.dumps(record) + "\n")
            print(
                f"{spec} seed {seed}: test loss {record['final_loss']:.3f} "
                f"acc {record['final_accuracy']:.3f} target {record['final_target_loss_normalized']:.3f} "
                f"val quartiles {record['val_loss_normalized_quartiles']} {record['summary']} "
                f"{record['seconds']} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
