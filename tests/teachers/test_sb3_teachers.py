"""SB3 models as teachers: training with the expensive-env settings, saving, loading, driving."""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np
import pytest
from fakes import drive

import metacurriculum  # noqa: F401 - registers the envs
from metacurriculum.teachers import (
    SB3_ALGOS,
    SB3Teacher,
    as_teacher,
    load_sb3_teacher,
    make_teacher,
    train_sb3_teacher,
)

pytest.importorskip("stable_baselines3")

TINY = "MetaCurriculum-Tiny-v0"
ANALYTIC = "MetaCurriculum-Analytic-v0"


def test_ppo_trains_on_tiny_saves_loads_and_drives(tmp_path):
    """Mechanics only: training runs its steps, the saved model loads and drives an episode."""
    env = gym.make(TINY)  # every step trains a real MAML student
    path = tmp_path / "ppo.zip"
    model = train_sb3_teacher(
        "ppo",
        env,
        total_timesteps=8,
        seed=0,
        path=path,
        eval_episodes=0,
        n_steps=8,
        batch_size=8,
        n_epochs=2,
    )
    assert model.num_timesteps == 8 and path.exists()
    teacher = make_teacher("sb3", path=path, algo="ppo")
    assert isinstance(teacher, SB3Teacher)
    run = drive(teacher, env, steps=100, seed=1)  # one whole episode
    assert len(run["omegas"]) == env.unwrapped.config.episode_steps
    assert np.isfinite(run["info"]["target_loss"])


def test_dqn_trains_on_discrete_tiny_and_drives(tmp_path):
    """Mechanics only: training runs its steps; the loaded model acts with integers."""
    env = gym.make(TINY, action_type="discrete")
    path = tmp_path / "dqn"
    model = train_sb3_teacher(
        "dqn", env, 8, seed=0, path=path, eval_episodes=0, learning_starts=4, batch_size=4
    )
    assert model.num_timesteps == 8
    run = drive(load_sb3_teacher(path, algo="dqn"), env, steps=100)
    assert len(run["omegas"]) == env.unwrapped.config.episode_steps
    assert all(isinstance(a, int) for a in run["actions"])


@pytest.mark.parametrize("algo", ["sac", "a2c"])
def test_sac_and_a2c_train_on_the_analytic_env_and_drive(algo):
    """Mechanics only: training runs its steps; the raw model drives the env."""
    model = train_sb3_teacher(algo, ANALYTIC, total_timesteps=32, seed=0, eval_episodes=0)
    assert model.num_timesteps == 32
    env = gym.make(ANALYTIC, **SB3_ALGOS[algo].env_kwargs)  # the spaces it was trained on
    run = drive(as_teacher(model), env, steps=5)  # the raw model plugs in unchanged
    assert len(run["omegas"]) == 5


def test_defaults_update_within_an_episode_and_name_their_env_settings():
    ppo = SB3_ALGOS["ppo"].defaults
    assert ppo["n_steps"] <= 256 and ppo["n_steps"] % ppo["batch_size"] == 0
    assert SB3_ALGOS["dqn"].defaults["target_update_interval"] < 100
    assert SB3_ALGOS["sac"].defaults["learning_starts"] <= 1000
    for algo, spec in SB3_ALGOS.items():
        env = gym.make(ANALYTIC, **spec.env_kwargs)  # every tuned setting is a valid one
        assert spec.action_space is None or isinstance(env.action_space, spec.action_space), algo


def test_an_env_id_gets_the_algorithms_env_settings_and_yours():
    model = train_sb3_teacher(
        "dqn", ANALYTIC, 4, eval_episodes=0, env_kwargs={"budget": 40}, learning_starts=2
    )
    config = model.get_env().envs[0].unwrapped.config
    assert (config.action_type, config.reward, config.budget) == ("discrete", "target", 40)
    model = train_sb3_teacher("ppo", ANALYTIC, 8, eval_episodes=0, n_steps=8, batch_size=8)
    assert model.get_env().envs[0].unwrapped.config.reward == "target_logit"


def test_env_settings_for_a_made_env_are_an_error():
    with pytest.raises(ValueError, match="need an env id"):
        train_sb3_teacher("ppo", gym.make(ANALYTIC), 8, env_kwargs={"budget": 40})


