"""How fast each learner learns: accuracy on unseen tasks after a fixed number of meta-steps.

A regression in a student's learning speed (an initialisation, a step size, a
batch-norm detail) changes every teacher comparison built on it, so this benchmark
trains a learner without a curriculum (every task at ``ways`` classes) at the paper's
Table I settings where they apply (meta-batch 8, Adam at 0.001, 5 inner steps of 0.1)
and reports the post-adaptation accuracy on a fixed set of unseen test tasks at each
checkpoint, over seeds, with a 95% confidence interval, beside learn2learn 0.2.0's
figures for MAML on the same workload and each method's published full-scale
Omniglot numbers (:data:`PUBLISHED`, reached after tens of thousands of meta-steps)::

    python -m metacurriculum.benchmarks.experiments.learning_speed                   # MAML, 5-way, 3 seeds
    python -m metacurriculum.benchmarks.experiments.learning_speed --learners maml anil protonet reptile
    python -m metacurriculum.benchmarks.experiments.learning_speed --ways 20 --steps 100 --inits torch xavier

Every learner and init of a seed sees the same training tasks (one task stream per
seed) and every run the same evaluation tasks, so differences between them are
paired. Results go to ``--out`` (JSON lines, one per learner x init x seed x
checkpoint) as they come; a rerun skips what the file already holds, so an
interrupted benchmark resumes.
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

from metacurriculum.student.settings import learner_settings, setting_names

#: learn2learn 0.2.0's MAML on the same workload (Omniglot 5-way 1-shot, background
#: protocol, Table I, second order, seed 0, 200 evaluation tasks with 15 queries per
#: class): post-adaptation accuracy by meta-step; its standard error is about 0.7 points.
REFERENCE_5WAY = {0: 0.667, 100: 0.857, 200: 0.891}

#: Each method's published Omniglot 1-shot accuracy at full scale (tens of thousands of
#: meta-steps, and each paper's own network, protocol and tricks), by ways:
#: ``{learner: {ways: (accuracy, citation)}}``.
PUBLISHED: dict[str, dict[int, tuple[str, str]]] = {
    "maml": {
        5: ("98.7 ± 0.4%", "Finn et al., 2017, Table 1"),
        20: ("95.8 ± 0.3%", "Finn et al., 2017, Table 1"),
    },
    "fomaml": {
        5: ("98.3 ± 0.5%", "Finn et al., 2017, Table 1"),
        20: ("89.4 ± 0.5%", "Finn et al., 2017, Table 1"),
    },
    "anil": {20: ("96.2 ± 0.5%", "Raghu et al., 2020, Table 2")},
    "metasgd": {
        5: ("99.53 ± 0.26%", "Li et al., 2017, Table 1"),
        20: ("95.93 ± 0.38%", "Li et al., 2017, Table 1"),
    },
    "reptile": {
        5: ("97.68 ± 0.04% (transduction)", "Nichol et al., 2018, Table 1"),
        20: ("89.43 ± 0.14% (transduction)", "Nichol et al., 2018, Table 1"),
    },
    "protonet": {
        5: ("98.8%", "Snell et al., 2017, Table 1"),
        20: ("96.0%", "Snell et al., 2017, Table 1"),
    },
}


@dataclass(frozen=True)
class LearningSpeedConfig:
    """One learning-speed benchmark.

    Attributes:
        ways: classes of every training and evaluation task (plain MAML at ``n_max``).
        k_shot: support examples per class.
        q_query: query examples per class of the training tasks.
        eval_q_query: query examples per class of the evaluation tasks.
        meta_batch: tasks per meta-step (Table I: 8).
        meta_lr: Adam learning rate (Table I: 0.001).
        hidden: conv filters per block.
        depth: conv blocks.
        steps: meta-steps at which the student is evaluated (the last is the budget).
        seeds: one run per seed, learner and init; the seed fixes the network (drawn
            before a learner drops or adds parameters) and the task stream.
        inits: the weight initialisations to compare (``StudentConfig.init``).
        learners: the learners to compare (``metacurriculum learners``).
        learner_settings: ``(name, value)`` pairs given to every learner that has the
            setting (e.g. ``(("inner_steps", 1),)``); the others keep their defaults,
            which are Table I's.
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
    meta_lr: float = 0.001
    hidden: int = 64
    depth: int = 4
    steps: tuple[int, ...] = (100, 200)
    seeds: tuple[int, ...] = (0, 1, 2)
    inits: tuple[str, ...] = ("torch",)
    learners: tuple[str, ...] = ("maml",)
    learner_settings: tuple[tuple[str, Any], ...] = ()
    protocol: str = "background"
    eval_tasks: int = 200
    eval_seed: int = 12345
    device: str = "cpu"

    def settings_of(self, learner: str) -> dict[str, Any]:
        """``learner``'s settings in this benchmark: its defaults, with
        :attr:`learner_settings` where it has them."""
        given = {k: v for k, v in self.learner_settings if k in setting_names(learner)}
        return learner_settings(learner, given).to_dict()

    def workload(self, learner: str) -> dict[str, Any]:
        """The settings that make ``learner``'s results comparable (everything but seeds,
        inits, steps and the other learners; its own settings resolved)."""
        settings = asdict(self)
        for name in ("seeds", "inits", "steps", "learners", "learner_settings"):
            settings.pop(name)
        return {**settings, "learner": learner, "learner_kwargs": self.settings_of(learner)}


