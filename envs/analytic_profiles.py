"""Analytic student profiles: closed-form students on which a known kind of teacher wins.

As TeachMyAgent's students reward different teachers, each profile is a learning model
built so that the teacher that should win on it is known in advance; together they rank
teachers rather than only telling them to climb. Each is a student name
(``MetaCurriculumConfig.student``, :data:`ANALYTIC_PROFILES`) and a registered env id
(:data:`metacurriculum.registration.ENV_SPECS`):

================================ ======================================= ==========================
student                          what it teaches                         should win by construction
================================ ======================================= ==========================
``analytic-easy-first``          tasks just beyond the skill teach most  teachers that track the
                                 (the ``analytic`` model without its     frontier (``static``,
                                 cap, so reaching the top sooner pays)   ``adaptive``); ``none`` last
``analytic-hardest``             harder tasks teach more, whatever the   ``none``: a curriculum can
                                 skill                                   only lose
``analytic-forgetting``          one competence per number of classes,   teachers that keep
                                 learnable once the one below is known,  practising every level
                                 each decaying unless practised; a task  (``random``, ``adr``);
                                 needs every level up to its own         monotone schedules forget
``analytic-noisy``               the easy-first model measured on two    ``linear`` (it reads no
                                 validation and four target tasks, each  measurement); thresholds
                                 with a large error                      and slopes chase the noise
``analytic-calibrated``          learning curves fitted to the MAML      no teacher clearly: the
                                 student at the ``reduced`` settings     student ends near its
                                                                         asymptote whatever it did
``analytic-local`` (vector ω)    competence is local: training at a      a path to the corner that
                                 task teaches near it, and only where    moves with the student
                                 slightly easier tasks are known         (``linear``, ``adaptive``);
                                                                         ``none`` learns nothing
================================ ======================================= ==========================

``benchmarks/experiments/report_card.py`` runs every registered teacher on every profile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from metacurriculum.envs.analytic import (
    AnalyticStudent,
    AnalyticVectorStudent,
    analytic_measurement,
)
from metacurriculum.envs.config import MetaCurriculumConfig
from metacurriculum.envs.students import CurriculumStudent, Measurement


class EasyFirstStudent(AnalyticStudent):
    """Easy first pays: :class:`AnalyticStudent`'s model with no cap on the skill.

    Tasks one class beyond the skill teach most, so a teacher that keeps ω just ahead of
    the skill wins, and ``none`` (n_max from the start) learns almost nothing. Without the
    cap, a student that reached the top sooner keeps improving there: teachers that all
    reach the top still end apart, by how soon they did.
    """

    cap = None


class HardestFirstStudent(AnalyticStudent):
    """Training on the hardest tasks is best: a curriculum can only lose.

    A meta-step on an ``n``-way task raises the skill by ``rate * (n - n_min + 1) /
    (n_max - n_min + 1)``, whatever the skill: harder tasks teach more, and what they
    teach carries to easier ones. ``none`` ends with a skill of ``n_max + 2`` (the loss
    of :class:`AnalyticStudent`'s capped best); every step elsewhere is lost.
    """

    cap = None

    def __init__(self, config: MetaCurriculumConfig, seed: int, noise: float = 0.01) -> None:
        super().__init__(config, seed, noise)
        self.rate = (config.n_max + 1) / config.budget

    def learn(self, n_way: np.ndarray) -> None:
        low, high = self.config.n_min, self.config.n_max
        self.skill += self.rate * float(np.mean((n_way - low + 1) / (high - low + 1)))


class NoisyStudent(EasyFirstStudent):
    """The easy-first model, measured with a large error.

    Every validation and target task's normalised loss has a Gaussian error of standard
    deviation ``noise`` (0.3: about what one 1-shot task's few queries give), and the
    registered id measures two validation and four target tasks a step. Teachers that
    act on single measurements (thresholds, slopes) chase the noise; ``linear`` reads
    none and loses nothing. The final evaluation (200 tasks in the harness) keeps the
    small error of the other profiles.
    """

    test_noise = 0.01

    def __init__(self, config: MetaCurriculumConfig, seed: int, noise: float = 0.3) -> None:
        super().__init__(config, seed, noise)


class ForgettingStudent(AnalyticStudent):
    """Skills decay unless practised.

    One competence ``m_k`` in ``[0, 1]`` per number of classes ``k`` (``n_min`` to
    ``n_max``), all 0 at first. The normalised loss of an ``n``-way task is one minus the
    mean competence of the levels up to ``n``: it needs every one of them. A task of
    ``k`` classes raises ``m_k`` by ``rate * m_{k-1} * (1 - m_k)`` (divided among the
    meta-batch; the easiest level needs nothing below it), and every level not trained at
    a meta-step loses ``decay * m_k``. A schedule that climbs and never comes back loses
    the levels it left; teachers that keep practising every level keep them, and
    ``none`` learns nothing (its level needs the one below).

    Attributes:
        learning_rate: ``rate`` for a budget of 1000 meta-steps (scaled to the budget).
        decay_rate: ``decay`` for a budget of 1000 meta-steps (scaled to the budget).
    """

    learning_rate = 0.3
    decay_rate = 0.002

    def __init__(self, config: MetaCurriculumConfig, seed: int, noise: float = 0.01) -> None:
        super().__init__(config, seed, noise)
        scale = 1000 / config.budget  # the rates are for a budget of 1000 meta-steps
        self.rate = min(self.learning_rate * scale, 1.0)
        self.decay = min(self.decay_rate * scale, 1.0)
        self.competence = np.zeros(config.n_max - config.n_min + 1)

    def normalized_loss(self, n_way: np.ndarray) -> np.ndarray:
        cumulative = np.cumsum(self.competence) / np.arange(1, len(self.competence) + 1)
        return 1.0 - cumulative[np.asarray(n_way, dtype=int) - self.config.n_min]

    def learn(self, n_way: np.ndarray) -> None:
        m = self.competence
        level = np.asarray(n_way, dtype=int) - self.config.n_min
        below = np.where(level > 0, m[np.maximum(level - 1, 0)], 1.0)
        gain = np.zeros_like(m)
        np.add.at(gain, level, self.rate * below * (1.0 - m[level]) / len(level))
        trained = np.zeros(len(m), dtype=bool)
        trained[level] = True
        self.competence = np.clip(np.where(trained, m, m * (1.0 - self.decay)) + gain, 0.0, 1.0)

    def state(self) -> dict[str, Any]:
        return {"competence": self.competence.tolist()}


class LocalStudent(AnalyticVectorStudent):
    """Competence is local, for any task family: training at a task teaches near it.

    The student has a skill ``z(h) >= 0`` over the difficulty cube ``h``
    (:meth:`TaskFamily.difficulty`, 0 easiest, 1 hardest per coordinate), held on a grid
    of ``points`` per coordinate and read by multilinear interpolation; 0 at first. Its
    competence is ``c = z / (1 + z)`` and the normalised loss of a task ``1 - c``. A
    task at ``h`` raises the skill at every grid point ``x`` by ``rate * K(x - h) * max(c(h -
    step), floor * (1 - max_j h_j))`` (divided among the meta-batch): ``K`` is a Gaussian
    of width ``width``, and ``c(h - step)`` the competence at a task easier by ``step_j``
    in every coordinate ``j`` (clipped at the easiest end; 1 below the easiest corner): a
    task is learnable once a slightly easier one is known, and easy tasks a little even
    before. The step of each coordinate, its pace, is drawn per student (uniform in
    ``step_range``).

    Absolute learning progress at a task is then large where training teaches, at the
    frontier of what is known, which is what progress-based teachers (ALP-GMM) look for;
    ``none`` learns nothing (the hardest corner is not learnable before the tasks below).
    The target is one corner, so a path to it (``linear``, ``adaptive``) still beats
    teachers that explore the whole box; among those, ALP-GMM (sampling where progress
    is) beats uniform sampling.
    """

    width = 0.2
    step_range = (0.3, 0.6)
    learning_rate = 0.1
    floor = 0.5

    def __init__(self, config: MetaCurriculumConfig, seed: int, noise: float = 0.01) -> None:
        super().__init__(config, seed, noise)
        d = self.family.dim
        self.rate = self.learning_rate * 1000 / config.budget
        self.points = max(3, round(4096 ** (1 / d)))  # 16 per coordinate in 3-D
        self.step = self.rng.uniform(*self.step_range, size=d)
        self.grid = np.linspace(0.0, 1.0, self.points)
        self.z = np.zeros((self.points,) * d)

    def competence(self, h: np.ndarray) -> np.ndarray:
        """The competence at difficulties ``h`` (``[T, d]``), from the multilinearly
        interpolated skill."""
        h = np.clip(np.atleast_2d(h), 0.0, 1.0) * (self.points - 1)
        low = np.minimum(np.floor(h).astype(int), self.points - 2)
        frac = h - low
        z = np.zeros(len(h))
        for corner in range(2 ** h.shape[1]):
            bits = np.array([(corner >> j) & 1 for j in range(h.shape[1])])
            weight = np.prod(np.where(bits, frac, 1.0 - frac), axis=1)
            z += weight * self.z[tuple((low + bits).T)]
        return z / (1.0 + z)

    def normalized_loss(self, params: np.ndarray) -> np.ndarray:
        h = np.stack([self.family.difficulty(row) for row in np.atleast_2d(params)])
        return 1.0 - self.competence(h)

    def learn(self, params: np.ndarray) -> None:
        h = np.stack([self.family.difficulty(row) for row in params])
        easier = h - self.step
        learnable = np.where(np.all(easier < 0, axis=1), 1.0, self.competence(easier))
        learnable = np.maximum(learnable, self.floor * (1.0 - h.max(axis=1)))
        gain = np.zeros_like(self.z)
        for task, weight in zip(h, learnable, strict=True):
            kernel = np.exp(-((self.grid[None, :] - task[:, None]) ** 2) / (2 * self.width**2))
            bump = kernel[0]
            for row in kernel[1:]:
                bump = np.multiply.outer(bump, row)
            gain += weight * bump
        self.z += self.rate * gain / len(h)

    def state(self) -> dict[str, Any]:
        return {"skill": self.z.tolist(), "step": self.step.tolist()}


class CalibratedStudent(AnalyticStudent):
    """Learning curves fitted to the MAML student at the ``reduced`` settings.

    One amount of training ``u``, 0 at first; a meta-step on tasks of ``n`` classes adds
    ``k * g(n)`` (the mean over its tasks) and the normalised loss of an ``n``-way task is
    ``b_n + (a_n - b_n) * exp(-u)``. :data:`CALIBRATION` was fitted by
    ``benchmarks/experiments/calibrate_analytic.py`` to runs of ``none``, ``linear`` and ``random``
    (seeds 0 and 1) on Omniglot 5-way at the ``reduced`` preset (16 filters x 3 blocks,
    first order, 200 meta-steps); the fit and its error are in the README. Measurements
    carry the fit's residual error per task (large: 4 validation and 8 target tasks).

    What the real student rewards there: 2-way tasks teach the 5-way ones nothing
    (``g(2)`` is about 0), 3- and 4-way tasks about as much as 5-way ones, and the student
    is close to its asymptote after 200 meta-steps whatever it trained on, so the
    teachers end close together; those that dwell at 2 classes lose.
    """

    #: Fitted on the reduced preset (``docs/analytic/calibration.json``), for n = 2..5.
    CALIBRATION: ClassVar[dict[str, Any]] = {
        "n_values": (2, 3, 4, 5),
        "k": 0.014758,
        "g": (0.0, 1.391185, 1.079993, 1.0),
        "a": (0.821594, 0.692386, 0.669710, 0.668384),
        "b": (0.402561, 0.419803, 0.375817, 0.400707),
        "task_noise_target": 0.112605,
        "task_noise_val": 0.304788,
    }
    test_noise = 0.01

    def __init__(self, config: MetaCurriculumConfig, seed: int, noise: float | None = None) -> None:
        fit = self.CALIBRATION
        n_values = tuple(range(config.n_min, config.n_max + 1))
        if n_values != fit["n_values"]:
            raise ValueError(
                f"the calibrated profile was fitted for {fit['n_values'][0]}..{fit['n_values'][-1]} "
                f"classes, the settings give {n_values[0]}..{n_values[-1]}; use n_max=5 and "
                "omega_min=2 (MetaCurriculum-AnalyticCalibrated-v0)."
            )
        super().__init__(config, seed, fit["task_noise_val"] if noise is None else noise)
        self.target_noise = fit["task_noise_target"] if noise is None else noise
        self.u = 0.0
        self.g, self.a, self.b = (np.array(fit[key]) for key in ("g", "a", "b"))

    def normalized_loss(self, n_way: np.ndarray) -> np.ndarray:
        i = np.asarray(n_way, dtype=int) - self.config.n_min
        return self.b[i] + (self.a[i] - self.b[i]) * np.exp(-self.u)

    def learn(self, n_way: np.ndarray) -> None:
        self.u += self.CALIBRATION["k"] * float(np.mean(self.g[n_way - self.config.n_min]))

    def evaluate_target(self) -> Measurement:
        n_way = np.full(self.config.target_tasks, self.config.n_max)
        norm = self.normalized_loss(n_way) + self.target_noise * self.rng.standard_normal(
            n_way.shape
        )
        return analytic_measurement(norm, n_way)

    def state(self) -> dict[str, Any]:
        return {"training": self.u}


def _classes_only(cls: type) -> Callable[[MetaCurriculumConfig, int], CurriculumStudent]:
    def factory(config: MetaCurriculumConfig, seed: int) -> CurriculumStudent:
        if config.family != "classes":
            raise ValueError(
                f"the {cls.__name__} profile has one skill per number of classes; it needs "
                f"family='classes', not {config.family!r} (for a vector ω use "
                "student='analytic-local' or 'analytic')."
            )
        return cls(config, seed)

    factory.__doc__ = cls.__doc__
    return factory


#: Student names -> factories of the profiles (``MetaCurriculumConfig.student``).
ANALYTIC_PROFILES: dict[str, Callable[[MetaCurriculumConfig, int], CurriculumStudent]] = {
    "analytic-easy-first": _classes_only(EasyFirstStudent),
    "analytic-hardest": _classes_only(HardestFirstStudent),
    "analytic-forgetting": _classes_only(ForgettingStudent),
    "analytic-noisy": _classes_only(NoisyStudent),
    "analytic-calibrated": _classes_only(CalibratedStudent),
    "analytic-local": LocalStudent,
}
