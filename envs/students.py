"""The students an environment can train: a meta-learner, and analytic fakes.

Every kind satisfies :class:`CurriculumStudent`, the only thing the environment knows
of a student: train at ω for some meta-steps, measure at ω, measure on the fixed target
tasks. The env setting ``student`` picks the kind from :data:`STUDENTS`: ``"learner"``
(a meta-learner on the conv net, :mod:`~metacurriculum.envs.learner_student`, whichever
``learner`` names) or ``"analytic"``, which answers in microseconds from a closed-form
learning model, so teachers can be developed and tested without training a network.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from metacurriculum.envs.config import MetaCurriculumConfig
from metacurriculum.envs.families import TaskFamily, make_family, perturb
from metacurriculum.registry import Registry


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
    measurements (the student's own ``step`` when it has one, which may batch them)."""
    step = getattr(student, "step", None)
    if step is not None:
        return step(omega, meta_steps)
    train = student.train(omega, meta_steps)
    return StudentStep(train, student.validate(omega), student.evaluate_target())


def analytic_measurement(norm: np.ndarray, n_way: np.ndarray) -> Measurement:
    """The :class:`Measurement` of tasks with ``n_way`` classes whose normalised losses
    (noise included) are ``norm``: the analytic students' common read-out."""
    norm = np.clip(norm, 0.0, None)
    chance = np.array([chance_loss(n) for n in n_way])
    accuracy = 1.0 - np.clip(norm, 0.0, 1.0) * (1.0 - 1.0 / np.maximum(n_way, 1))
    return Measurement(
        loss=float(np.mean(norm * chance)),
        accuracy=float(np.mean(accuracy)),
        normalized_loss=float(np.mean(norm)),
        n_way=tuple(int(n) for n in n_way),
    )


def analytic_curves(final: np.ndarray, n_way: np.ndarray, inner_steps: int) -> AdaptationCurves:
    """Adaptation curves that end at the normalised losses ``final``: before adaptation the
    labels are a random permutation (chance), and each inner step halves the remaining gap."""
    steps = np.arange(inner_steps + 1)
    norm = final[:, None] + (1.0 - final[:, None]) * 0.5 ** steps[None, :]
    norm = np.clip(norm, 0.0, None)
    accuracy = 1.0 - np.clip(norm, 0.0, 1.0) * (1.0 - 1.0 / n_way[:, None])
    chance = np.array([chance_loss(n) for n in n_way])[:, None]
    return AdaptationCurves(norm * chance, accuracy, n_way)


