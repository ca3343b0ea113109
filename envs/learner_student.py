"""The env's real student: a meta-learner, one row of a population, with the env's task streams.

:class:`LearnerStudents` holds the meta-learners of one env or of every sub-env of a
vector env: one :class:`~metacurriculum.student.Population` (a row per env, any
learner) and, per row, its task streams (training and validation generators, the fixed
target tasks), all seeded from the env's seed. :class:`LearnerStudent` is one env's
student, a :class:`~metacurriculum.envs.CurriculumStudent`: its calls run on its row.
A single env's student is a population of one; a vector env's sub-envs share one
population, and :meth:`LearnerStudents.step` runs every row's env step together.

Meta-training tasks come from the training split; validation tasks (the observation)
and the fixed target tasks (the reward) from the meta-validation split, whose classes
(Omniglot characters) or images (MNIST) are held out from training; the final
evaluation's tasks from the test split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from metacurriculum.envs.compute import student_compute
from metacurriculum.envs.config import MetaCurriculumConfig
from metacurriculum.envs.data import load_dataset
from metacurriculum.envs.families import make_family
from metacurriculum.envs.students import AdaptationCurves, Measurement, StudentStep, chance_loss
from metacurriculum.envs.tasks import FamilyTasks, TaskDistribution
from metacurriculum.student import Evaluation, MetaBatch, Population, StudentConfig
from metacurriculum.student.compute import StudentCompute


def student_config(config: MetaCurriculumConfig) -> StudentConfig:
    """The :class:`StudentConfig` an env's settings describe: the network, the outer
    optimiser, the device, and the learner with its settings."""
    return StudentConfig(
        n_max=config.n_max,
        hidden=config.hidden,
        depth=config.depth,
        meta_lr=config.meta_lr,
        batching=config.batching,
        device=config.device,
        init=config.init,
        learner=config.learner,
        learner_kwargs=config.learner_kwargs,
    )


def task_distributions(
    config: MetaCurriculumConfig,
) -> tuple[FamilyTasks, FamilyTasks, FamilyTasks]:
    """The train, validation and test task distributions of ``config``, tasks of its
    family (the data is loaded once per process and device).

    Raises:
        DataNotFoundError: when the data set is missing.
        ValueError: when a split cannot supply the tasks (too few classes or images),
            or the device is unknown.
    """
    device = student_config(config).torch_device
    options = {"protocol": config.omniglot_protocol} if config.dataset == "omniglot" else {}
    splits = load_dataset(
        config.dataset, config.data_root, download=config.download, device=device, **options
    )
    task_args = {"n_max": config.n_max, "k_shot": config.k_shot, "q_query": config.q_query}
    task_args.update(omega_noise=config.omega_noise, n_min=config.n_min)
    family = make_family(config)
    train, val = (TaskDistribution(split, **task_args) for split in (splits.train, splits.val))
    test = TaskDistribution(splits.test, **{**task_args, "q_query": config.eval_q_query})
    return FamilyTasks(family, train), FamilyTasks(family, val), FamilyTasks(family, test)


def measurement(evaluation: Evaluation) -> Measurement:
    """The post-adaptation :class:`Measurement` of an evaluation (its last inner step; an
    evaluation made with ``final_only`` holds no other)."""
    loss = evaluation.task_query_loss[:, -1]
    chance = np.array([chance_loss(n) for n in evaluation.n_way])
    return Measurement(
        loss=float(loss.mean()),
        accuracy=float(evaluation.task_query_acc[:, -1].mean()),
        normalized_loss=float((loss / chance).mean()),
        n_way=tuple(int(n) for n in evaluation.n_way),
    )


@dataclass
class _Streams:
    """One row's task streams: training and validation generators, the fixed target tasks."""

    train: torch.Generator
    val: torch.Generator
    target: MetaBatch


