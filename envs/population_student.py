"""The MAML students of a vector env's sub-envs, trained together as one population.

Each sub-env keeps an ordinary :class:`~metacurriculum.envs.maml_student.MAMLStudent`
for what is its own (task streams, fixed target tasks, seeding), built by the
single env's ``reset`` exactly as without a population. Its meta-learner then
becomes row ``r`` of a :class:`~metacurriculum.student.Population`: the vector
env calls :meth:`PopulationStudents.prepare` with every sub-env's ω, which
draws each sub-env's meta-batches from its own streams (in the order
``MAMLStudent.train`` and ``validate`` draw them) and runs the meta-steps and
measurements of all rows together; each sub-env's own ``step`` then receives
its results through its :class:`PopulationMember`. A member asked for anything
that was not prepared computes it for its row alone, so it is a complete
:class:`~metacurriculum.envs.CurriculumStudent` either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from metacurriculum.envs.maml_student import MAMLStudent, _measurement
from metacurriculum.envs.students import AdaptationCurves, Measurement
from metacurriculum.student import Population


@dataclass
class _Prepared:
    omega: float | np.ndarray
    meta_steps: int
    train: dict[str, Any] | None
    val: Measurement | None
    target: Measurement | None


class PopulationMember:
    """Row ``row`` of a population, as the student of one sub-env.

    Args:
        students: The population it belongs to.
        row: Its row.
        student: The sub-env's MAML student (streams, target tasks); its own
            meta-learner is synchronised from the row before ``evaluate_test``
            and ``save``.
    """

    def __init__(self, students: PopulationStudents, row: int, student: MAMLStudent) -> None:
        self.students = students
        self.row = row
        self.student = student
        self.prepared: _Prepared | None = None

    def train(self, omega: float, meta_steps: int) -> dict[str, Any]:
        ready = self.prepared
        if (
            ready is not None
            and ready.train is not None
            and ready.meta_steps == meta_steps
            and np.array_equal(ready.omega, omega)
        ):
            result, ready.train = ready.train, None
            return result
        return self.students.train([self.row], [omega], meta_steps)[0]

    def validate(self, omega: float) -> Measurement:
        ready = self.prepared
        if ready is not None and ready.train is None and ready.val is not None:
            if np.array_equal(ready.omega, omega):
                result, ready.val = ready.val, None
                return result
        return self.students.validate([self.row], [omega])[0]

    def evaluate_target(self) -> Measurement:
        ready = self.prepared
        if ready is not None and ready.train is None and ready.target is not None:
            result, ready.target = ready.target, None
            return result
        return self.students.evaluate_target([self.row])[0]

    def evaluate_test(self, num_tasks: int, seed: int) -> AdaptationCurves:
        return self._synced().evaluate_test(num_tasks, seed)

    def save(self, path: str) -> None:
        self._synced().save(path)

    def _synced(self) -> MAMLStudent:
        population = self.students.require_population()
        self.student.maml.load_state_dict(population.student_state_dict(self.row))
        return self.student


class PopulationStudents:
    """The sub-envs' MAML students, one :class:`~metacurriculum.student.Population` row each.

    Args:
        num_envs: The number of sub-envs (rows).
        chunk_size: Students per grouped call (see ``Population``); ``None`` fits
            them to the free memory.
    """

    def __init__(self, num_envs: int, chunk_size: int | None = None) -> None:
        self.num_envs = num_envs
        self.chunk_size = chunk_size
        self.population: Population | None = None
        self.members: list[PopulationMember | None] = [None] * num_envs

    def attach(self, row: int, student: MAMLStudent) -> PopulationMember:
        """Make ``student``'s meta-learner row ``row``; its member serves the sub-env."""
        if self.population is None:
            seeds = list(range(self.num_envs))  # placeholders: every row is attached at reset
            self.population = Population(student.maml.config, seeds, chunk_size=self.chunk_size)
        self.population.load_student(row, student.maml.state_dict())
        member = PopulationMember(self, row, student)
        self.members[row] = member
        return member

    def require_population(self) -> Population:
        if self.population is None:
            raise RuntimeError("the population has no students yet: reset the vector env first.")
        return self.population

    def train(self, rows: list[int], omegas: list[float], meta_steps: int) -> list[dict[str, Any]]:
        """``MAMLStudent.train`` of each row at its ω, the rows' meta-steps run together."""
        population, students = self.require_population(), self._students(rows)
        losses, accuracies, n_way = ([[] for _ in rows] for _ in range(3))
        for _ in range(meta_steps):
            batches = [
                s.train_tasks.sample(omega, s.config.meta_batch, s.train_gen)
                for s, omega in zip(students, omegas, strict=True)
            ]
            for i, (metrics, batch) in enumerate(
                zip(population.meta_step(batches, rows), batches, strict=True)
            ):
                losses[i].append(metrics["student/query_loss"])
                accuracies[i].append(metrics["student/query_acc"])
                n_way[i].extend(batch.n_way.tolist())
        return [
            {"loss": float(np.mean(loss)), "accuracy": float(np.mean(acc)), "n_way": n}
            for loss, acc, n in zip(losses, accuracies, n_way, strict=True)
        ]

    def validate(self, rows: list[int], omegas: list[float]) -> list[Measurement]:
        """``MAMLStudent.validate`` of each row at its ω, evaluated together."""
        students = self._students(rows)
        batches = [
            s.val_tasks.sample(omega, s.config.val_tasks, s.val_gen)
            for s, omega in zip(students, omegas, strict=True)
        ]
        return [_measurement(e) for e in self.require_population().evaluate(batches, rows)]

    def evaluate_target(self, rows: list[int]) -> list[Measurement]:
        """``MAMLStudent.evaluate_target`` of each row, evaluated together."""
        batches = [s.target_batch for s in self._students(rows)]
        return [_measurement(e) for e in self.require_population().evaluate(batches, rows)]

    def prepare(self, omegas: list[float], meta_steps: int) -> None:
        """One env step's training and measurements for every row, handed to the members."""
        rows = list(range(self.num_envs))
        train = self.train(rows, omegas, meta_steps)
        val = self.validate(rows, omegas)
        target = self.evaluate_target(rows)
        for row in rows:
            member = self._member(row)
            member.prepared = _Prepared(omegas[row], meta_steps, train[row], val[row], target[row])

    def clear(self) -> None:
        """Drop results a sub-env did not take (a step that raised half-way)."""
        for member in self.members:
            if member is not None:
                member.prepared = None

    def _member(self, row: int) -> PopulationMember:
        member = self.members[row]
        if member is None:
            raise RuntimeError(f"sub-env {row} has no student yet: reset the vector env first.")
        return member

    def _students(self, rows: list[int]) -> list[MAMLStudent]:
        return [self._member(row).student for row in rows]
