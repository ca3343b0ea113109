"""The teacher interface, a base class for teachers that pick an ω, and the registry by name.

A teacher meets the environment only through its spaces, observations and ``info``
(see :class:`~metacurriculum.envs.MetaCurriculumEnv`). One episode::

    obs, info = env.reset(seed=0)
    teacher.reset(env.observation_space, env.action_space, seed=0)
    while True:
        obs, reward, terminated, truncated, info = env.step(teacher.act(obs, info))
        if terminated or truncated:
            break
    print(teacher_summary(teacher))  # run statistics, e.g. {"teacher/own_decision_fraction": 0.4}
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np
from gymnasium import spaces

from metacurriculum.envs import action_for_omega
from metacurriculum.registry import PLUGIN_GROUPS, Registry

Action = Any  # np.ndarray for Box action spaces, int for Discrete ones

#: The keys of ``info`` that an :class:`OmegaTeacher` reads.
OMEGA_INFO_KEYS = ("omega", "omega_min", "omega_max", "val_loss_normalized")


@runtime_checkable
class Teacher(Protocol):
    """Anything that chooses the env's actions: one ``act`` per step, one ``reset`` per episode.

    Optionally, ``summary() -> dict[str, float]``: the teacher's statistics of the
    episode, read by :func:`teacher_summary` (not part of the structural check, so a
    teacher without it still is one).
    """

    def reset(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        seed: int | None = None,
    ) -> None:
        """Start an episode; called once after ``env.reset``.

        Args:
            observation_space: the env's observation space.
            action_space: the env's action space (``Box(-1, 1, (1,))`` or ``Discrete(3)``).
            seed: seeds the teacher's own ``np.random.Generator``.
        """
        ...

    def act(self, observation: np.ndarray, info: Mapping[str, Any]) -> Action:
        """The next action, given the latest observation and ``info``."""
        ...


def teacher_summary(teacher: Any) -> dict[str, float]:
    """Statistics of the teacher's episode so far, namespaced ``teacher/...``.

    The optional hook of the protocol: a teacher may define ``summary() -> dict[str,
    float]`` (called after the episode, before the next ``reset``); a teacher without one
    (a plain function, an SB3 model) has none, and this returns ``{}``. The harness
    stores the result with each run.

    Raises:
        TypeError: when ``summary()`` returns something other than a dict of numbers.
    """
    summary = getattr(teacher, "summary", None)
    if summary is None:
        return {}
    result = summary()
    if not isinstance(result, Mapping) or not all(
        isinstance(k, str) and isinstance(v, (int, float)) for k, v in result.items()
    ):
        raise TypeError(
            f"{type(teacher).__name__}.summary() returned {result!r}; it must return a dict "
            "of str -> float, e.g. {'teacher/own_decision_fraction': 0.5}."
        )
    return {key: float(value) for key, value in result.items()}


def action_dim(action_space: spaces.Space) -> int:
    """The number of ω coordinates an action space steers (``Discrete``: 1)."""
    if isinstance(action_space, spaces.Discrete):
        return 1
    if isinstance(action_space, spaces.MultiDiscrete):
        return int(np.asarray(action_space.nvec).size)
    return int(np.prod(action_space.shape))


class OmegaTeacher:
    """Base class of teachers that choose the next ω rather than an action.

    Subclasses implement :meth:`choose_omega`; ``act`` converts its answer with
    :func:`~metacurriculum.envs.action_for_omega` (the ω itself for ``action_type="omega"``,
    the change for ``Box`` actions, one ``omega_step`` towards it for discrete ones).
    Per-episode state is set up in :meth:`on_reset`.

    A teacher for one-parameter families returns a number; one that sets
    ``vector = True`` returns one number per coordinate (``info["omega_names"]``) and
    runs on every family. On an env whose ω has several coordinates a teacher without
    ``vector = True`` raises ``ValueError`` at :meth:`reset`.

    The bookkeeping available to subclasses:

    Attributes:
        rng: the teacher's generator, seeded by :meth:`reset`.
        action_space: the env's action space.
        dim: the number of ω coordinates (1 for the ``classes`` family).
        steps: how many times ``act`` ran since :meth:`reset`. ``info`` at an ``act``
            call measures the student trained at the ω of the previous call, so there
            is an outcome to learn from only when ``steps > 0``.
    """

    #: Whether :meth:`choose_omega` handles a vector ω (several coordinates).
    vector = False

    rng: np.random.Generator
    action_space: spaces.Space
    dim: int
    steps: int

    def reset(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        seed: int | None = None,
    ) -> None:
        """Seed the generator, keep the action space, and call :meth:`on_reset`."""
        if not isinstance(action_space, (spaces.Box, spaces.Discrete, spaces.MultiDiscrete)):
            raise TypeError(
                f"{type(self).__name__} drives Box or Discrete action spaces, got {action_space}; "
                "make the env with action_type='continuous', 'discrete' or 'omega'."
            )
        dim = action_dim(action_space)
        if dim > 1 and not self.vector:
            raise ValueError(
                f"{type(self).__name__} steers a one-parameter ω, but this env's ω has {dim} "
                f"coordinates (action space {action_space}); use it on a one-parameter family "
                f"such as 'classes', or pick one of the {vector_hint()}."
            )
        self.rng = np.random.default_rng(seed)
        self.action_space = action_space
        self.dim = dim
        self.steps = 0
        self.on_reset()

    def act(self, observation: np.ndarray, info: Mapping[str, Any]) -> Action:
        """The action that moves ω to :meth:`choose_omega`'s answer."""
        if not hasattr(self, "steps"):
            raise RuntimeError(
                f"call {type(self).__name__}.reset(observation_space, action_space) after "
                "env.reset() and before act()."
            )
        missing = [key for key in OMEGA_INFO_KEYS if key not in info]
        if missing:
            raise KeyError(
                f"info lacks {missing}; {type(self).__name__} needs the info dict that "
                "MetaCurriculumEnv returns from reset() and step()."
            )
        chosen = self.choose_omega(observation, info)
        omega = np.asarray(chosen, dtype=np.float64).reshape(-1)
        if omega.size != self.dim or not np.all(np.isfinite(omega)):
            expected = "a number" if self.dim == 1 else f"{self.dim} numbers, one per coordinate"
            raise ValueError(
                f"{type(self).__name__}.choose_omega returned {chosen!r}; expected {expected}."
            )
        self.steps += 1
        return action_for_omega(omega, dict(info), self.action_space)

    def on_reset(self) -> None:
        """Set up per-episode state; ``rng``, ``action_space`` and ``steps`` are ready."""

    def choose_omega(self, observation: np.ndarray, info: Mapping[str, Any]) -> float | np.ndarray:
        """The ω to train at next (clipped by the env to ``[omega_min, omega_max]``): a
        number, or one per coordinate for a ``vector`` teacher."""
        raise NotImplementedError(f"{type(self).__name__} must implement choose_omega().")

    def summary(self) -> dict[str, float]:
        """Statistics of the episode so far, keys namespaced ``teacher/``; none by default.

        Read through :func:`teacher_summary` after an episode. Override it to report
        what a run's final numbers cannot show, e.g. how often the teacher's own
        decision, rather than a schedule, set ω.
        """
        return {}

    def measured(self, info: Mapping[str, Any]) -> tuple[Any, float] | None:
        """``(ω, normalised validation loss)`` of the previous choice, or ``None``; ω is a
        float for one-parameter families, a ``[d]`` array otherwise.

        ``None`` on the first call after reset (no choice yet) and when the student
        diverged (the loss is not finite).
        """
        loss = float(info["val_loss_normalized"])
        if self.steps == 0 or info.get("diverged", False) or not math.isfinite(loss):
            return None
        omega = info["omega"]
        return (float(omega) if np.ndim(omega) == 0 else np.array(omega, dtype=float)), loss


