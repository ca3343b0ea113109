"""The analytic students: closed-form learning models with the MAML student's interface.

An analytic student answers in microseconds, so teachers can be developed, tested and
ranked without training a network. :class:`AnalyticStudent` (one skill in classes) and
:class:`AnalyticVectorStudent` (one skill per coordinate of a vector ω) are the students
of ``MetaCurriculum-Analytic-v0`` and ``MetaCurriculum-AnalyticMulti-v0``; the profiles
of :mod:`metacurriculum.envs.analytic_profiles` vary the learning model so that each
favours a different kind of teacher.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from metacurriculum.envs.config import MetaCurriculumConfig
from metacurriculum.envs.families import TaskFamily, make_family, perturb
from metacurriculum.envs.students import (
    AdaptationCurves,
    CurriculumStudent,
    Measurement,
    chance_loss,
)


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

    Subclasses (the profiles of :mod:`~metacurriculum.envs.analytic_profiles`) change
    the learning model through :meth:`learn` and :meth:`normalized_loss`, and the class
    attributes below.

    Args:
        config: the env's settings (n_max, budget, meta_batch, omega_noise, ...).
        seed: seeds the noise and the per-task perturbation of ω.
        noise: standard deviation of the measurement noise on normalised losses.

    Attributes:
        floor: what a task far from the skill still teaches, relative to the best one.
        cap: the skill stops at ``n_max + cap`` (``None``: it never stops). The cap makes
            every teacher that reaches it end with the same student.
        test_noise: the noise of ``evaluate_test`` (``None``: ``noise``).
    """

    floor = 0.05
    cap: float | None = 2.0
    test_noise: float | None = None

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

    def learn(self, n_way: np.ndarray) -> None:
        """One meta-step on tasks of ``n_way`` classes: the skill grows by ``rate`` times the
        mean gain of the tasks."""
        gain = self.floor + np.exp(-((n_way - self.skill - 1.0) ** 2) / (2 * self.width**2))
        skill = self.skill + self.rate * float(np.mean(gain))
        self.skill = skill if self.cap is None else min(skill, float(self.config.n_max) + self.cap)

    def train(self, omega: float, meta_steps: int) -> dict[str, Any]:
        losses, all_n = [], []
        for _ in range(meta_steps):
            n_way = self._n_way(omega, self.config.meta_batch)
            self.learn(n_way)
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
        noise = self.noise if self.test_noise is None else self.test_noise
        final = self.normalized_loss(np.full(num_tasks, n)) + noise * rng.standard_normal(num_tasks)
        return analytic_curves(final, np.full(num_tasks, n), self.config.adaptation_steps)

    def state(self) -> dict[str, Any]:
        """What :meth:`save` writes besides the settings (JSON types)."""
        return {"skill": self.skill}

    def save(self, path: str) -> None:
        save_analytic(path, {**self.state(), "config": self.config.to_dict()})


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

    def learn(self, params: np.ndarray) -> None:
        """One meta-step on tasks with coordinates ``params`` (``[T, d]``)."""
        h = np.stack([self.family.difficulty(row) for row in params])
        gain = self.floor + np.exp(-((h - self.skill - self.lead) ** 2) / (2 * self.width**2))
        self.skill = np.minimum(self.skill + self.rate * gain.mean(axis=0), 1.2)

    def train(self, omega: Any, meta_steps: int) -> dict[str, Any]:
        losses, all_n = [], []
        for _ in range(meta_steps):
            params = self._params(omega, self.config.meta_batch)
            self.learn(params)
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

    def state(self) -> dict[str, Any]:
        """What :meth:`save` writes besides the settings (JSON types)."""
        return {"skill": self.skill.tolist()}

    def save(self, path: str) -> None:
        save_analytic(path, {**self.state(), "config": self.config.to_dict()})


def analytic_student(config: MetaCurriculumConfig, seed: int) -> CurriculumStudent:
    """The analytic student of ``config``'s family: :class:`AnalyticStudent` for ``classes``
    (the number of classes), :class:`AnalyticVectorStudent` for every other family."""
    if config.family == "classes":
        return AnalyticStudent(config, seed)
    return AnalyticVectorStudent(config, seed)
