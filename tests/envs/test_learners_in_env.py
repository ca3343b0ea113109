"""Every learner behind the env: Gymnasium's and SB3's checks, the vector env, settings."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from tiny_settings import TINY

import metacurriculum  # noqa: F401 - registers the ids
from metacurriculum.student.settings import list_learners

TINY_ID = "MetaCurriculum-Tiny-v0"


def tiny(learner: str) -> dict:
    """The tiny settings with ``learner``: one inner step for the learners that have one."""
    settings = dict(TINY)
    inner_steps = settings.pop("inner_steps")
    return {**settings, "learner": learner, "learner_defaults": {"inner_steps": inner_steps}}


@pytest.mark.parametrize("learner", list_learners())
def test_gymnasium_and_sb3_check_env_with_every_learner(learner, data_root):
    from stable_baselines3.common import env_checker as sb3_checker

    env = gym.make(TINY_ID, **tiny(learner))
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_checker.check_env(gym.make(TINY_ID, **tiny(learner)).unwrapped, warn=True)
    assert env.unwrapped.config.learner == learner


@pytest.mark.parametrize("learner", list_learners())
def test_each_sub_env_of_a_vector_env_follows_the_single_env(learner, data_root):
    envs = gym.make_vec(TINY_ID, num_envs=2, **tiny(learner))
    envs.reset(seed=5)
    singles = [gym.make(TINY_ID, **tiny(learner)) for _ in range(2)]
    for i, env in enumerate(singles):
        env.reset(seed=5 + i)
    actions = np.array([[0.4], [-0.3]], np.float32)
    for _ in range(3):
        _, rewards, _, _, info = envs.step(actions)
        for i, env in enumerate(singles):
            _, reward, _, _, single = env.step(actions[i])
            assert reward == pytest.approx(rewards[i], rel=1e-5, abs=1e-7)
            assert single["target_loss"] == pytest.approx(info["target_loss"][i], rel=1e-5)
    curves = envs.call("evaluate_test", num_tasks=3)
    assert len(curves) == 2 and curves[0].loss.shape[0] == 3
    envs.close()


def test_the_learner_and_its_settings_reach_the_student(data_root):
    env = gym.make(TINY_ID, **{**tiny("anil"), "inner_lr": 0.3})
    env.reset(seed=0)
    population = env.unwrapped.student.students.population
    assert population.learner.settings.inner_lr == 0.3
    assert population.learner.settings.inner_steps == 1  # the id's learner default
    curves = env.unwrapped.evaluate_test(num_tasks=2)
    assert curves.loss.shape == (2, 2)  # before and after the one inner step


def test_a_learner_without_an_inner_loop_evaluates_one_point(data_root):
    env = gym.make(TINY_ID, **tiny("protonet"))
    env.reset(seed=0)
    env.step(np.array([0.0], np.float32))
    curves = env.unwrapped.evaluate_test(num_tasks=2)
    assert curves.loss.shape == (2, 1)


def test_a_bad_learner_or_setting_fails_at_make_naming_the_fix(data_root):
    with pytest.raises(ValueError, match=r"learner='anli' is unknown\. Did you mean 'anil'"):
        gym.make(TINY_ID, **tiny("anli"))
    with pytest.raises(TypeError, match=r"'first_order' \(a setting of learner 'anil'"):
        gym.make(TINY_ID, **tiny("reptile"), first_order=True)


def test_the_readme_example_of_a_learner_of_your_own(data_root):
    from metacurriculum.student.learners import MAML
    from metacurriculum.student.settings import LEARNERS, MAMLSettings, register_learner

    class LastLayers(MAML):
        """MAML whose inner loop adapts the last conv block and the head only."""

        def adapted(self, params):
            last = sum(name.endswith(".conv.weight") for name in params) - 1
            return [name for name in params if name.startswith(("head.", f"block{last}."))]

    register_learner("last-layers", LastLayers, settings=MAMLSettings)
    try:
        env = gym.make(TINY_ID, **{**tiny("last-layers"), "inner_steps": 2})
        env.reset(seed=0)
        population = env.unwrapped.student.students.population
        adapted = population.learner.adapted(population.row_params(0))
        assert adapted == ["block1.conv.weight", "block1.bn.weight", "block1.bn.bias",
                           "head.weight", "head.bias"]  # fmt: skip
        _, _, _, _, info = env.step(np.array([0.2], np.float32))
        assert np.isfinite(info["target_loss"])
    finally:
        del LEARNERS["last-layers"]