def run(config: LearningSpeedConfig, learner: str, init: str, seed: int) -> list[dict[str, Any]]:
    """Train ``learner`` with one init and seed; one record per checkpoint in ``config.steps``.

    Returns:
        Records ``{"learner", "init", "seed", "meta_step", "accuracy", "loss", "seconds"}``:
        the mean post-adaptation query accuracy and loss over the evaluation tasks, and
        the training wall time so far.
    """
    import torch

    from metacurriculum.envs.data import load_dataset
    from metacurriculum.envs.tasks import TaskDistribution
    from metacurriculum.student import MetaLearner, StudentConfig

    student_config = StudentConfig(
        n_max=config.ways,
        hidden=config.hidden,
        depth=config.depth,
        meta_lr=config.meta_lr,
        init=init,
        device=config.device,
        learner=learner,
        learner_kwargs=config.settings_of(learner),
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
    student = MetaLearner(student_config, seed=seed)
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
                "learner": learner,
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


def table(records: Sequence[dict[str, Any]], ways: int | None = None) -> str:
    """A markdown table: per learner, init and checkpoint, the mean accuracy with its 95% CI
    and per seed, beside learn2learn's MAML on the workload (5-way) and the method's
    published full-scale figure at ``ways``."""
    lines = [
        "| learner | init | meta-steps | seeds | accuracy (95% CI) | per seed "
        "| learn2learn MAML | published at full scale |",
        "|---|---|---|---|---|---|---|---|",
    ]
    keys = sorted({(r.get("learner", "maml"), r["init"], r["meta_step"]) for r in records})
    for learner, init, step in keys:
        rows = sorted(
            (
                r
                for r in records
                if (r.get("learner", "maml"), r["init"], r["meta_step"]) == (learner, init, step)
            ),
            key=lambda r: r["seed"],
        )
        mean, half = mean_ci([r["accuracy"] for r in rows])
        spread = f" ± {half:.1%}" if len(rows) > 1 else " (one seed)"
        seeds = ", ".join(f"{r['accuracy']:.1%}" for r in rows)
        ref = f"{REFERENCE_5WAY[step]:.1%}" if ways == 5 and step in REFERENCE_5WAY else "–"
        published = PUBLISHED.get(learner, {}).get(ways) if ways else None
        cited = f"{published[0]} ({published[1]})" if published else "–"
        lines.append(
            f"| {learner} | {init} | {step} | {len(rows)} | {mean:.1%}{spread} | {seeds} "
            f"| {ref} | {cited} |"
        )
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
        learner = record.get("learner")
        if learner in config.learners and record.get("workload") == config.workload(learner):
            records.append(record)
    return records


def benchmark(
    config: LearningSpeedConfig, out: Path | None = None, progress: bool = True
) -> list[dict[str, Any]]:
    """Every learner x init x seed of ``config`` not already in ``out``; returns all records.

    Each run's records are appended to ``out`` (JSON lines) as soon as it finishes.
    """
    from tqdm.auto import tqdm

    records = load_records(out, config) if out else []
    last = max(config.steps)
    done = {(r["learner"], r["init"], r["seed"]) for r in records if r["meta_step"] == last}
    pending = [
        run_key
        for run_key in (
            (learner, init, seed)
            for learner in config.learners
            for init in config.inits
            for seed in config.seeds
        )
        if run_key not in done
    ]
    for learner, init, seed in tqdm(
        pending, desc="learning speed", disable=not progress, unit="run"
    ):
        new = run(config, learner, init, seed)
        for record in new:
            record["workload"] = config.workload(learner)
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
        prog="python -m metacurriculum.benchmarks.experiments.learning_speed",
        description=__doc__.split("\n")[0],
    )
    parser.add_argument("--ways", type=int, default=defaults.ways)
    parser.add_argument("--steps", type=int, nargs="+", default=list(defaults.steps))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(defaults.seeds))
    parser.add_argument("--inits", nargs="+", default=list(defaults.inits))
    parser.add_argument(
        "--learners", nargs="+", default=list(defaults.learners), help="learners to compare"
    )
    parser.add_argument("--protocol", default=defaults.protocol, choices=("background", "maml"))
    parser.add_argument("--eval-tasks", type=int, default=defaults.eval_tasks)
    parser.add_argument(
        "--first-order", action="store_true", help="first order, for learners with the setting"
    )
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
        learners=tuple(args.learners),
        learner_settings=(("first_order", True),) if args.first_order else (),
        protocol=args.protocol,
        eval_tasks=args.eval_tasks,
        device=args.device,
    )
    records = benchmark(config, args.out)
    print(f"Omniglot {config.ways}-way {config.k_shot}-shot, {config.protocol} protocol:")
    print(table(records, config.ways if config.protocol == "background" else None))


if __name__ == "__main__":
    main()