class FunctionTeacher:
    """A plain function ``fn(observation, info) -> action`` as a :class:`Teacher`.

    Args:
        fn: called once per step; it keeps its own state, if any.
    """

    def __init__(self, fn: Callable[[np.ndarray, Mapping[str, Any]], Action]) -> None:
        self.fn = fn

    def reset(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        seed: int | None = None,
    ) -> None:
        """Nothing to reset: a plain function has no episode state."""

    def act(self, observation: np.ndarray, info: Mapping[str, Any]) -> Action:
        """``fn(observation, info)``."""
        return self.fn(observation, info)

    def __repr__(self) -> str:
        return f"FunctionTeacher({getattr(self.fn, '__name__', self.fn)!r})"


def as_teacher(obj: Any) -> Teacher:
    """``obj`` as a :class:`Teacher`.

    Teachers come back unchanged; anything with ``predict(obs, deterministic=...)``
    (a Stable-Baselines3 model) is wrapped in
    :class:`~metacurriculum.teachers.sb3.SB3Teacher`; a plain callable
    ``fn(observation, info) -> action`` in :class:`FunctionTeacher`.

    Raises:
        TypeError: for anything else.
    """
    if isinstance(obj, Teacher):
        return obj
    if callable(getattr(obj, "predict", None)):
        from metacurriculum.teachers.sb3 import SB3Teacher  # sb3.py imports this module

        return SB3Teacher(obj)
    if callable(obj):
        return FunctionTeacher(obj)
    raise TypeError(
        f"{obj!r} of type {type(obj).__name__} is not a teacher: pass an object with "
        "act(observation, info) and reset(observation_space, action_space, seed=...), a model "
        "with predict(observation, deterministic=...), or a function fn(observation, info)."
    )


