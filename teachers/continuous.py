"""Teachers made for continuous, multi-dimensional task spaces: ALP-GMM and ADR.

Both steer every coordinate of ω (``vector = True``) and work in the unit box: each
coordinate scaled to ``[0, 1]`` by its bounds (``info["omega_min"]``,
``info["omega_max"]``), so one setting serves parameters of any range. Both read the
normalised validation loss at the ω of the previous step (``info["val_loss_normalized"]``,
measured after training there), as their papers read a task's episode return.

============== ==================================================================
name           teacher
============== ==================================================================
alp-gmm        Portelas et al. 2019: a Gaussian mixture over (ω, absolute learning
               progress), refitted every ``fit_rate`` steps; ω is drawn from a
               component chosen in proportion to its mean ALP, or uniformly
adr            OpenAI et al. 2019 (automatic domain randomisation): ω uniform in a
               box that starts at the easiest corner; each bound is widened or
               narrowed by the student's performance when sampled at it
============== ==================================================================

The rules follow the reference implementations as read in
``../shared/reference/curriculum-teachers.md`` (teachDeepRL ``alp_gmm.py``, TeachMyAgent
``adr.py``); the defaults that differ are set for episodes of 50-250 env steps (theirs
run for thousands of episodes) and are named in each class, as are the two points where
ADR's rules differ from TeachMyAgent's code (and a setting that follows it).
"""

from __future__ import annotations

import math
import warnings
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from metacurriculum.teachers.base import OmegaTeacher, register_teacher


