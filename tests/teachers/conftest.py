"""Fixtures for the teacher tests: teachers by name on any env, tiny env settings."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import pytest

from metacurriculum.teachers import Teacher, make_teacher

sys.path.insert(0, str(Path(__file__).parent))  # `from fakes import ...` in any import mode

from fakes import TINY


@pytest.fixture
def teacher_for(tmp_path) -> Callable[[str, gym.Env], Teacher]:
    """``teacher_for(name, env)``: the registered teacher ``name``, ready for ``env``.

    ``"sb3"`` loads an untrained PPO saved for the env's spaces (SB3 learning has
    tests of its own in test_sb3_teachers.py).
    """

    def build(name: str, env: gym.Env) -> Teacher:
        if name != "sb3":
            return make_teacher(name)
        from stable_baselines3 import PPO

        path = tmp_path / f"ppo_{len(list(tmp_path.iterdir()))}.zip"
        PPO("MlpPolicy", env, n_steps=8, batch_size=8, device="cpu", seed=0).save(path)
        return make_teacher("sb3", path=path, algo="ppo")

    return build


@pytest.fixture(scope="module")
def tiny_envs():
    """``tiny_envs(env_id)``: one tiny env per id for the module (data loads once)."""
    made: dict[str, gym.Env] = {}

    def get(env_id: str) -> gym.Env:
        if env_id not in made:
            made[env_id] = gym.make(env_id, **TINY)
        return made[env_id]

    yield get
    for env in made.values():
        env.close()
