"""Registers random teachers that fail on purpose: ``"raising"``, ``"crashing"``,
``"nan-third"`` (NaN actions from its third step) and ``"wrong-shape"`` (an action of
two values for a one-parameter ω).

Tests import it in the driver and, through ``imports``, in every worker (with this
folder on ``PYTHONPATH``); they unregister them afterwards (:data:`NAMES`), so that the
registry other tests parametrize over stays as the package ships it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from metacurriculum.teachers import RandomTeacher, register_teacher


@register_teacher("raising")
@dataclass(eq=False)
class RaisingTeacher(RandomTeacher):
    """The random teacher, raising at step ``at`` of the run with seed ``fail_seed``."""

    fail_seed: int = 1
    at: int = 3

    def reset(
        self, observation_space: spaces.Space, action_space: spaces.Space, *, seed=None
    ) -> None:
        super().reset(observation_space, action_space, seed=seed)
        self.seed, self.count = seed, 0

    def choose_omega(self, observation: np.ndarray, info: Mapping[str, Any]) -> float:
        self.count += 1
        if self.seed == self.fail_seed and self.count == self.at:
            raise RuntimeError(f"injected failure at step {self.at} of seed {self.seed}")
        return super().choose_omega(observation, info)


@register_teacher("crashing")
@dataclass(eq=False)
class CrashingTeacher(RandomTeacher):
    """The random teacher, killing its own process (as the OOM killer would) at the start
    of the first ``seed + 1`` attempts of a run; ``marker_dir`` counts the attempts."""

    marker_dir: str = ""

    def reset(
        self, observation_space: spaces.Space, action_space: spaces.Space, *, seed=None
    ) -> None:
        super().reset(observation_space, action_space, seed=seed)
        crashes = sorted(Path(self.marker_dir).glob(f"seed_{seed}.*"))
        if len(crashes) < seed + 1:
            (Path(self.marker_dir) / f"seed_{seed}.{len(crashes)}").touch()
            os.kill(os.getpid(), signal.SIGKILL)


@register_teacher("nan-third")
@dataclass(eq=False)
class NanTeacher(RandomTeacher):
    """The random teacher, returning NaN actions from its third step on."""

    def act(self, observation: np.ndarray, info: Mapping[str, Any]) -> Any:
        action = super().act(observation, info)
        if self.steps >= 3:
            return np.full(np.shape(action), np.nan)
        return action


@register_teacher("wrong-shape")
@dataclass(eq=False)
class WrongShapeTeacher(RandomTeacher):
    """The random teacher, returning two values where the action space holds one."""

    def act(self, observation: np.ndarray, info: Mapping[str, Any]) -> Any:
        return np.repeat(np.atleast_1d(super().act(observation, info)), 2)


#: The names this module registers.
NAMES = ("raising", "crashing", "nan-third", "wrong-shape")