@pytest.mark.parametrize(
    ("algo", "action_type", "match"),
    [
        ("dqn", "continuous", "action_type='discrete'"),
        ("sac", "discrete", "action_type='continuous'"),
    ],
    ids=["dqn-on-box", "sac-on-discrete"],
)
def test_wrong_action_space_is_a_clear_error(algo, action_type, match):
    with pytest.raises(ValueError, match=match):
        train_sb3_teacher(algo, gym.make(ANALYTIC, action_type=action_type), total_timesteps=1)


@pytest.mark.parametrize("action_type", ["discrete", "continuous"])
def test_dqn_on_a_vector_omega_names_the_algorithms_that_can(action_type):
    env = gym.make("MetaCurriculum-AnalyticMulti-v0", action_type=action_type)
    with pytest.raises(ValueError, match="ω is a vector; use PPO or A2C"):
        train_sb3_teacher("dqn", env, total_timesteps=1)


def test_unknown_algo_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="algo='td3' is unknown"):
        train_sb3_teacher("td3", ANALYTIC, total_timesteps=1)
    with pytest.raises(FileNotFoundError, match="no saved model"):
        make_teacher("sb3", path=tmp_path / "absent.zip", algo="ppo")


def test_model_trained_on_other_spaces_is_refused():
    model = train_sb3_teacher("a2c", ANALYTIC, total_timesteps=8, seed=0, eval_episodes=0)
    env = gym.make(ANALYTIC, history=4)
    with pytest.raises(ValueError, match="trained on observation space"):
        drive(SB3Teacher(model), env, steps=1)
    with pytest.raises(ValueError, match="trained on action space"):  # ω itself, not a change
        drive(SB3Teacher(model), gym.make(ANALYTIC, action_type="omega"), steps=1)


def test_missing_sb3_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "stable_baselines3", None)
    with pytest.raises(ImportError, match=r"pip install metacurriculum\[sb3\]"):
        train_sb3_teacher("ppo", ANALYTIC, total_timesteps=1)


def test_stochastic_predictions_stay_in_the_action_space():
    model = train_sb3_teacher("ppo", ANALYTIC, 8, seed=0, eval_episodes=0, n_steps=8, batch_size=8)
    run = drive(SB3Teacher(model, deterministic=False), gym.make(ANALYTIC), steps=5)
    assert all(np.all(np.abs(a) <= 1.0) for a in run["actions"])


class _InterruptAfter(gym.Wrapper):
    """Raises KeyboardInterrupt on the ``steps``-th step, as Ctrl-C would."""

    def __init__(self, env: gym.Env, steps: int) -> None:
        super().__init__(env)
        self.left = steps

    def step(self, action):
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt
        return self.env.step(action)


def test_interrupted_training_keeps_the_model(tmp_path):
    env = _InterruptAfter(gym.make("MetaCurriculum-Analytic-v0"), steps=40)
    with pytest.raises(KeyboardInterrupt):
        train_sb3_teacher("ppo", env, 200, seed=0, path=tmp_path / "ppo.zip", eval_episodes=0)
    assert not (tmp_path / "ppo.zip").exists()
    teacher = load_sb3_teacher(tmp_path / "ppo.interrupted.zip", algo="ppo")
    assert teacher.model.num_timesteps > 0


@pytest.mark.slow
def test_dqn_learns_a_curriculum_on_the_discrete_analytic_env():
    """Learning, not mechanics: after 20k env steps (80 episodes, about 80 s on one core)
    DQN ends whole episodes of unseen seeds with a far lower target loss than no
    curriculum (seen: 0.27 against 1.00 of chance)."""
    env = gym.make(ANALYTIC, action_type="discrete")
    model = train_sb3_teacher("dqn", env, total_timesteps=20_000, seed=0)
    for seed in (100, 101):
        taught = drive(SB3Teacher(model), env, steps=10**6, seed=seed)["info"]
        plain = drive(make_teacher("none"), env, steps=10**6, seed=seed)["info"]
        assert taught["meta_step"] == plain["meta_step"] == env.unwrapped.config.budget
        dqn, none = taught["target_loss_normalized"], plain["target_loss_normalized"]
        assert dqn < none - 0.3, f"seed {seed}: DQN {dqn:.3f}, none {none:.3f}"
