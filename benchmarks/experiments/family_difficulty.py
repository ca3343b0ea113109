"""What each parameter of a task family does to the student's loss.

A MAML student is trained under domain randomisation over the family's box (ω uniform
at every meta-step, so that no coordinate is favoured), then adapted to unseen tasks
(the test split) along each axis: one coordinate swept from its easiest to its hardest
end, the others at their easiest, and at the hardest corner (the target distribution).
The same tasks (classes and images) are used at every point, so a change along a
sweep is the parameter's doing. Accuracy compares across numbers of classes; the
normalised loss (divided by ``log n``) does not, it favours more classes. A parameter
that does not change the student's performance is no curriculum dimension::

    python -m metacurriculum.benchmarks.experiments.family_difficulty --env MetaCurriculum-OmniglotMulti-v0 \\
        --seeds 0 1 --meta-steps 200 --points 5 --tasks 100 --out runs/family_difficulty

Writes ``difficulty.json`` (every point) and ``difficulty.md`` (a table) under ``--out``.
The student's settings are the ``reduced`` preset's (16 filters x 3 blocks,
first-order, CPU) unless ``--env-kwargs`` changes them.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

import metacurriculum  # noqa: F401 - registers the ids
from metacurriculum.benchmarks.presets import PRESETS
from metacurriculum.envs.config import MetaCurriculumConfig
from metacurriculum.registry import parse_value


def sweep(
    env_id: str,
    seed: int,
    meta_steps: int,
    points: int,
    tasks: int,
    env_kwargs: dict[str, Any],
) -> list[dict[str, Any]]:
    """Train one student under domain randomisation, then measure it along every axis."""
    import torch

    from metacurriculum.envs.learner_student import learner_student, measurement

    settings = {**gym.spec(env_id).kwargs, **env_kwargs}
    config = MetaCurriculumConfig.from_overrides(**settings)
    student = learner_student(config, seed)
    population = student.students.population
    family = student.train_tasks.family
    rng = np.random.default_rng(seed)
    for _ in tqdm(range(meta_steps), desc=f"seed {seed}: training", leave=False):
        student.train(family.public(rng.uniform(family.low, family.high)), 1)
    points_to_measure = []
    for j, parameter in enumerate(family.parameters):
        values = np.linspace(family.easiest[j], family.hardest[j], points)
        if parameter.integer:  # each integer once: 2, 3, 4, 5 classes
            values = np.array(sorted(set(np.round(values)), key=list(np.round(values)).index))
        for value in values:
            omega = family.easiest.copy()
            omega[j] = value
            points_to_measure.append((parameter.name, float(value), omega))
    points_to_measure.append(("hardest corner", float("nan"), family.hardest.copy()))
    rows = []
    for name, value, omega in points_to_measure:
        # The same classes and images at every point: only the swept parameter differs.
        generator = torch.Generator(device=population.device).manual_seed(10_000 + seed)
        batch = student.test_tasks.sample_at(np.tile(omega, (tasks, 1)), generator)
        measured = measurement(population.evaluate([batch], [student.row])[0])
        rows.append(
            {
                "seed": seed,
                "parameter": name,
                "value": value,
                "omega": omega.tolist(),
                "loss": measured.loss,
                "normalized_loss": measured.normalized_loss,
                "accuracy": measured.accuracy,
            }
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: per parameter and value, the mean over seeds of the normalised loss and
    the accuracy, and the change from the easiest end."""
    lines = [
        "| parameter | value | loss | normalised loss | accuracy | accuracy change from the easiest end |",
        "|---|---|---|---|---|---|",
    ]
    easiest = [
        r for r in rows if r["omega"] == rows[0]["omega"] and r["parameter"] == rows[0]["parameter"]
    ]
    base = float(np.mean([r["accuracy"] for r in easiest]))
    for name in dict.fromkeys(r["parameter"] for r in rows):
        mine = [r for r in rows if r["parameter"] == name]
        for omega in dict.fromkeys(tuple(r["omega"]) for r in mine):
            at = [r for r in mine if tuple(r["omega"]) == omega]
            value = at[0]["value"]
            shown = "all hardest" if math.isnan(value) else f"{value:g}"
            loss = float(np.mean([r["loss"] for r in at]))
            normalized = float(np.mean([r["normalized_loss"] for r in at]))
            accuracy = float(np.mean([r["accuracy"] for r in at]))
            lines.append(
                f"| {name} | {shown} | {loss:.3f} | {normalized:.3f} | {100 * accuracy:.1f}% "
                f"| {100 * (accuracy - base):+.1f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="MetaCurriculum-OmniglotMulti-v0")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--meta-steps", type=int, default=200)
    parser.add_argument("--points", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--env-kwargs", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", default="runs/family_difficulty")
    args = parser.parse_args(argv)
    if args.points < 2 or args.tasks < 1 or args.meta_steps < 0:
        parser.error("--points must be >= 2, --tasks >= 1 and --meta-steps >= 0.")
    reduced = {
        k: v
        for k, v in PRESETS["reduced"].env_kwargs.items()
        if k in ("hidden", "depth", "q_query", "learner_defaults", "device", "meta_lr")
    }
    overrides = dict(reduced)
    for item in args.env_kwargs:
        key, _, value = item.partition("=")
        overrides[key] = parse_value(value)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = []
    for seed in tqdm(args.seeds, desc="seeds"):
        rows.extend(sweep(args.env, seed, args.meta_steps, args.points, args.tasks, overrides))
    seconds = time.perf_counter() - start
    record = {"env": args.env, "settings": overrides, "args": vars(args), "seconds": seconds}
    (out / "difficulty.json").write_text(json.dumps({**record, "rows": rows}, indent=1))
    text = table(rows)
    (out / "difficulty.md").write_text(text + "\n")
    print(text)
    print(f"{seconds:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