def unit_box(info: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` of ω as ``[d]`` arrays."""
    low = np.atleast_1d(np.asarray(info["omega_min"], dtype=float))
    high = np.atleast_1d(np.asarray(info["omega_max"], dtype=float))
    return low, high


def _check_fraction(name: str, value: float, *, open_low: bool = False) -> None:
    ok = isinstance(value, (int, float)) and math.isfinite(value)
    ok = ok and (0 < value <= 1 if open_low else 0 <= value <= 1)
    if not ok:
        bounds = "(0, 1]" if open_low else "[0, 1]"
        raise ValueError(f"{name}={value!r} must lie in {bounds}.")


def _check_int(name: str, value: int, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}.")


class NearestALP:
    """ALP-GMM's absolute learning progress: ``|r - r_old|``, ``r_old`` the competence of
    the nearest task seen before (Euclidean, in the unit box); 0 until more than
    ``warmup`` tasks were seen (teachDeepRL: 5).

    Args:
        warmup: the tasks to see before ALP is measured.
        max_size: the tasks remembered (the oldest are forgotten; ``None``: all).
    """

    def __init__(self, warmup: int = 5, max_size: int | None = None) -> None:
        self.warmup = warmup
        self.tasks: deque[np.ndarray] = deque(maxlen=max_size)
        self.competences: deque[float] = deque(maxlen=max_size)

    def __call__(self, task: np.ndarray, competence: float) -> float:
        """The ALP of ``task`` (then remembers it)."""
        alp = 0.0
        if len(self.tasks) > self.warmup:
            distances = np.linalg.norm(np.stack(self.tasks) - task, axis=1)
            alp = abs(competence - self.competences[int(np.argmin(distances))])
        self.tasks.append(np.asarray(task, dtype=float))
        self.competences.append(float(competence))
        return alp


@register_teacher("alp-gmm")
@dataclass(eq=False)
class ALPGMMTeacher(OmegaTeacher):
    """ALP-GMM (Portelas et al. 2019): sample ω where the absolute learning progress is.

    After each step the task trained at (ω in the unit box) gets its competence ``r``,
    minus the normalised validation loss measured there, and its ALP, ``|r - r_old|``
    with ``r_old`` the competence of the nearest task seen before (:class:`NearestALP`).
    Every ``fit_rate`` steps, Gaussian mixtures with ``k = 2 .. max_k`` full-covariance
    components are fitted (scikit-learn, one EM initialisation, no warm start) to the
    last ``fit_rate`` points ``(ω, ALP)``, and the one with the lowest AIC is kept.
    During the first ``fit_rate`` steps (the bootstrap), and with probability
    ``random_ratio`` afterwards, ω is drawn uniformly over the box; otherwise a
    component is chosen with probability proportional to its mean ALP (the last
    coordinate of its mean), ω is drawn from its Gaussian, the ALP coordinate dropped
    and the result clipped to the box.

    Defaults for this env's short episodes: ``fit_rate = 20`` (teachDeepRL: 250,
    TeachMyAgent's benchmark: 150 episodes) and ``k`` capped at ``fit_rate // 4`` so that
    each component has points to fit; ``random_ratio = 0.2`` (teachDeepRL's).

    Args:
        fit_rate: steps between fits, and the points each fit uses.
        max_k: the largest number of components tried.
        random_ratio: the share of uniform draws after the bootstrap.
        warmup: tasks seen before ALP is measured (``NearestALP``).
        criterion: ``"aic"`` (default) or ``"bic"``.
    """

    fit_rate: int = 20
    max_k: int = 10
    random_ratio: float = 0.2
    warmup: int = 5
    criterion: str = "aic"
    vector = True

    def __post_init__(self) -> None:
        _check_int("fit_rate", self.fit_rate, 4)
        _check_int("max_k", self.max_k, 2)
        _check_int("warmup", self.warmup, 0)
        _check_fraction("random_ratio", self.random_ratio)
        if self.criterion not in ("aic", "bic"):
            raise ValueError(f"criterion={self.criterion!r} must be 'aic' or 'bic'.")

    def on_reset(self) -> None:
        self.alp = NearestALP(self.warmup)
        self.points: list[np.ndarray] = []  # [x..., alp] per measured step
        self.gmm: Any = None
        self.fits = 0
        self.draws = {"uniform": 0, "gmm": 0}
        self._last_x: np.ndarray | None = None

    def choose_omega(self, observation: np.ndarray, info: Mapping[str, Any]) -> Any:
        low, high = unit_box(info)
        measured = self.measured(info)
        if measured is not None and self._last_x is not None:
            x = (np.atleast_1d(np.asarray(measured[0], dtype=float)) - low) / (high - low)
            self.update(x, -measured[1])
        x = self.sample(len(low))
        self._last_x = x
        return low + x * (high - low)

    def update(self, x: np.ndarray, competence: float) -> None:
        """Record a task (``x`` in the unit box) and its competence; refit on schedule."""
        alp = self.alp(x, competence)
        self.points.append(np.append(x, alp))
        if len(self.points) % self.fit_rate == 0:
            self.fit(np.stack(self.points[-self.fit_rate :]))

    def fit(self, data: np.ndarray) -> None:
        """Fit the mixtures to ``data`` (rows ``[x..., alp]``) and keep the best by the
        criterion."""
        try:
            from sklearn.exceptions import ConvergenceWarning
            from sklearn.mixture import GaussianMixture
        except ImportError:
            raise ImportError(
                "the alp-gmm teacher fits its mixtures with scikit-learn: "
                "pip install 'metacurriculum[gmm]' (or scikit-learn)."
            ) from None

        best, best_score = None, math.inf
        for k in range(2, max(2, min(self.max_k, len(data) // 4)) + 1):
            gmm = GaussianMixture(
                n_components=k,
                covariance_type="full",
                n_init=1,
                random_state=int(self.rng.integers(2**31 - 1)),
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                gmm.fit(data)
            score = gmm.aic(data) if self.criterion == "aic" else gmm.bic(data)
            if score < best_score:
                best, best_score = gmm, score
        self.gmm = best
        self.fits += 1

    def sample(self, dim: int) -> np.ndarray:
        """A task in the unit box: uniform (bootstrap, ``random_ratio``) or from the GMM."""
        if self.gmm is None or self.rng.uniform() < self.random_ratio:
            self.draws["uniform"] += 1
            return self.rng.uniform(0.0, 1.0, size=dim)
        self.draws["gmm"] += 1
        alps = np.clip(self.gmm.means_[:, -1], 0.0, None)
        p = alps / alps.sum() if alps.sum() > 0 else np.full(len(alps), 1 / len(alps))
        component = int(self.rng.choice(len(alps), p=p))
        draw = self.rng.multivariate_normal(
            self.gmm.means_[component], self.gmm.covariances_[component]
        )
        return np.clip(draw[:-1], 0.0, 1.0)

    def summary(self) -> dict[str, float]:
        """``teacher/uniform_fraction`` (draws made uniformly), ``teacher/fits`` and
        ``teacher/components`` (of the last fit; 0 before the first)."""
        total = max(self.draws["uniform"] + self.draws["gmm"], 1)
        return {
            "teacher/uniform_fraction": self.draws["uniform"] / total,
            "teacher/fits": float(self.fits),
            "teacher/components": float(0 if self.gmm is None else self.gmm.n_components),
        }


@register_teacher("adr")
@dataclass(eq=False)
class ADRTeacher(OmegaTeacher):
    """Automatic domain randomisation (OpenAI et al. 2019): a box of ω that grows where the
    student copes.

    ω is drawn uniformly in the current box ``[lower, upper]`` (per coordinate, in the
    unit box). With probability ``boundary_p`` one coordinate, chosen uniformly, is set
    to one of its current bounds instead: the lower or the upper at random, unless one
    of them is already at the global limit, then the other. The student's performance
    at a boundary step, its normalised validation loss measured there, joins that
    bound's queue; when the queue holds ``queue_len`` values its mean decides: below
    ``expand_below`` the bound moves ``step`` outwards (the lower one down, the upper one
    up, within the global limits), above ``contract_above`` it moves ``step`` inwards
    (never past the other bound); then the queue is emptied.

    The box starts as the single point at the easiest corner (``info["omega_easiest"]``):
    the curriculum starts easy and widens towards the hardest tasks as the student
    masters them. ``step`` is a fraction of each coordinate's range.

    Where this differs from TeachMyAgent's ``ADR`` (``teachers/algos/adr.py``), and why:

    - **Which queues get a measurement.** Here only the bound the step sampled, as in
      OpenAI's Algorithm 1 (a boundary step evaluates one bound, ``D_i``). TeachMyAgent
      appends the reward to the queue of every coordinate whose value equals one of its
      bounds, both bounds when they coincide: at the single-point start every episode
      feeds all ``2d`` queues, so every coordinate widens after ``queue_len`` episodes,
      from measurements most of which did not target that bound.
    - **Which side is sampled when a bound is at its limit.** Here the other side: a
      bound at its global limit cannot widen, so sampling it would only spend steps (a
      bound at its limit never narrows either, unless both are there, then a side is
      drawn at random). TeachMyAgent's code draws a side at random while at most one
      bound is at its limit (its comment says it means to skip a bound at its limit),
      and samples no bound at all when both are.

    ``reference="teachmyagent"`` follows TeachMyAgent's code on both points instead.
    ``teacher/expansions`` and ``teacher/contractions`` count the moves that changed a
    bound, not decisions that the limits or the other bound clipped to nothing.

    Defaults for this env: ``expand_below = 0.55``, the normalised loss at which the
    static and adaptive teachers call a level learnt (see
    :class:`~metacurriculum.teachers.paper.StaticTeacher`), ``contract_above = 0.8``;
    ``queue_len = 3`` and ``step = 0.2`` (TeachMyAgent: 10 and 0.1 over thousands of
    episodes), so that a bound moves a few times within a 250-step episode;
    ``boundary_p = 0.5`` (the class default of TeachMyAgent; its command line uses 0.7).

    Args:
        boundary_p: probability of a boundary step.
        step: how far one decision moves a bound, as a fraction of the coordinate's range.
        queue_len: boundary measurements per decision.
        expand_below: a mean normalised loss below this widens the bound.
        contract_above: a mean normalised loss above this narrows it.
        start: the box's starting point in the unit box (``None``: the easiest corner).
        reference: ``None`` (the rules above) or ``"teachmyagent"`` (its code's queue and
            side rules).
    """

    boundary_p: float = 0.5
    step: float = 0.2
    queue_len: int = 3
    expand_below: float = 0.55
    contract_above: float = 0.8
    start: Sequence[float] | None = None
    reference: str | None = None
    vector = True

    def __post_init__(self) -> None:
        if self.reference not in (None, "teachmyagent"):
            raise ValueError(
                f"reference={self.reference!r} is unknown; use None (the default rules) or "
                "'teachmyagent'."
            )
        _check_fraction("boundary_p", self.boundary_p)
        _check_fraction("step", self.step, open_low=True)
        _check_int("queue_len", self.queue_len, 1)
        for name in ("expand_below", "contract_above"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name}={value!r} must be a positive normalised loss.")
        if self.expand_below >= self.contract_above:
            raise ValueError(
                f"expand_below={self.expand_below!r} must be below "
                f"contract_above={self.contract_above!r}."
            )
        if self.start is not None:
            start = np.asarray(self.start, dtype=float)
            if start.ndim != 1 or not np.all((start >= 0) & (start <= 1)):
                raise ValueError(f"start={self.start!r} must be numbers in [0, 1].")

    def on_reset(self) -> None:
        self.lower: np.ndarray | None = None
        self.upper: np.ndarray | None = None
        self.queues: dict[tuple[int, str], deque[float]] = {}
        self.boundary: tuple[int, str] | None = None  # the bound the last step sampled
        self.sampled: np.ndarray | None = None  # the last step's point, in the unit box
        self.moves = {"expand": 0, "contract": 0}

    def choose_omega(self, observation: np.ndarray, info: Mapping[str, Any]) -> Any:
        low, high = unit_box(info)
        if self.lower is None:
            self._start(info, len(low))
        measured = self.measured(info)
        if measured is not None:
            for bound in self.measured_bounds():
                self.record(bound, measured[1])
        x = self.sample()
        self.sampled = x.copy()
        return low + x * (high - low)

    def measured_bounds(self) -> list[tuple[int, str]]:
        """The bounds whose queues get the last step's measurement: the one it sampled, or
        (``reference="teachmyagent"``) every bound its point sits on."""
        if self.reference != "teachmyagent":
            return [] if self.boundary is None else [self.boundary]
        if self.sampled is None:
            return []
        assert self.lower is not None and self.upper is not None
        bounds = []
        for j, value in enumerate(self.sampled):
            bounds += [(j, "lower")] * bool(value == self.lower[j])
            bounds += [(j, "upper")] * bool(value == self.upper[j])
        return bounds

    def _start(self, info: Mapping[str, Any], dim: int) -> None:
        if self.start is not None:
            point = np.asarray(self.start, dtype=float)
            if point.shape != (dim,):
                raise ValueError(
                    f"start={self.start!r} must hold {dim} numbers, one per coordinate."
                )
        else:
            low, high = unit_box(info)
            easiest = np.atleast_1d(np.asarray(info.get("omega_easiest", low), dtype=float))
            point = (easiest - low) / (high - low)
        self.lower, self.upper = point.copy(), point.copy()
        self.queues = {(j, side): deque() for j in range(dim) for side in ("lower", "upper")}

    def sample(self) -> np.ndarray:
        """A point of the current box; sometimes a bound of one coordinate (recorded)."""
        assert self.lower is not None and self.upper is not None
        x = self.rng.uniform(self.lower, self.upper)
        self.boundary = None
        if self.rng.uniform() < self.boundary_p:
            j = int(self.rng.integers(len(x)))
            at_low, at_high = self.lower[j] <= 0.0, self.upper[j] >= 1.0
            if self.reference == "teachmyagent":
                if not (at_low and at_high):
                    side = "lower" if self.rng.uniform() < 0.5 else "upper"
                    x[j] = self.upper[j] if side == "upper" else self.lower[j]
                    self.boundary = (j, side)
                return x
            if at_low and not at_high:
                side = "upper"
            elif at_high and not at_low:
                side = "lower"
            else:
                side = "upper" if self.rng.uniform() < 0.5 else "lower"
            x[j] = self.upper[j] if side == "upper" else self.lower[j]
            self.boundary = (j, side)
        return x

    def record(self, bound: tuple[int, str], loss: float) -> None:
        """Queue ``loss`` measured at ``bound``; move the bound when its queue is full."""
        assert self.lower is not None and self.upper is not None
        queue = self.queues[bound]
        queue.append(float(loss))
        if len(queue) < self.queue_len:
            return
        mean = float(np.mean(queue))
        queue.clear()
        j, side = bound
        if mean < self.expand_below:
            move, direction = "expand", 1.0 if side == "upper" else -1.0
        elif mean > self.contract_above:
            move, direction = "contract", -1.0 if side == "upper" else 1.0
        else:
            return
        before = (self.lower[j], self.upper[j])
        if side == "upper":
            self.upper[j] = float(
                np.clip(self.upper[j] + direction * self.step, self.lower[j], 1.0)
            )
        else:
            self.lower[j] = float(
                np.clip(self.lower[j] + direction * self.step, 0.0, self.upper[j])
            )
        self.moves[move] += int((self.lower[j], self.upper[j]) != before)

    def summary(self) -> dict[str, float]:
        """``teacher/expansions`` and ``teacher/contractions`` (moves that changed a bound)
        and ``teacher/box_width`` (the mean width of the final box, as a fraction of each
        range)."""
        if getattr(self, "lower", None) is None:
            return {}
        return {
            "teacher/expansions": float(self.moves["expand"]),
            "teacher/contractions": float(self.moves["contract"]),
            "teacher/box_width": float(np.mean(self.upper - self.lower)),
        }
