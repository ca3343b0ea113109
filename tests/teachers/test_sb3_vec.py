"""One SB3 policy trained on many students at once: ``train_sb3_teacher(..., n_envs=N)``."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import metacurriculum  # noqa: F401 - registers the envs
from metacurriculum.teachers import train_sb3_teacher
from metacurriculum.teachers.sb3 import sb3_vec_env

pytest.importorskip("stable_baselines3")

TINY = "MetaCurriculum-Tiny-v0"
ANALYTIC = "MetaCurriculum-Analytic-v0"


def test_ppo_learns_from_two_maml_students_at_once() -> None:
    # Tiny: 8 env steps an episode, so each sub-env ends one episode in the rollout.
    model = train_sb3_teacher(
        "ppo",
        TINY,
        total_timesteps=16,
        n_envs=2,
        seed=0,
        eval_episodes=0,
        n_steps=8,
        batch_size=8,
        n_epochs=1,
    )
    assert model.n_envs == 2 and model.num_timesteps == 16
    assert [episode["l"] for episode in model.ep_info_buffer] == [8, 8]
    population = model.get_env().venv.venv.students.population
    assert population.size == 2 and population.meta_steps == [0, 0]  # both just restarted


@pytest.mark.parametrize(
    ("algo", "overrides"),
    [("sac", {"learning_starts": 4}), ("a2c", {"n_steps": 8})],
    ids=["sac", "a2c"],
)
def test_off_and_on_policy_algorithms_take_a_make_vec_env(algo, overrides) -> None:
    venv = gym.make_vec(ANALYTIC, num_envs=3, budget=24)  # 6 env steps an episode
    model = train_sb3_teacher(algo, venv, total_timesteps=24, seed=0, eval_episodes=0, **overrides)
    assert model.n_envs == 3 and model.num_timesteps == 24
    assert len(model.ep_info_buffer) == 3


def test_the_adapter_speaks_sb3s_done_and_seed_conventions() -> None:
    venv = sb3_vec_env(gym.make_vec(ANALYTIC, num_envs=2, budget=8))  # 2 env steps an episode
    reference = gym.make_vec(ANALYTIC, num_envs=2, budget=8)
    venv.seed(5)
    np.testing.assert_array_equal(venv.reset(), reference.reset(seed=5)[0])
    assert venv.reset_infos[0]["meta_step"] == 0
    actions = np.full((2, 1), 0.5, np.float32)
    obs, rewards, dones, infos = venv.step(actions)
    expected = reference.step(actions)
    np.testing.assert_array_equal(obs, expected[0])
    assert rewards.dtype == np.float32 and not dones.any()
    assert infos[1]["meta_step"] == 4 and "terminal_observation" not in infos[1]
    obs, _, dones, infos = venv.step(actions)
    final = reference.step(actions)[4]
    assert dones.all()
    for i, info in enumerate(infos):
        assert info["TimeLimit.truncated"] and info["meta_step"] == 8
        np.testing.assert_array_equal(info["terminal_observation"], final["final_obs"][i])
        assert venv.reset_infos[i]["meta_step"] == 0 and obs[i, -1] == 0.0
    assert venv.get_attr("omega") == list(reference.get_attr("omega"))
    assert venv.get_attr("omega", indices=[1]) == [reference.get_attr("omega")[1]]
    venv.set_attr("render_mode", None)
    assert venv.env_is_wrapped(gym.Wrapper) == [False, False]
    assert len(venv.env_method("evaluate_test", num_tasks=2, indices=[1])) == 1
    venv.close()


def test_a_sync_vector_env_in_same_step_mode_works_too() -> None:
    sync = gym.make_vec(
        ANALYTIC,
        num_envs=2,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
        budget=24,
    )
    model = train_sb3_teacher("a2c", sync, 16, seed=0, eval_episodes=0, n_steps=8)
    assert model.num_timesteps == 16


def test_wrong_env_shapes_are_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"n_envs=2 needs an env id or a gym\.make_vec env"):
        train_sb3_teacher("ppo", gym.make(ANALYTIC), total_timesteps=1, n_envs=2)
    with pytest.raises(ValueError, match="n_envs=0 must be an integer >= 1"):
        train_sb3_teacher("ppo", ANALYTIC, total_timesteps=1, n_envs=0)
    with pytest.raises(ValueError, match="n_envs=3 but the vector env has num_envs=2"):
        train_sb3_teacher("ppo", gym.make_vec(ANALYTIC, num_envs=2), total_timesteps=1, n_envs=3)
    with pytest.raises(ValueError, match=r"needs AutoresetMode\.SAME_STEP"):
        train_sb3_teacher(
            "ppo", gym.make_vec(ANALYTIC, num_envs=2, vectorization_mode="sync"), total_timesteps=1
        )
    with pytest.raises(ValueError, match="action_type='discrete'"):
        train_sb3_teacher("dqn", ANALYTIC, 1, n_envs=2, env_kwargs={"action_type": "continuous"})