def save_analytic(path: str, state: dict[str, Any]) -> None:
    """Write an analytic student's ``state`` to ``path`` as JSON, atomically."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, path)


class AnalyticStudent:
    """A closed-form student: a skill level that grows fastest just beyond itself.

    The student has a skill ``s`` (in classes), starting at 1. A meta-step on a task
    with ``n`` classes raises it by ``rate * (floor + exp(-(n - s - 1)^2 / (2 w^2)))``:
    tasks one class beyond the skill teach most, much harder or easier ones little.
    The normalised loss on an ``n``-way task is ``sigmoid((n - s) / tau)``, plus
    Gaussian measurement noise. A teacher that keeps ω just ahead of the skill therefore
    leaves a better student on the hardest tasks than training on them from the start,
    which is the paper's premise, in a form whose answers are known.

    Args:
        config: the env's settings (n_max, budget, meta_batch, omega_noise, ...).
        seed: seeds the noise and the per-task perturbation of ω.
        noise: standard deviation of the measurement noise on normalised losses.
    """

    floor = 0.05

    def __init__(self, config: MetaCurriculumConfig, seed: int, noise: float = 0.01) -> None:
        self.config = config
        self.rng = np.random.default_rng(seed)
        self.noise = noise
        self.skill = 1.0
        span = max(config.n_max - 1, 1)
        # An ideal curriculum reaches the top in about 60% of the budget.
        self.rate = span / (0.6 * config.budget)
        self.width = max(0.15 * config.n_max, 0.75)
        self.tau = max(0.1 * config.n_max, 0.5)

    def _n_way(self, omega: float, tasks: int) -> np.ndarray:
        offsets = self.rng.uniform(-1.0, 1.0, size=tasks)
        config = self.config
        n_way = perturb(omega, offsets, config.omega_noise, 1.0, True, config.n_min, config.n_max)
        return n_way.astype(int)

    def normalized_loss(self, n_way: np.ndarray) -> np.ndarray:
        """The noiseless normalised loss on tasks of ``n_way`` classes at the current skill."""
        return 1.0 / (1.0 + np.exp(-(np.asarray(n_way, dtype=float) - self.skill) / self.tau))

    def _measure(self, n_way: np.ndarray) -> Measurement:
        norm = self.normalized_loss(n_way) + self.noise * self.rng.standard_normal(n_way.shape)
        return analytic_measurement(norm, n_way)

    def train(self, omega: float, meta_steps: int) -> dict[str, Any]:
        losses, all_n = [], []
        for _ in range(meta_steps):
            n_way = self._n_way(omega, self.config.meta_batch)
            gain = self.floor + np.exp(-((n_way - self.skill - 1.0) ** 2) / (2 * self.width**2))
            self.skill = min(
                self.skill + self.rate * float(np.mean(gain)), float(self.config.n_max) + 2
            )
            losses.append(float(np.mean(self.normalized_loss(n_way))))
            all_n.extend(int(n) for n in n_way)
        return {"loss": float(np.mean(losses)), "accuracy": float("nan"), "n_way": all_n}

    def validate(self, omega: float) -> Measurement:
        return self._measure(self._n_way(omega, self.config.val_tasks))

    def evaluate_target(self) -> Measurement:
        return self._measure(np.full(self.config.target_tasks, self.config.n_max))

    def evaluate_test(self, num_tasks: int, seed: int) -> AdaptationCurves:
        rng = np.random.default_rng(seed)
        n = self.config.n_max
        final = self.normalized_loss(np.full(num_tasks, n)) + self.noise * rng.standard_normal(
            num_tasks
        )
        return analytic_curves(final, np.full(num_tasks, n), self.config.adaptation_steps)

    def save(self, path: str) -> None:
        save_analytic(path, {"skill": self.skill, "config": self.config.to_dict()})


class AnalyticVectorStudent:
    """The analytic student for any task family: one skill per coordinate of ω.

    Each coordinate ``j`` of a task is read as its difficulty ``h_j`` in ``[0, 1]``
    (0 at the easiest end, 1 at the hardest; :meth:`TaskFamily.difficulty`). The student
    has a skill ``k_j`` per coordinate, starting at 0. Its normalised loss on a task is
    ``sigmoid(Σ_j w_j (h_j - k_j) / tau)``, plus Gaussian measurement noise: harder in
    every coordinate, easier as each skill grows. A meta-step raises each skill by
    ``rate * (floor + exp(-(h_j - k_j - lead)^2 / (2 width^2)))``, averaged over the
    tasks: a coordinate is learnt fastest just beyond its skill (``lead``), as in
    :class:`AnalyticStudent`, so a teacher that keeps every coordinate near its own
    frontier leaves a better student at the hardest corner than training there from the
    start. The coordinates learn independently; their weights ``w`` (summing to 1) say
    how much each matters to the loss, so a teacher must find a separate pace for each.

    Args:
        config: the env's settings (family, budget, meta_batch, omega_noise, ...).
        seed: seeds the noise and the per-task perturbation of ω.
        noise: standard deviation of the measurement noise on normalised losses.
        weights: one per coordinate (normalised to sum 1); ``None`` gives the first
            coordinate twice the weight of each other one.
    """

    floor = 0.05
    lead = 0.1
    width = 0.15
    tau = 0.1

    def __init__(
        self,
        config: MetaCurriculumConfig,
        seed: int,
        noise: float = 0.01,
        weights: np.ndarray | None = None,
    ) -> None:
        self.config = config
        self.family: TaskFamily = make_family(config)
        self.rng = np.random.default_rng(seed)
        self.noise = noise
        d = self.family.dim
        raw = np.array([2.0] + [1.0] * (d - 1)) if weights is None else np.asarray(weights, float)
        if raw.shape != (d,) or np.any(raw < 0) or raw.sum() <= 0:
            raise ValueError(f"weights={weights!r} must be {d} non-negative numbers, not all 0.")
        self.weights = raw / raw.sum()
        self.skill = np.zeros(d)
        # An ideal curriculum reaches the top of every coordinate in about 60% of the budget.
        self.rate = 1.0 / (0.6 * config.budget)

    def _params(self, omega: Any, tasks: int) -> np.ndarray:
        offsets = self.rng.uniform(-1.0, 1.0, size=(tasks, self.family.dim))
        return self.family.task_parameters(omega, offsets, self.config.omega_noise)

    def normalized_loss(self, params: np.ndarray) -> np.ndarray:
        """The noiseless normalised loss of tasks with coordinates ``params`` (``[T, d]``)."""
        h = np.stack([self.family.difficulty(row) for row in np.atleast_2d(params)])
        return 1.0 / (1.0 + np.exp(-((h - self.skill) @ self.weights) / self.tau))

    def _measure(self, params: np.ndarray) -> Measurement:
        norm = self.normalized_loss(params) + self.noise * self.rng.standard_normal(len(params))
        return analytic_measurement(norm, self.family.n_way(params))

    def train(self, omega: Any, meta_steps: int) -> dict[str, Any]:
        losses, all_n = [], []
        for _ in range(meta_steps):
            params = self._params(omega, self.config.meta_batch)
            h = np.stack([self.family.difficulty(row) for row in params])
            gain = self.floor + np.exp(-((h - self.skill - self.lead) ** 2) / (2 * self.width**2))
            self.skill = np.minimum(self.skill + self.rate * gain.mean(axis=0), 1.2)
            losses.append(float(np.mean(self.normalized_loss(params))))
            all_n.extend(int(n) for n in self.family.n_way(params))
        return {"loss": float(np.mean(losses)), "accuracy": float("nan"), "n_way": all_n}

    def validate(self, omega: Any) -> Measurement:
        return self._measure(self._params(omega, self.config.val_tasks))

    def evaluate_target(self) -> Measurement:
        return self._measure(np.tile(self.family.hardest, (self.config.target_tasks, 1)))

    def evaluate_test(self, num_tasks: int, seed: int) -> AdaptationCurves:
        rng = np.random.default_rng(seed)
        hardest = np.tile(self.family.hardest, (num_tasks, 1))
        n = self.family.n_way(hardest)
        final = self.normalized_loss(hardest) + self.noise * rng.standard_normal(num_tasks)
        return analytic_curves(final, n, self.config.adaptation_steps)

    def save(self, path: str) -> None:
        save_analytic(path, {"skill": self.skill.tolist(), "config": self.config.to_dict()})


def analytic_student(config: MetaCurriculumConfig, seed: int) -> CurriculumStudent:
    """The analytic student of ``config``'s family: :class:`AnalyticStudent` for ``classes``
    (the number of classes), :class:`AnalyticVectorStudent` for every other family."""
    if config.family == "classes":
        return AnalyticStudent(config, seed)
    return AnalyticVectorStudent(config, seed)


#: The kinds of student by name (the env setting ``student``): ``factory(config, seed)``
#: builds one; a factory's optional ``check(config)`` fails early on settings it could not
#: run with. ``"learner"`` is imported on first use (it needs torch).
STUDENTS: Registry[Callable[[MetaCurriculumConfig, int], CurriculumStudent]] = Registry(
    "student", hint="add yours with STUDENTS.register(name, factory)", setting="student="
)
STUDENTS.register("learner", "metacurriculum.envs.learner_student:learner_student")
STUDENTS.register("analytic", analytic_student)


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
