"""How fast plain MAML learns: accuracy on unseen tasks after a fixed number of meta-steps.

A regression in the student's learning speed (an initialisation, a step size, a
batch-norm detail) changes every teacher comparison built on it, so this benchmark
trains plain MAML (no curriculum: every task at ``ways`` classes) at the paper's
Table I settings and reports the post-adaptation accuracy on a fixed set of
unseen test tasks at each checkpoint, over seeds, with a 95% confidence interval,
beside learn2learn 0.2.0's reference figures on the same workload::

    python -m metacurriculum.benchmarks.learning_speed                  # 5-way, 3 inits x 3 seeds
    python -m metacurriculum.benchmarks.learning_speed --ways 20 --steps 100 --inits torch xavier

Every init of a seed sees the same training tasks (one task stream per seed) and
every run the same evaluation tasks, so differences between inits are paired.
Results go to ``--out`` (JSON lines, one per init x seed x checkpoint) as they come;
a rerun skips what the file already holds, so an interrupted benchmark resumes.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metacurriculum.student.hyperparams import DEFAULTS, INITS

#: learn2learn 0.2.0 on the same workload (Omniglot 5-way 1-shot, background protocol,
#: Table I, second order, seed 0, 200 evaluation tasks with 15 queries per class):
#: post-adaptation accuracy by meta-step; its standard error is about 0.7 points.
REFERENCE_5WAY = {0: 0.667, 100: 0.857, 200: 0.891}


@dataclass(frozen=True)
class LearningSpeedConfig:
    """One learning-speed benchmark.

    Attributes:
        ways: classes of every training and evaluation task (plain MAML at ``n_max``).
        k_shot: support examples per class.
        q_query: query examples per class of the training tasks.
        eval_q_query: query examples per class of the evaluation tasks.
        meta_batch: tasks per meta-step (Table I: 8).
        inner_steps: inner SGD steps (Table I: 5).
        inner_lr: inner learning rate (Table I: 0.1).
        meta_lr: Adam learning rate (Table I: 0.001).
        first_order: first-order MAML instead of second order.
        hidden: conv filters per block.
        depth: conv blocks.
        steps: meta-steps at which the student is evaluated (the last is the budget).
        seeds: one run per seed and init; the seed fixes the network and the task stream.
        inits: the weight initialisations to compare (``StudentConfig.init``).
        protocol: the Omniglot protocol, ``"background"`` (the reference's) or ``"maml"``.
        eval_tasks: unseen test tasks of each evaluation.
        eval_seed: seed of the evaluation tasks (shared by every run).
        device: the student's device.
    """

    ways: int = 5
    k_shot: int = 1
    q_query: int = 5
    eval_q_query: int = 15
    meta_batch: int = 8
    inner_steps: int = DEFAULTS.inner_steps
    inner_lr: float = DEFAULTS.inner_lr
    meta_lr: float = DEFAULTS.meta_lr
    first_order: bool = DEFAULTS.first_order
    hidden: int = 64
    depth: int = 4
    steps: tuple[int, ...] = (100, 200)
    seeds: tuple[int, ...] = (0, 1, 2)
    inits: tuple[str, ...] = INITS
    protocol: str = "background"
    eval_tasks: int = 200
    eval_seed: int = 12345
    device: str = "cpu"

    def workload(self) -> dict[str, Any]:
        """The settings that make results comparable (everything but seeds, inits and steps)."""
        settings = asdict(self)
        for name in ("seeds", "inits", "steps"):
            settings.pop(name)
        return settings


def run(config: LearningSpeedConfig, init: str, seed: int) -> list[dict[str, Any]]:
    """Train plain MAML with one init and seed; one record per checkpoint in ``config.steps``.

    Returns:
        Records ``{"init", "seed", "meta_step", "accuracy", "loss", "seconds"}``: the mean
        post-adaptation query accuracy and loss over the evaluation tasks, and the
        training wall time so far.
    """
    import torch

    from metacurriculum.envs.data import load_dataset
    from metacurriculum.envs.tasks import TaskDistribution
    from metacurriculum.student import MAML, StudentConfig

    student_config = StudentConfig(
        n_max=config.ways,
        hidden=config.hidden,
        depth=config.depth,
        inner_lr=config.inner_lr,
        meta_lr=config.meta_lr,
        inner_steps=config.inner_steps,
        first_order=config.first_order,
        init=init,
        device=config.device,
    )
    device = student_config.torch_device
    splits = load_dataset("omniglot", device=device, protocol=config.protocol)
    tasks = {"n_max": config.ways, "k_shot": config.k_shot, "omega_noise": 0.0}
    train = TaskDistribution(splits.train, q_query=config.q_query, n_min=config.ways, **tasks)
    test = TaskDistribution(splits.test, q_query=config.eval_q_query, n_min=config.ways, **tasks)
    eval_batch = test.sample(
        float(config.ways),
        config.eval_tasks,
        torch.Generator(device=device).manual_seed(config.eval_seed),
    )
    student = MAML(student_config, seed=seed)
    task_stream = torch.Generator(device=device).manual_seed(seed)
    records, seconds = [], 0.0
    for checkpoint in sorted(config.steps):
        start = time.perf_counter()
        while student.meta_steps < checkpoint:
            student.meta_step(train.sample(float(config.ways), config.meta_batch, task_stream))
        seconds += time.perf_counter() - start
        evaluation = student.evaluate(eval_batch)
        records.append(
            {
                "init": init,
                "seed": seed,
                "meta_step": checkpoint,
                "accuracy": float(evaluation.query_acc[-1]),
                "loss": float(evaluation.query_loss[-1]),
                "seconds": seconds,
            }
        )
    return records


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """The mean and the half-width of its 95% Student-t confidence interval (0 for one value)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float(values.mean()), 0.0
    from scipy import stats

    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return float(values.mean()), float(half)


def table(records: Sequence[dict[str, Any]], reference: dict[int, float] | None = None) -> str:
    """A markdown table: per init and checkpoint, mean accuracy with its 95% CI and per seed."""
    lines = [
        "| init | meta-steps | seeds | accuracy (95% CI) | per seed | reference |",
        "|---|---|---|---|---|---|",
    ]
    keys = sorted({(r["init"], r["meta_step"]) for r in records}, key=lambda k: (k[0], k[1]))
    for init, step in keys:
        rows = sorted(
            (r for r in records if r["init"] == init and r["meta_step"] == step),
            key=lambda r: r["seed"],
        )
        mean, half = mean_ci([r["accuracy"] for r in rows])
        spread = f" ± {half:.1%}" if len(rows) > 1 else " (one seed)"
        seeds = ", ".join(f"{r['accuracy']:.1%}" for r in rows)
        ref = f"{reference[step]:.1%}" if reference and step in reference else "–"
        lines.append(f"| {init} | {step} | {len(rows)} | {mean:.1%}{spread} | {seeds} | {ref} |")
    return "\n".join(lines)


def load_records(path: Path, config: LearningSpeedConfig) -> list[dict[str, Any]]:
    """The records of ``path`` measured on ``config``'s workload (others are ignored)."""
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{path}:{number} is not JSON ({error}); delete that line or the file to remeasure."
            ) from None
        if record.get("workload") == config.workload():
            records.append(record)
    return records