class LearnerStudents:
    """The meta-learners of ``rows`` envs: one population, each row with its own task streams.

    Args:
        config: The envs' settings (shared: one learner, network and task distribution).
        rows: The number of envs (rows of the population).
        chunk_size: Rows per grouped call of the population; ``None`` fits them to the
            device's free memory.
    """

    def __init__(self, config: MetaCurriculumConfig, rows: int = 1, chunk_size: int | None = None):
        self.config = config
        self.train_tasks, self.val_tasks, self.test_tasks = task_distributions(config)
        # Placeholder students: every row is reset with its env's seed when attached.
        self.population = Population(student_config(config), list(range(rows)), chunk_size)
        self.compute = student_compute(config)
        self._streams: list[_Streams | None] = [None] * rows

    def attach(self, row: int, seed: int) -> LearnerStudent:
        """A fresh student from ``seed`` in row ``row``: its network and its task streams.

        The seed fixes the initial network and every task stream, each from its own
        generator, so that adding validation never changes the training tasks.
        """
        self.population.reset_row(row, seed % 2**63)
        device = self.population.device
        streams = np.random.SeedSequence(seed).generate_state(3)
        train, val, target = (torch.Generator(device=device).manual_seed(int(s)) for s in streams)
        target_batch = self.val_tasks.sample_hardest(self.config.target_tasks, target)
        self._streams[row] = _Streams(train, val, target_batch)
        return LearnerStudent(self, row)

    def train(
        self, rows: Sequence[int], omegas: Sequence[Any], meta_steps: int
    ) -> list[dict[str, Any]]:
        """``meta_steps`` meta-steps of each row on tasks drawn at its ω, rows together.

        Returns:
            Per row: ``{"loss": mean query loss, "accuracy": ..., "n_way": [n of each task]}``.
        """
        streams = [self._row(row) for row in rows]
        losses, accuracies, n_way = ([[] for _ in rows] for _ in range(3))
        for _ in range(meta_steps):
            batches = [
                self.train_tasks.sample(omega, self.config.meta_batch, s.train)
                for s, omega in zip(streams, omegas, strict=True)
            ]
            metrics = self.population.meta_step(batches, rows)
            for i, (m, batch) in enumerate(zip(metrics, batches, strict=True)):
                losses[i].append(m["student/query_loss"])
                accuracies[i].append(m["student/query_acc"])
                n_way[i].extend(batch.n_way.tolist())
        return [
            {"loss": float(np.mean(loss)), "accuracy": float(np.mean(acc)), "n_way": n}
            for loss, acc, n in zip(losses, accuracies, n_way, strict=True)
        ]

    def validate(self, rows: Sequence[int], omegas: Sequence[Any]) -> list[Measurement]:
        """Each row measured on fresh validation tasks drawn at its ω."""
        batches = [
            self.val_tasks.sample(omega, self.config.val_tasks, self._row(row).val)
            for row, omega in zip(rows, omegas, strict=True)
        ]
        evaluations = self.population.evaluate(batches, list(rows), final_only=True)
        return [measurement(e) for e in evaluations]

    def evaluate_target(self, rows: Sequence[int]) -> list[Measurement]:
        """Each row measured on its fixed target tasks."""
        batches = [self._row(row).target for row in rows]
        evaluations = self.population.evaluate(batches, list(rows), final_only=True)
        return [measurement(e) for e in evaluations]

    def step(
        self, rows: Sequence[int], omegas: Sequence[Any], meta_steps: int
    ) -> list[StudentStep]:
        """One env step of each row: its meta-steps at its ω, then its measurements."""
        train = self.train(rows, omegas, meta_steps)
        val = self.validate(rows, omegas)
        target = self.evaluate_target(rows)
        return [StudentStep(*parts) for parts in zip(train, val, target, strict=True)]

    def evaluate_test(self, row: int, num_tasks: int, seed: int) -> AdaptationCurves:
        """Row ``row`` adapted to ``num_tasks`` unseen tasks of the hardest distribution."""
        generator = torch.Generator(device=self.population.device).manual_seed(seed)
        batch = self.test_tasks.sample_hardest(num_tasks, generator)
        evaluation = self.population.evaluate([batch], [row])[0]
        return AdaptationCurves(
            loss=evaluation.task_query_loss,
            accuracy=evaluation.task_query_acc,
            n_way=np.asarray(evaluation.n_way),
        )

    def _row(self, row: int) -> _Streams:
        streams = self._streams[row]
        if streams is None:
            raise RuntimeError(f"row {row} has no student yet: reset its env first.")
        return streams


class LearnerStudent:
    """One env's meta-learner: row ``row`` of ``students`` (a
    :class:`~metacurriculum.envs.CurriculumStudent`)."""

    def __init__(self, students: LearnerStudents, row: int) -> None:
        self.students = students
        self.row = row

    @property
    def target_batch(self) -> MetaBatch:
        """Its fixed target tasks (the reward's)."""
        return self.students._row(self.row).target

    @property
    def compute(self) -> StudentCompute:
        """The FLOPs of its work (the env charges its meta-steps and measurements)."""
        return self.students.compute

    @property
    def train_tasks(self) -> FamilyTasks:
        """The distribution its training tasks are drawn from."""
        return self.students.train_tasks

    @property
    def val_tasks(self) -> FamilyTasks:
        """The distribution its validation and target tasks are drawn from."""
        return self.students.val_tasks

    @property
    def test_tasks(self) -> FamilyTasks:
        """The distribution of the final evaluation's unseen tasks."""
        return self.students.test_tasks

    def train(self, omega: Any, meta_steps: int) -> dict[str, Any]:
        return self.students.train([self.row], [omega], meta_steps)[0]

    def validate(self, omega: Any) -> Measurement:
        return self.students.validate([self.row], [omega])[0]

    def evaluate_target(self) -> Measurement:
        return self.students.evaluate_target([self.row])[0]

    def train_and_measure(self, omega: Any, meta_steps: int) -> StudentStep:
        """One env step's work: the meta-steps at ``omega``, then the measurements."""
        return self.students.step([self.row], [omega], meta_steps)[0]

    def evaluate_test(self, num_tasks: int, seed: int) -> AdaptationCurves:
        return self.students.evaluate_test(self.row, num_tasks, seed)

    def save(self, path: str) -> None:
        self.students.population.save_row(self.row, path)


def learner_student(config: MetaCurriculumConfig, seed: int) -> LearnerStudent:
    """A single env's student: a population of one, its row seeded with ``seed``."""
    return LearnerStudents(config).attach(0, seed)


def check(config: MetaCurriculumConfig) -> None:
    """Fail now, with the fix in the message, on settings the student could not run with
    (the network's and the learner's settings, the device, the data)."""
    task_distributions(config)


learner_student.check = check  # type: ignore[attr-defined]
