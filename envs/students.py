"""The students an environment can train: a meta-learner, and analytic fakes.

Every kind satisfies :class:`CurriculumStudent`, the only thing the environment knows
of a student: train at ω for some meta-steps, measure at ω, measure on the fixed target
tasks. The env setting ``student`` picks the kind from :data:`STUDENTS`: ``"learner"``
(a meta-learner on the conv net, :mod:`~metacurriculum.envs.learner_student`, whichever
``learner`` names) or ``"analytic"``, which answers in microseconds from a closed-form
learning model, so teachers can be developed and tested without training a network.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from metacurriculum.envs.config import MetaCurriculumConfig
from metacurriculum.registry import PLUGIN_GROUPS, Registry


def chance_loss(n_way: int) -> float:
    """The cross-entropy of guessing among ``n_way`` classes, ``log n`` (``log 2`` for n = 1).

    A one-way task has zero loss whatever the student does; dividing by ``log 2``
    there keeps normalised losses finite.
    """
    return math.log(max(int(n_way), 2))


@dataclass(frozen=True)
class Measurement:
    """Post-adaptation performance of the student on a set of tasks.

    Attributes:
        loss: mean query cross-entropy after adaptation.
        accuracy: mean query accuracy after adaptation.
        normalized_loss: mean over tasks of ``loss_i / chance_loss(n_i)``, comparable across n.
        n_way: the number of classes of each task.
    """

    loss: float
    accuracy: float
    normalized_loss: float
    n_way: tuple[int, ...]

    @property
    def finite(self) -> bool:
        """False when the student diverged (NaN or infinite loss)."""
        return math.isfinite(self.loss) and math.isfinite(self.normalized_loss)


@dataclass(frozen=True)
class AdaptationCurves:
    """Loss and accuracy on unseen tasks before adaptation and after every inner step.

    Attributes:
        loss: ``[tasks, inner_steps + 1]`` query cross-entropy; column 0 is before adaptation.
        accuracy: ``[tasks, inner_steps + 1]`` query accuracy.
        n_way: ``[tasks]`` the number of classes of each task.
    """

    loss: np.ndarray
    accuracy: np.ndarray
    n_way: np.ndarray


@dataclass(frozen=True)
class StudentStep:
    """What one env step asks of a student: its training, then its two measurements.

    Attributes:
        train: :meth:`CurriculumStudent.train`'s result.
        val: :meth:`CurriculumStudent.validate` at the step's ω.
        target: :meth:`CurriculumStudent.evaluate_target`.
    """

    train: dict[str, Any]
    val: Measurement
    target: Measurement


class CurriculumStudent(Protocol):
    """What the environment needs of a student.

    Its compute: the env charges each step's meta-steps and measurements (``info``'s
    ``train_flops`` and ``measure_flops``, and a ``compute_budget`` spends them) with the
    student's ``compute`` attribute when it has one (an object with ``meta_step(n_way)``,
    ``measurement(n_way)`` and ``evaluation(n_way)``, the FLOPs of that work on tasks of
    those numbers of classes, like
    :class:`~metacurriculum.student.compute.StudentCompute`), else with the compute of the
    env's meta-learner on the env's network (what an analytic student stands in for,
    :func:`~metacurriculum.envs.compute.student_compute`). ``compute = None`` reports none
    (the FLOPs are ``None``, and no compute budget can be set).
    """

    def train(self, omega: float | np.ndarray, meta_steps: int) -> dict[str, Any]:
        """Run ``meta_steps`` meta-training steps on tasks drawn at ``omega`` (a float for a
        one-parameter family, else the family's ``[d]`` vector).

        Returns:
            ``{"loss": mean query loss, "accuracy": ..., "n_way": [n of each task]}``.
        """
        ...

    def validate(self, omega: float | np.ndarray) -> Measurement:
        """Measure on fresh meta-validation tasks drawn at ``omega``."""
        ...

    def evaluate_target(self) -> Measurement:
        """Measure on the fixed meta-validation tasks of the hardest distribution."""
        ...

    def evaluate_test(self, num_tasks: int, seed: int) -> AdaptationCurves:
        """Adapt to ``num_tasks`` unseen tasks of the hardest distribution (test classes).

        The tasks depend only on ``seed`` (and the device), so every teacher and every
        training seed is measured on the same tasks.
        """
        ...

    def save(self, path: str) -> None:
        """Write the student's state (parameters, optimiser, settings) to ``path``."""
        ...


def run_step(student: CurriculumStudent, omega: Any, meta_steps: int) -> StudentStep:
    """One env step of ``student``: ``meta_steps`` meta-steps at ``omega``, then its
    measurements (the student's own ``train_and_measure`` when it has one, which may run
    them together)."""
    together = getattr(student, "train_and_measure", None)
    if together is not None:
        return together(omega, meta_steps)
    train = student.train(omega, meta_steps)
    return StudentStep(train, student.validate(omega), student.evaluate_target())


# The analytic students live in their own module, which needs the types above.
from metacurriculum.envs.analytic import (  # noqa: E402, F401 - re-exported, as before the move
    AnalyticStudent,
    AnalyticVectorStudent,
    analytic_curves,
    analytic_measurement,
    analytic_student,
    save_analytic,
)
from metacurriculum.envs.analytic_profiles import ANALYTIC_PROFILES  # noqa: E402

#: The kinds of student by name (the env setting ``student``): ``factory(config, seed)``
#: builds one; a factory's optional ``check(config)`` fails early on settings it could not
#: run with. ``"learner"`` is imported on first use (it needs torch); the analytic
#: profiles (:mod:`~metacurriculum.envs.analytic_profiles`) are ``"analytic-<name>"``.
STUDENTS: Registry[Callable[[MetaCurriculumConfig, int], CurriculumStudent]] = Registry(
    "student",
    hint="add yours with STUDENTS.register(name, factory), or an entry point in the group "
    f"{PLUGIN_GROUPS['student']!r} of an installed package",
    setting="student=",
    group=PLUGIN_GROUPS["student"],
)
STUDENTS.register("learner", "metacurriculum.envs.learner_student:learner_student")
STUDENTS.register("analytic", analytic_student)
for _name, _factory in ANALYTIC_PROFILES.items():
    STUDENTS.register(_name, _factory)


def check_student(config: MetaCurriculumConfig) -> None:
    """Raise now on settings the student of ``config`` could not run with (a factory's
    optional ``check(config)``: a meta-learner checks its settings and device and loads
    the data)."""
    check = getattr(STUDENTS.lookup(config.student), "check", None)
    if check is not None:
        check(config)


def make_student(config: MetaCurriculumConfig, seed: int) -> CurriculumStudent:
    """Build the student named by ``config.student``, seeded with ``seed``."""
    return STUDENTS.lookup(config.student)(config, seed)
