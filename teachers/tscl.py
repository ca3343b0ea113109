"""Teacher-Student Curriculum Learning (Matiisen et al. 2017): bandits over ω arms.

Each arm is one ω (default: every integer of the ω range). The score of an arm is the
negative normalised validation loss measured after training at it, so its learning
progress is the slope of its score curve; an exploration policy turns per-arm
values into probabilities and the teacher samples one arm per env step. This follows
``tambetm/TSCL`` (``addition/addition_rnn_teacher.py``), adapted to an env that, like
TSCL's Minecraft runners, measures only the arm it trained:

- A measurement is credited to the arm nearest the ω it was taken at
  (``info["omega"]``), which differs from the chosen arm only with ``Discrete``
  actions: they move one ``omega_step`` per step, so the teacher keeps its chosen
  arm until ω reaches it (crediting the arms it passes on the way) and only then
  samples the next one.
- Time is the teacher's step count; differences between two measurements of an arm
  are divided by the steps between them, so sparse visits still give a slope.
- An arm without a learning-progress estimate yet is worth 1, so every arm is tried
  (twice) before the policy exploits: TSCL's optimistic start (the initial slope of
  1 of its naive, window and sampling teachers; its online teacher compares the first
  score with a reference of 0). The exponential averages of the online and naive
  teachers start at 0 and only ever average measured slopes.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from gymnasium import spaces

from metacurriculum.teachers.base import OmegaTeacher, register_teacher

#: Value of an arm whose learning progress cannot be estimated yet (TSCL's initial slope).
UNTRIED = 1.0


class ExplorationPolicy(Protocol):
    """Turns per-arm values into sampling probabilities."""

    def __call__(self, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Probabilities over the arms (summing to 1), given their values."""
        ...


