"""The students an environment can train: the MAML meta-learner, and an analytic fake.

Both satisfy :class:`CurriculumStudent`, the only thing the environment knows of a
student: train at ω for some meta-steps, measure at ω, measure on the fixed target
tasks. The analytic student answers in microseconds from a closed-form learning
model, so teachers can be developed and tested without training a network.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from metacurriculum.envs.config import MetaCurriculumConfig


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


class CurriculumStudent(Protocol):
    """What the environment needs of a student."""

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

STUDENTS: dict[str, Callable[[MetaCurriculumConfig, int], CurriculumStudent]] = {
    "analytic": analytic_student,
    **ANALYTIC_PROFILES,
}


def _factory(
    config: MetaCurriculumConfig,
) -> Callable[[MetaCurriculumConfig, int], CurriculumStudent]:
    if config.student == "maml" and "maml" not in STUDENTS:
        from metacurriculum.envs.maml_student import MAMLStudent  # torch only when needed

        STUDENTS["maml"] = MAMLStudent
    try:
        return STUDENTS[config.student]
    except KeyError:
        raise ValueError(
            f"student={config.student!r} is unknown; choose one of {sorted({*STUDENTS, 'maml'})}."
        ) from None


def check_student(config: MetaCurriculumConfig) -> None:
    """Raise now on settings the student of ``config`` could not run with (a factory's
    optional ``check(config)``: the MAML student loads the data and checks the device)."""
    check = getattr(_factory(config), "check", None)
    if check is not None:
        check(config)


def make_student(config: MetaCurriculumConfig, seed: int) -> CurriculumStudent:
    """Build the student named by ``config.student``, seeded with ``seed``."""
    return _factory(config)(config, seed)
