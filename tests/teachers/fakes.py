"""Analytic fakes: envs with the MetaCurriculumEnv contract whose loss is a known function.

The loss is ``loss(omega, t, visits)``: the normalised validation loss measured after
env step ``t`` (1, 2, ...) trained at ``omega``, where ``visits`` counts the steps
trained at each rounded ω so far (this one included). Each assertion about a teacher
then runs in milliseconds against an answer known in advance.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from importlib.util import find_spec
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

import metacurriculum
from metacurriculum.teachers import list_teachers

#: Overrides that make every registered id cheap (MAML ids: a tiny net, three env steps).
TINY = {
    "hidden": 4,
    "depth": 2,
    "meta_batch": 1,
    "q_query": 1,
    "inner_steps": 1,
    "update_rate": 1,
    "budget": 3,
    "val_tasks": 1,
    "target_tasks": 1,
    "device": "cpu",
    "max_episode_steps": 3,
}
ENV_IDS = sorted(metacurriculum.ENV_SPECS)
#: Every registered teacher (the Syllabus ones only where Syllabus is installed).
TEACHER_NAMES = [
    name
    for name in list_teachers()
    if find_spec("syllabus") is not None or not name.startswith("syllabus")
]

LossFn = Callable[[float, int, Mapping[int, int]], float]
#: The normalised loss on the hardest (target) tasks, given the ω of every step so far.
TargetFn = Callable[[list[float]], float]


class FakeEnv(gym.Env):
    """An env whose ω moves as in MetaCurriculumEnv and whose loss is ``loss(ω, t, visits)``.

    Args:
        loss: the normalised validation loss after a step (see the module docstring).
        n_max: ω ranges over ``[1, n_max]``.
        action_type: ``"continuous"`` (``Box(-1, 1)``) or ``"discrete"`` (down, stay, up).
        omega_init: ω at reset.
        noise: standard deviation of Gaussian noise added to every measured loss.
        history: losses in the observation.
        target: ``target(omegas)``, the normalised target loss after the steps trained
            at ``omegas`` (the ω of every step so far, oldest first); ``None``: the
            target loss is the validation loss, as if every ω were the hardest.
        budget: ``info["budget"]`` (``info["meta_step"]`` is the step count); the
            default is large enough that budget-driven schedules never move.
    """

    metadata = {"render_modes": []}  # noqa: RUF012 - Gymnasium convention

    def __init__(
        self,
        loss: LossFn,
        n_max: int = 5,
        action_type: str = "continuous",
        omega_init: float = 1.0,
        noise: float = 0.0,
        history: int = 4,
        target: TargetFn | None = None,
        budget: int = 10**9,
    ) -> None:
        self.loss, self.n_max, self.noise = loss, n_max, noise
        self.target, self.budget = target, budget
        self.omega_init, self.omega_step = omega_init, 1.0
        self.action_space = (
            spaces.Box(-1.0, 1.0, (1,), np.float32)
            if action_type == "continuous"
            else spaces.Discrete(3)
        )
        self.observation_space = spaces.Box(0.0, 5.0, (history + 2,), np.float32)
        self.history = history

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.omega, self.t = float(self.omega_init), 0
        self.visits: Counter[int] = Counter()
        self.omegas: list[float] = []  # the ω of every step
        self.losses = [self._measure()] * self.history
        self.target_loss = self._measure_target()
        return self._observation(), self._info()

    def step(self, action):
        if isinstance(self.action_space, spaces.Discrete):
            assert self.action_space.contains(action), action
            delta = (int(action) - 1) * self.omega_step
        else:
            action = np.asarray(action, dtype=np.float32)
            assert action.shape == (1,) and np.all(np.abs(action) <= 1.0), action
            delta = float(action[0]) * (self.n_max - 1)
        self.omega = float(np.clip(self.omega + delta, 1.0, self.n_max))
        self.t += 1
        self.visits[round(self.omega)] += 1
        self.omegas.append(self.omega)
        self.losses = [*self.losses[1:], self._measure()]
        previous, self.target_loss = self.target_loss, self._measure_target()
        return self._observation(), previous - self.target_loss, False, False, self._info()

    def _measure(self) -> float:
        value = self.loss(self.omega, self.t, self.visits)
        return float(value + self.noise * self.np_random.standard_normal())

    def _measure_target(self) -> float:
        if self.target is None:
            return self.losses[-1]
        value = self.target(list(self.omegas))
        return float(value + self.noise * self.np_random.standard_normal())

    def _observation(self) -> np.ndarray:
        omega = (self.omega - 1.0) / max(self.n_max - 1.0, 1e-12)
        return np.array([*self.losses, omega, 0.0], dtype=np.float32).clip(0.0, 5.0)

    def _info(self) -> dict[str, Any]:
        loss = self.losses[-1]
        return {
            "omega": self.omega,
            "omega_min": 1.0,
            "omega_max": float(self.n_max),
            "omega_step": self.omega_step,
            "n_way": [round(self.omega)],
            "train_loss": loss,
            "val_loss": loss,
            "val_accuracy": 1.0 - loss,
            "val_loss_normalized": loss,
            "target_loss": self.target_loss,
            "target_accuracy": 1.0 - self.target_loss,
            "target_loss_normalized": self.target_loss,
            "meta_step": self.t,
            "budget": self.budget,
            "diverged": False,
        }


def drive(teacher: Any, env: gym.Env, steps: int, seed: int = 0) -> dict[str, Any]:
    """Run ``teacher`` on ``env`` for ``steps`` steps (or until the episode ends).

    Returns:
        ``{"omegas": the ω of each step (rounded to 1e-6: Box actions are float32), "info": the last info, "actions": the actions}``.
    """
    obs, info = env.reset(seed=seed)
    teacher.reset(env.observation_space, env.action_space, seed=seed)
    omegas, actions = [], []
    for _ in range(steps):
        action = teacher.act(obs, info)
        assert env.action_space.contains(
            np.asarray(action, dtype=np.float32)
            if isinstance(env.action_space, spaces.Box)
            else action
        ), f"{teacher!r} returned {action!r}, outside {env.action_space}"
        actions.append(action)
        obs, _, terminated, truncated, info = env.step(action)
        omegas.append(info["omega"])
        if terminated or truncated:
            break
    return {"omegas": np.round(omegas, 6), "info": info, "actions": actions}
