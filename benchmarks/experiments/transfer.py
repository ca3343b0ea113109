"""Transfer: a policy trained on an analytic student, run as a teacher on the real student.

Trains a PPO teacher (:data:`~metacurriculum.teachers.sb3.SB3_ALGOS`' settings) on each
source env (analytic profiles: microseconds a step), then benchmarks every policy as a
teacher on the real MAML student at the ``reduced`` preset (Omniglot 5-way 1-shot, 16x3
net, first order, 200 meta-steps = 50 env steps), beside ``none`` and ``linear``, with the
harness: each policy is a teacher variant (``sb3@algo=ppo@path=...``), so the policies,
``none`` and ``linear`` are rows of one table::

    python -m metacurriculum.benchmarks.experiments.transfer --seeds 3 --out docs/transfer

The policy acts on what the env shows every student alike (the normalised validation
losses, ω normalised, the elapsed fraction), and the spaces of the analytic profiles
with ``n_max=5`` match the reduced env's, so it runs unchanged; the source with
``n_max=20`` (easy-first) has the same spaces too (normalised), but a longer episode.
A policy file that exists is reused (delete it to retrain). Writes the policies
(``<source>.zip``), ``training.json`` (env steps, CPU seconds and the evaluation curve of
each) and the benchmark's folders, ``results.md`` and ``runs.csv`` under ``--out``.
Needs SB3 (``pip install metacurriculum[sb3]``) and the Omniglot data.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import metacurriculum  # noqa: F401 - registers the ids
from metacurriculum.benchmarks import presets
from metacurriculum.benchmarks.benchmark import run_benchmark

#: The source envs by a short name: the profile fitted to the reduced student, and the
#: profile where a curriculum pays (its PPO policy learnt to climb, README).
SOURCES = {
    "calibrated": "MetaCurriculum-AnalyticCalibrated-v0",
    "easy-first": "MetaCurriculum-AnalyticEasyFirst-v0",
}


def train_policy(source: str, path: Path, timesteps: int, n_envs: int, seed: int) -> dict[str, Any]:
    """Train PPO on ``source`` and save it to ``path``; its env steps, CPU time and curve."""
    from metacurriculum.teachers import train_sb3_teacher

    cpu = time.process_time()
    model = train_sb3_teacher(
        "ppo", SOURCES[source], timesteps, seed=seed, n_envs=n_envs, path=path, eval_freq=None
    )
    return {
        "source": SOURCES[source],
        "env_steps": timesteps,
        "n_envs": n_envs,
        "cpu_seconds": round(time.process_time() - cpu, 1),
        "eval_curve": [list(point) for point in model.teacher_eval_curve],
        "eval_baselines": dict(model.teacher_eval_baselines),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", default="calibrated,easy-first", help=f"of {list(SOURCES)}")
    parser.add_argument("--timesteps", type=int, default=40_960, help="PPO's env steps")
    parser.add_argument("--n-envs", type=int, default=4, help="students PPO trains on at once")
    parser.add_argument("--train-seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the real student")
    parser.add_argument("--out", default="docs/transfer")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record_path = out / "training.json"
    training = json.loads(record_path.read_text()) if record_path.exists() else {}
    teachers = ["none", "linear"]
    for source in args.sources.split(","):
        path = out / f"{source}.zip"
        if not path.exists():
            print(f"training PPO on {SOURCES[source]} ({args.timesteps} env steps)")
            training[source] = train_policy(
                source, path, args.timesteps, args.n_envs, args.train_seed
            )
            record_path.write_text(json.dumps(training, indent=2) + "\n")
        print(f"{source}: {training.get(source, 'trained before')}")
        teachers.append(f"sb3@algo=ppo@path={path}")

    config = presets.resolve(
        "reduced",
        teachers=teachers,
        seeds=tuple(range(args.seeds)),
        workers=args.workers,
        threads=args.threads,
        out=str(out),
        plots=False,
    )
    cpu = time.process_time()

    def results() -> None:
        from metacurriculum.benchmarks.tables import report

        print(report(str(out)))

    run_benchmark(config, then=results)
    print(f"benchmark: {time.process_time() - cpu:.0f} s of CPU in this process")


if __name__ == "__main__":
    main()