@dataclass(frozen=True)
class EpsilonGreedy:
    """``(1 - ε)`` on the best arm (random tie-break), ``ε`` spread over all arms.

    Args:
        epsilon: exploration rate in ``[0, 1]`` (TSCL's command-line default: 0.1).
    """

    epsilon: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon={self.epsilon!r} must lie in [0, 1].")

    def __call__(self, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        best = np.flatnonzero(values == np.max(values))
        p = np.full(len(values), self.epsilon / len(values))
        p[rng.choice(best)] += 1.0 - self.epsilon
        return p


@dataclass(frozen=True)
class Boltzmann:
    """Softmax of the values at a temperature: ``p ∝ exp((v - max v) / temperature)``.

    Args:
        temperature: TSCL's 0.0004 (for slopes of accuracy per epoch). Slopes of the
            normalised loss per env step are of the same order here (around 0.01 on
            the analytic student), and 0.0004 did as well as 0.002 or 0.01 there.
    """

    temperature: float = 0.0004

    def __post_init__(self) -> None:
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature={self.temperature!r} must be a finite number > 0.")

    def __call__(self, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        e = np.exp((values - np.max(values)) / self.temperature)
        return e / e.sum()


@dataclass(frozen=True)
class Proportional:
    """ALP-GMM's sampling: ``random_ratio`` uniform, the rest in proportion to the values.

    ``p = (1 - r) v / Σ v + r / N`` for values ``v >= 0`` (negative ones count as 0);
    uniform when every value is 0.

    Args:
        random_ratio: the uniform share ``r`` in ``[0, 1]`` (teachDeepRL: 0.2).
    """

    random_ratio: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 <= self.random_ratio <= 1.0:
            raise ValueError(f"random_ratio={self.random_ratio!r} must lie in [0, 1].")

    def __call__(self, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        v = np.clip(np.asarray(values, dtype=float), 0.0, None)
        uniform = np.full(len(v), 1.0 / len(v))
        if v.sum() <= 0:
            return uniform
        return (1.0 - self.random_ratio) * v / v.sum() + self.random_ratio * uniform


@dataclass(frozen=True)
class Thompson(EpsilonGreedy):
    """Thompson sampling: :class:`SamplingTeacher` draws one recorded slope per arm, then
    acts ε-greedily on the draws. Only the sampling teacher keeps the slopes to draw from.
    """


#: Exploration policies by name, for ``policy="boltzmann"`` or ``{"name": ..., **params}``.
POLICIES: dict[str, type] = {
    "epsilon-greedy": EpsilonGreedy,
    "boltzmann": Boltzmann,
    "thompson": Thompson,
    "proportional": Proportional,
}


def make_policy(spec: str | Mapping[str, Any] | ExplorationPolicy) -> ExplorationPolicy:
    """A policy from its name, a ``{"name": ..., **params}`` dict, or the policy itself."""
    if isinstance(spec, Mapping):
        params = dict(spec)
        name = params.pop("name", None)
    elif isinstance(spec, str):
        name, params = spec, {}
    elif callable(spec):
        return spec
    else:
        raise TypeError(f"policy={spec!r} is not a policy name, dict or callable.")
    if name not in POLICIES:
        raise ValueError(f"policy {name!r} is unknown; choose one of {sorted(POLICIES)}.")
    return POLICIES[name](**params)


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Ordinary least-squares slope of score against time over ``(time, score)`` points."""
    t, s = np.asarray(points, dtype=float).reshape(-1, 2).T
    t = t - t.mean()
    return float(t @ (s - s.mean()) / (t @ t)) if t @ t > 0 else 0.0


@dataclass(eq=False)
class BanditTeacher(OmegaTeacher):
    """Common machinery of the TSCL teachers: arms, crediting measurements, sampling.

    Subclasses implement :meth:`init_arms`, :meth:`record` and :meth:`values`, and may
    override :meth:`outcome` (what is measured after a step: TSCL's score by default).

    Args:
        arms: the ω of each arm; ``None`` for every integer of the ω range.
        policy: ``"epsilon-greedy"`` (ε = 0.1), ``"boltzmann"``, ``"thompson"``
            (sampling teacher only), ``{"name": "boltzmann", "temperature": 0.01}``,
            or a policy object.
        absolute: act on ``|learning progress|``, so that arms being forgotten attract too.
    """

    arms: Sequence[float] | None = None
    policy: str | Mapping[str, Any] | ExplorationPolicy = "epsilon-greedy"
    absolute: bool = False
    exploration: ExplorationPolicy = field(init=False, repr=False)

    #: Whether the teacher keeps per-arm samples that Thompson sampling draws from.
    thompson = False

    def __post_init__(self) -> None:
        if self.arms is not None:
            omegas = [float(w) for w in self.arms]
            if not omegas or any(not math.isfinite(w) for w in omegas):
                raise ValueError(f"arms={self.arms!r} must be a non-empty list of numbers.")
            if len(set(omegas)) != len(omegas):
                raise ValueError(f"arms={self.arms!r} holds the same ω twice.")
            self.arms = omegas
        self.exploration = make_policy(self.policy)
        if isinstance(self.exploration, Thompson) and not self.thompson:
            raise ValueError(
                f"policy 'thompson' works only with the sampling teacher ('tscl-sampling'), not "
                f"{type(self).__name__}; use 'epsilon-greedy' or 'boltzmann'."
            )

    def on_reset(self) -> None:
        self.omegas: np.ndarray | None = None if self.arms is None else np.array(self.arms)
        self.arm: int | None = None
        self.probabilities = np.empty(0)
        self.pulls = np.zeros(0, dtype=int)

    def choose_omega(self, observation: np.ndarray, info: Mapping[str, Any]) -> float:
        if self.omegas is None:
            low, high = math.ceil(info["omega_min"]), math.floor(info["omega_max"])
            self.omegas = np.arange(low, high + 1, dtype=float)
        if self.steps == 0:
            self.init_arms(len(self.omegas))
            self.pulls = np.zeros(len(self.omegas), dtype=int)
        outcome = self.outcome(info)
        if outcome is not None:
            omega, score = outcome
            self.record(int(np.argmin(np.abs(self.omegas - omega))), self.steps, score)
        self.probabilities = self.policy_probabilities()
        if self.arm is None or not self._in_transit(info):
            self.arm = int(self.rng.choice(len(self.omegas), p=self.probabilities))
        self.pulls[self.arm] += 1
        return float(self.omegas[self.arm])

    def outcome(self, info: Mapping[str, Any]) -> tuple[float, float] | None:
        """``(ω trained at, score)`` of the previous step, or ``None``; :meth:`record` gets it.

        TSCL's score: the negative normalised validation loss measured at ω.
        """
        measured = self.measured(info)
        return None if measured is None else (measured[0], -measured[1])

    def summary(self) -> dict[str, float]:
        """``teacher/hardest_fraction``: the share of steps whose chosen arm was the largest ω."""
        if not hasattr(self, "pulls") or self.pulls.sum() == 0:
            return {}
        hardest = self.pulls[np.argmax(self.omegas)]
        return {"teacher/hardest_fraction": float(hardest / self.pulls.sum())}

    def _in_transit(self, info: Mapping[str, Any]) -> bool:
        """Discrete actions move one ``omega_step`` a step: keep the arm until ω reaches it."""
        if not isinstance(self.action_space, spaces.Discrete):
            return False
        return abs(info["omega"] - self.omegas[self.arm]) >= 0.5 * info.get("omega_step", 1.0)

    def policy_probabilities(self) -> np.ndarray:
        """The exploration policy applied to the (absolute, if asked) values."""
        values = self.values()
        return self.exploration(np.abs(values) if self.absolute else values, self.rng)

    def init_arms(self, n: int) -> None:
        """Set up per-arm state for ``n`` arms (first ``act`` of each episode)."""
        raise NotImplementedError

    def record(self, arm: int, t: int, score: float) -> None:
        """Take in the score measured at step ``t`` on ``arm``."""
        raise NotImplementedError

    def values(self) -> np.ndarray:
        """Per-arm learning progress, the input of the exploration policy."""
        raise NotImplementedError


class _LastScore:
    """Per-arm memory of the last measurement, to turn scores into slopes."""

    def __init__(self, n: int) -> None:
        self.last: list[tuple[int, float] | None] = [None] * n

    def slope(self, arm: int, t: int, score: float) -> float | None:
        previous, self.last[arm] = self.last[arm], (t, score)
        if previous is None or t == previous[0]:
            return None
        return (score - previous[1]) / (t - previous[0])


@register_teacher("tscl-online")
@dataclass(eq=False)
class OnlineTeacher(BanditTeacher):
    """TSCL Online: ``Q ← Q + α (s - Q)``, ``s`` the score change since the arm's last visit.

    An arm's first measurement only sets its reference score; until its first change
    it is worth 1 (see the module docstring).

    Args:
        alpha: the bandit learning rate (TSCL: 0.1).
    """

    alpha: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha={self.alpha!r} must lie in (0, 1].")

    def init_arms(self, n: int) -> None:
        self.q = np.zeros(n)
        self.estimated = np.zeros(n, dtype=bool)
        self._last = _LastScore(n)

    def record(self, arm: int, t: int, score: float) -> None:
        s = self._last.slope(arm, t, score)
        if s is not None:
            self.q[arm] += self.alpha * (s - self.q[arm])
            self.estimated[arm] = True

    def values(self) -> np.ndarray:
        return np.where(self.estimated, self.q, UNTRIED)


@register_teacher("tscl-naive")
@dataclass(eq=False)
class NaiveTeacher(BanditTeacher):
    """TSCL Naive: keep the probabilities for ``window`` steps, then ``Q ← Q + α (s - Q)``.

    ``s`` is the least-squares slope of each arm's scores over the window. An arm
    measured once in the window gets the slope from its last earlier measurement to
    it (TSCL's Minecraft trainer prepends one older episode likewise); an arm not
    measured in the window keeps its value; until its first slope it is worth 1.

    Args:
        alpha: the bandit learning rate (TSCL: 0.1).
        window: steps per window (TSCL: 10).
    """

    alpha: float = 0.1
    window: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha={self.alpha!r} must lie in (0, 1].")
        if not isinstance(self.window, int) or self.window < 1:
            raise ValueError(f"window={self.window!r} must be an integer >= 1.")

    def init_arms(self, n: int) -> None:
        self.q = np.zeros(n)
        self.estimated = np.zeros(n, dtype=bool)
        self._points: list[list[tuple[int, float]]] = [[] for _ in range(n)]
        self._older: list[tuple[int, float] | None] = [None] * n

    def record(self, arm: int, t: int, score: float) -> None:
        self._points[arm].append((t, score))

    def values(self) -> np.ndarray:
        return np.where(self.estimated, self.q, UNTRIED)

    def policy_probabilities(self) -> np.ndarray:
        if self.steps % self.window:
            return self.probabilities
        if self.steps:
            self._update()
        return super().policy_probabilities()

    def _update(self) -> None:
        for arm, points in enumerate(self._points):
            older = self._older[arm]
            fitted = [older, *points] if len(points) == 1 and older is not None else points
            if len(fitted) >= 2:
                self.q[arm] += self.alpha * (slope(fitted) - self.q[arm])
                self.estimated[arm] = True
            if points:
                self._older[arm] = points[-1]
            points.clear()


@register_teacher("tscl-window")
@dataclass(eq=False)
class WindowTeacher(BanditTeacher):
    """TSCL Window: each arm's value is the least-squares slope of its last ``window`` scores.

    No moving average: the policy acts on the slopes directly; an arm with fewer than
    two scores is worth TSCL's optimistic 1.

    Args:
        window: scores kept per arm (TSCL: 10).
    """

    window: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.window, int) or self.window < 2:
            raise ValueError(
                f"window={self.window!r} must be an integer >= 2 (two points per slope)."
            )

    def init_arms(self, n: int) -> None:
        self._points: list[deque[tuple[int, float]]] = [deque(maxlen=self.window) for _ in range(n)]

    def record(self, arm: int, t: int, score: float) -> None:
        self._points[arm].append((t, score))

    def values(self) -> np.ndarray:
        return np.array([slope(p) if len(p) >= 2 else UNTRIED for p in self._points])


@register_teacher("tscl-sampling")
@dataclass(eq=False)
class SamplingTeacher(BanditTeacher):
    """TSCL Sampling: each arm keeps its last ``window`` score changes (per step).

    With ``policy="thompson"`` (TSCL's command-line default) each step draws one
    recorded change per arm and acts ε-greedily on the draws; with another policy it
    acts on their means. An arm with no recorded change is worth TSCL's optimistic 1.

    Args:
        window: changes kept per arm (TSCL: 10).
    """

    window: int = 10
    thompson = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.window, int) or self.window < 1:
            raise ValueError(f"window={self.window!r} must be an integer >= 1.")

    def init_arms(self, n: int) -> None:
        self._changes: list[deque[float]] = [deque(maxlen=self.window) for _ in range(n)]
        self._last = _LastScore(n)

    def record(self, arm: int, t: int, score: float) -> None:
        s = self._last.slope(arm, t, score)
        if s is not None:
            self._changes[arm].append(s)

    def values(self) -> np.ndarray:
        draw = isinstance(self.exploration, Thompson)
        return np.array(
            [
                (float(self.rng.choice(list(c))) if draw else float(np.mean(c))) if c else UNTRIED
                for c in self._changes
            ]
        )