#: Teacher factories by name; fill it with :func:`register_teacher`.
TEACHERS: Registry[Callable[..., Teacher]] = Registry(
    "teacher",
    hint="a teacher of your own module needs --import MODULE on the command line (run from "
    "the module's folder, or with it on PYTHONPATH, or installed) or an entry point in the "
    f"group {PLUGIN_GROUPS['teacher']!r} of an installed package; from Python, "
    "register_teacher(name, factory)",
    group=PLUGIN_GROUPS["teacher"],
)


def register_teacher(name: str, factory: Callable[..., Teacher] | None = None) -> Any:
    """Register ``factory`` (a class or function returning a teacher) under ``name``.

    Usable directly, ``register_teacher("mine", MyTeacher)``, or as a class decorator,
    ``@register_teacher("mine")``. Registering the same factory twice is harmless. A
    factory with ``vector = True`` (a class attribute) steers a vector ω.

    Raises:
        ValueError: when ``name`` is empty or already belongs to a different factory.
    """
    return TEACHERS.register(name, factory)


def make_teacher(name: str, **kwargs: Any) -> Teacher:
    """Build the teacher registered as ``name`` with ``kwargs``.

    Raises:
        ValueError: for an unknown name; the message lists the registered names.
    """
    return TEACHERS.lookup(name)(**kwargs)


def list_teachers() -> list[str]:
    """The registered teacher names, sorted."""
    return TEACHERS.names()


def vector_teachers(plugins: bool = True) -> list[str]:
    """The registered teachers that steer a vector ω: those whose factory says ``vector``
    (``plugins=False``: of those registered in code; a plugin that fails to load is left
    out here, and named when it is used)."""
    names = []
    for name in TEACHERS.names(plugins=plugins):
        try:
            factory = TEACHERS.lookup(name)
        except ImportError:
            continue
        if getattr(factory, "vector", False):
            names.append(name)
    return names


def vector_hint() -> str:
    """The teachers that steer a vector ω, for the error a one-coordinate teacher raises."""
    return f"teachers that steer a vector ω: {', '.join(vector_teachers())}"