def benchmark(
    config: LearningSpeedConfig, out: Path | None = None, progress: bool = True
) -> list[dict[str, Any]]:
    """Every init x seed of ``config`` not already in ``out``; returns all records.

    Each run's records are appended to ``out`` (JSON lines) as soon as it finishes.
    """
    from tqdm.auto import tqdm

    records = load_records(out, config) if out else []
    done = {(r["init"], r["seed"]) for r in records if r["meta_step"] == max(config.steps)}
    pending = [(i, s) for i in config.inits for s in config.seeds if (i, s) not in done]
    for init, seed in tqdm(pending, desc="learning speed", disable=not progress, unit="run"):
        new = run(config, init, seed)
        for record in new:
            record["workload"] = config.workload()
        if out:
            out.parent.mkdir(parents=True, exist_ok=True)
            with out.open("a") as file:
                file.writelines(json.dumps(record) + "\n" for record in new)
        records.extend(new)
    wanted = set(config.inits)
    return [r for r in records if r["init"] in wanted and r["meta_step"] in config.steps]


def main(argv: Sequence[str] | None = None) -> None:
    defaults = LearningSpeedConfig()
    parser = argparse.ArgumentParser(
        prog="python -m metacurriculum.benchmarks.learning_speed",
        description=__doc__.split("\n")[0],
    )
    parser.add_argument("--ways", type=int, default=defaults.ways)
    parser.add_argument("--steps", type=int, nargs="+", default=list(defaults.steps))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(defaults.seeds))
    parser.add_argument("--inits", nargs="+", default=list(defaults.inits))
    parser.add_argument("--protocol", default=defaults.protocol, choices=("background", "maml"))
    parser.add_argument("--eval-tasks", type=int, default=defaults.eval_tasks)
    parser.add_argument("--first-order", action="store_true")
    parser.add_argument("--device", default=defaults.device)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument(
        "--out", type=Path, default=Path("runs/learning_speed.jsonl"), help="results (resumable)"
    )
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    config = LearningSpeedConfig(
        ways=args.ways,
        steps=tuple(sorted(set(args.steps))),
        seeds=tuple(args.seeds),
        inits=tuple(args.inits),
        protocol=args.protocol,
        eval_tasks=args.eval_tasks,
        first_order=args.first_order,
        device=args.device,
    )
    records = benchmark(config, args.out)
    reference = REFERENCE_5WAY if config.ways == 5 and config.protocol == "background" else None
    print(f"Omniglot {config.ways}-way {config.k_shot}-shot, {config.protocol} protocol:")
    print(table(records, reference))


if __name__ == "__main__":
    main()
