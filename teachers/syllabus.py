"""Syllabus curricula as teachers: a neighbour's curriculum-learning library steering ω.

`Syllabus <https://github.com/RyanNavillus/Syllabus>`_ (``pip install
metacurriculum[syllabus]``, the ``syllabus-rl`` package) gives RL agents a curriculum over
a *task space*: it samples a task for each episode and learns from the episodes'
outcomes. Here a task is a point of a grid over the ω box and an "episode" is one env
step of the student: every ``act`` tells the curriculum how the previous task went, asks
it for the next task, and trains the student at that ω (the ω itself with
``action_type="omega"``, the change to it otherwise).

============================= ==================================================================
name                          Syllabus curriculum
============================= ==================================================================
``syllabus-lp``               ``LearningProgress`` (Kanitscheider et al. 2021): tasks drawn by the
                              gap between a fast and a slow average of each task's success rate
``syllabus-dr``               ``DomainRandomization``: tasks drawn uniformly
``syllabus``                  any of them by ``curriculum=``, or a function
                              ``task_space -> Curriculum`` of your own
============================= ==================================================================

**Success.** Syllabus's curricula learn from a success rate in [0, 1] per task; the
student's is its competence at the task, ``clip(1 - val_loss_normalized, 0, 1)`` (the
normalised validation loss is the loss over chance, ``log n``: 0 is perfect, 1 is chance).

**Evaluation.** ``LearningProgress`` evaluates the agent on every task each time it
updates (its ``Evaluator``); a teacher cannot, it measures the student only at the ω it
trained at. Its evaluator here answers, for each task, with the latest measurement at
that task or, for a task not measured yet, at the nearest task measured (in ω normalised
to its range), so that the learning progress spreads from where the student is measured
instead of locking onto the first task tried (with every rate 0 but one, Syllabus's
sampling gives all its mass to that one). The curriculum updates after every step
(``eval_interval=1``).

**NumPy's settings.** Importing Syllabus's curricula runs ``np.seterr(all="raise")`` (in
its PLR sampler's module), which would make every later floating-point underflow in the
process an error (other teachers' ``exp`` included); the adapter imports it and puts
NumPy's settings back.

**Randomness.** Syllabus draws tasks with NumPy's global generator; the teacher swaps its
own state in around every call into the curriculum (and seeds the task space), so a
seed gives the same tasks and other code's draws are untouched (not thread-safe: one
teacher's calls at a time).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from metacurriculum.teachers.base import OmegaTeacher

INSTALL_HINT = "pip install metacurriculum[syllabus] (or pip install syllabus-rl)"
#: The most grid points of a one-parameter ω by default (one per unit: every number of
#: classes), and per coordinate of a vector ω (the grid is their product).
MAX_BINS, MAX_VECTOR_BINS = 50, 5


def import_syllabus() -> Any:
    """The ``syllabus`` package.

    Raises:
        ImportError: when it is not installed, naming the extra.
    """
    # Importing syllabus.curricula runs np.seterr(all="raise") (its PLR sampler's module):
    # every later underflow anywhere in the process would raise. The settings are put back.
    settings = np.geterr()
    try:
        import syllabus.curricula
        import syllabus.task_space
    except ImportError as error:
        raise ImportError(
            f"the Syllabus teachers need Syllabus: {INSTALL_HINT} ({error})."
        ) from error
    finally:
        np.seterr(**settings)
    return syllabus


class Measurements:
    """A Syllabus ``Evaluator`` for a teacher: the latest competence at each task, or at the
    nearest task measured (see the module's docstring).

    Args:
        points: the tasks' ω, normalised to [0, 1] per coordinate, ``[tasks, d]``.
    """

    def __init__(self, points: np.ndarray) -> None:
        self.points = points
        self.latest = np.full(len(points), np.nan)

    def record(self, task: int, success: float) -> None:
        """The student's competence at ``task`` was just measured."""
        self.latest[task] = success

    def rates(self) -> np.ndarray:
        """Each task's success rate: its latest measurement, else its nearest task's."""
        measured = np.flatnonzero(~np.isnan(self.latest))
        if measured.size == 0:
            return np.zeros(len(self.points))
        distance = np.linalg.norm(self.points[:, None, :] - self.points[None, measured], axis=2)
        return self.latest[measured[np.argmin(distance, axis=1)]]

    def evaluate_agent(self, num_episodes: int = 1, verbose: bool = False) -> tuple:
        """Syllabus's ``Evaluator.evaluate_agent``: ``(returns, success rates, final success
        rates, lengths)``; the rates as torch tensors, as Syllabus reads them."""
        import torch

        rates = torch.as_tensor(self.rates(), dtype=torch.float64)
        return None, rates, rates, None


def _learning_progress(task_space: Any, measurements: Measurements, **kwargs: Any) -> Any:
    from syllabus.curricula import LearningProgress

    class ListedLearningProgress(LearningProgress):
        """``LearningProgress`` whose distribution is a list: Syllabus 0.7's ``sample``
        tests ``task_dist != []``, which NumPy 2 refuses for an array of several tasks."""

        def _sample_distribution(self) -> list[float]:
            return list(super()._sample_distribution())

    return ListedLearningProgress(measurements, task_space, **{"eval_interval": 1, **kwargs})


def _domain_randomization(task_space: Any, measurements: Measurements, **kwargs: Any) -> Any:
    from syllabus.curricula import DomainRandomization

    return DomainRandomization(task_space, **kwargs)


#: Syllabus's curricula by name: ``build(task_space, measurements, **kwargs) -> Curriculum``.
CURRICULA: dict[str, Callable[..., Any]] = {
    "learning-progress": _learning_progress,
    "domain-randomization": _domain_randomization,
}


class SyllabusTeacher(OmegaTeacher):
    """A Syllabus curriculum steering ω over a grid of tasks (see the module's docstring).

    Args:
        curriculum: ``"learning-progress"``, ``"domain-randomization"``, or a function
            ``build(task_space, measurements) -> Curriculum`` (a Syllabus ``Curriculum``
            over the ``DiscreteTaskSpace`` of the grid; ``measurements`` is the
            :class:`Measurements` evaluator, for curricula that evaluate).
        bins: grid points per coordinate of ω, both ends included; ``None``: one per unit
            of the coordinate (every number of classes), at most :data:`MAX_BINS` for a
            one-parameter ω and :data:`MAX_VECTOR_BINS` per coordinate of a vector ω.
        **curriculum_kwargs: settings of the curriculum's constructor (``ema_alpha``,
            ``p_theta``, ``random_start_tasks``...).

    Raises:
        ImportError: when Syllabus is not installed, naming the extra.
        ValueError: for an unknown curriculum name or fewer than 2 bins.
    """

    vector = True

    def __init__(
        self,
        curriculum: str | Callable[..., Any] = "learning-progress",
        bins: int | None = None,
        **curriculum_kwargs: Any,
    ) -> None:
        import_syllabus()
        if isinstance(curriculum, str) and curriculum not in CURRICULA:
            raise ValueError(
                f"curriculum={curriculum!r} is unknown; choose one of {sorted(CURRICULA)}, or "
                "pass a function (task_space, measurements) -> Curriculum."
            )
        if bins is not None and (not isinstance(bins, int) or bins < 2):
            raise ValueError(f"bins={bins!r} must be an integer >= 2 (or None).")
        self.curriculum_name = curriculum
        self.bins = bins
        self.curriculum_kwargs = curriculum_kwargs

    # -- an episode ------------------------------------------------------------------------

    def on_reset(self) -> None:
        self.curriculum: Any = None  # built at the first act, from the ω box in info
        self.task: int | None = None
        self.counts: np.ndarray | None = None
        # Syllabus draws with NumPy's global generator: the teacher's own state goes in.
        self._numpy_state = np.random.RandomState(self.rng.integers(2**32)).get_state()

    def choose_omega(self, observation: np.ndarray, info: Mapping[str, Any]) -> np.ndarray:
        if self.curriculum is None:
            self._build(info)
        measured = self.measured(info)
        if measured is not None and self.task is not None:
            success = float(np.clip(1.0 - measured[1], 0.0, 1.0))
            self.measurements.record(self.task, success)
            with self._numpy():
                self.curriculum.update_task_progress(self.task, success)
                self.curriculum.update_on_episode(success, 1, self.task, success)
        with self._numpy():
            task = self.curriculum.sample(k=1)[0]
        self.task = int(task)
        self.counts[self.task] += 1
        return self.omegas[self.task]

    def summary(self) -> dict[str, float]:
        """``teacher/hardest_fraction`` (the share of steps at the hardest task) and
        ``teacher/tasks_tried`` (the share of the grid's tasks drawn at least once)."""
        if self.counts is None or self.counts.sum() == 0:
            return {}
        return {
            "teacher/hardest_fraction": float(self.counts[self.hardest] / self.counts.sum()),
            "teacher/tasks_tried": float(np.mean(self.counts > 0)),
        }

    # -- the task space --------------------------------------------------------------------

    def _build(self, info: Mapping[str, Any]) -> None:
        from syllabus.task_space import DiscreteTaskSpace

        low = np.atleast_1d(np.asarray(info["omega_min"], dtype=float))
        high = np.atleast_1d(np.asarray(info["omega_max"], dtype=float))
        unit = np.atleast_1d(np.asarray(info.get("omega_unit", 1.0), dtype=float))
        cap = MAX_BINS if self.dim == 1 else MAX_VECTOR_BINS
        counts = [
            self.bins or int(min(cap, round((h - lo) / u) + 1))
            for lo, h, u in zip(low, high, unit, strict=True)
        ]
        axes = [np.linspace(lo, h, max(n, 2)) for lo, h, n in zip(low, high, counts, strict=True)]
        grid = np.array(list(itertools.product(*axes)))  # [tasks, d]
        self.omegas = grid if self.dim > 1 else grid[:, 0]
        span = np.maximum(high - low, 1e-12)
        self.measurements = Measurements((grid - low) / span)
        hardest = np.atleast_1d(np.asarray(info.get("omega_hardest", high), dtype=float))
        self.hardest = int(np.argmin(np.linalg.norm(grid - hardest, axis=1)))
        self.counts = np.zeros(len(grid), dtype=int)
        task_space = DiscreteTaskSpace(len(grid))
        task_space.seed(int(self.rng.integers(2**31)))
        build = (
            CURRICULA[self.curriculum_name]
            if isinstance(self.curriculum_name, str)
            else self.curriculum_name
        )
        with self._numpy():
            self.curriculum = build(task_space, self.measurements, **self.curriculum_kwargs)

    @contextlib.contextmanager
    def _numpy(self) -> Iterator[None]:
        """NumPy's global generator holds this teacher's state inside the block."""
        outside = np.random.get_state()  # noqa: NPY002 - Syllabus draws from the global one
        np.random.set_state(self._numpy_state)  # noqa: NPY002
        try:
            yield
        finally:
            self._numpy_state = np.random.get_state()  # noqa: NPY002
            np.random.set_state(outside)  # noqa: NPY002


class SyllabusLearningProgress(SyllabusTeacher):
    """Syllabus's learning-progress curriculum (Kanitscheider et al. 2021) over an ω grid."""

    def __init__(self, bins: int | None = None, **curriculum_kwargs: Any) -> None:
        super().__init__("learning-progress", bins, **curriculum_kwargs)


class SyllabusDomainRandomization(SyllabusTeacher):
    """Syllabus's domain randomisation: tasks of an ω grid drawn uniformly."""

    def __init__(self, bins: int | None = None, **curriculum_kwargs: Any) -> None:
        super().__init__("domain-randomization", bins, **curriculum_kwargs)
