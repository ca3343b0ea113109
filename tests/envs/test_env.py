"""The Gymnasium environment: registration, checkers, determinism, actions, rewards."""

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from tiny_settings import TINY

import metacurriculum
from metacurriculum.envs import MetaCurriculumEnv, action_for_omega

ENV_IDS = sorted(metacurriculum.ENV_SPECS)


def make_tiny(env_id: str, **kwargs) -> gym.Env:
    return gym.make(env_id, **{**TINY, **kwargs})


def rollout(env: gym.Env, seed: int, actions) -> list:
    obs, info = env.reset(seed=seed)
    trace = [obs]
    for a in actions:
        obs, reward, _, _, info = env.step(a)
        trace.extend([obs, reward, info["omega"], info["target_loss"]])
    return trace


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_check_env(env_id):
    env = make_tiny(env_id)
    gym_check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_check_env(env_id):
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    sb3_checker.check_env(make_tiny(env_id).unwrapped, warn=True)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_trajectory(env_id):
    dim = make_tiny(env_id).action_space.shape[0]
    actions = [np.full(dim, a, np.float32) for a in (0.3, -0.1, 1.0)]
    a = rollout(make_tiny(env_id), 7, actions)
    b = rollout(make_tiny(env_id), 7, actions)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    c = rollout(make_tiny(env_id), 8, actions)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_registration_is_idempotent_and_uses_string_entry_points():
    metacurriculum.register_envs()
    metacurriculum.register_envs()
    for env_id, settings in metacurriculum.ENV_SPECS.items():
        spec = gym.spec(env_id)
        assert isinstance(spec.entry_point, str)
        assert spec.kwargs == settings
        assert spec.max_episode_steps == settings["budget"] // settings.get("update_rate", 4)


def test_module_prefix_form_works_in_a_fresh_interpreter():
    code = (
        "import gymnasium as gym, sys\n"
        "env = gym.make('metacurriculum:MetaCurriculum-Analytic-v0')\n"
        "env.reset(seed=0); env.step(env.action_space.sample()); print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_the_analytic_env_runs_without_importing_torch():
    code = (
        "import gymnasium as gym, sys\n"
        "env = gym.make('metacurriculum:MetaCurriculum-Analytic-v0')\n"
        "env.reset(seed=0); env.step(env.action_space.sample())\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_import_registers_without_importing_torch():
    code = "import sys, metacurriculum; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_make_kwargs_override_settings():
    env = gym.make(
        "MetaCurriculum-Analytic-v0", n_max=7, history=3, budget=40, max_episode_steps=10
    )
    assert env.unwrapped.config.n_max == 7
    assert env.observation_space.shape == (5,)
    _, info = env.reset(seed=0)
    assert info["omega_max"] == 7.0 and info["budget"] == 40


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_maxx": 3}, TypeError, "did you mean 'n_max'"),
        ({"budget": 0}, ValueError, "budget=0"),
        ({"reward": "fun"}, ValueError, "reward='fun'"),
        ({"action_type": "box"}, ValueError, "action_type"),
        ({"omega_init": 50.0}, ValueError, "omega_init"),
        ({"student": "nobody"}, ValueError, "student='nobody'"),
        ({"inner_lr": "0.1"}, ValueError, "inner_lr='0.1' must be a real number, not str"),
        ({"meta_lr": None}, ValueError, "meta_lr=None must be a real number, not NoneType"),
        ({"omega_noise": "big"}, ValueError, "omega_noise='big' must be a real number"),
        ({"omega_step": None}, ValueError, "omega_step=None must be a real number"),
        ({"omega_min": "2"}, ValueError, "omega_min='2' must be a real number"),
        ({"omega_init": "3"}, ValueError, "omega_init='3' must be a real number"),
        ({"divergence_threshold": float("nan")}, ValueError, "divergence_threshold=nan"),
        ({"divergence_threshold": 0.0}, ValueError, "must be a finite number > 0"),
        ({"divergence_threshold": float("inf")}, ValueError, "divergence_threshold=inf"),
        ({"divergence_penalty": float("nan")}, ValueError, "divergence_penalty=nan"),
    ],
)
def test_bad_settings_raise_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        MetaCurriculumEnv(**{"student": "analytic", **kwargs}).reset(seed=0)


def test_continuous_action_moves_and_clips_omega():
    env = MetaCurriculumEnv(student="analytic", n_max=11, omega_min=1.0)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([0.5], np.float32))
    assert info["omega"] == pytest.approx(6.0)
    _, _, _, _, info = env.step(np.array([7.0], np.float32))  # clipped to 1 -> top
    assert info["omega"] == 11.0
    _, _, _, _, info = env.step(np.array([-0.2], np.float32))
    assert info["omega"] == pytest.approx(9.0)
    with pytest.raises(ValueError, match="not finite"):
        env.step(np.array([np.nan], np.float32))


def test_discrete_actions_step_omega():
    env = MetaCurriculumEnv(
        student="analytic", n_max=5, action_type="discrete", omega_step=1.5, omega_min=1.0
    )
    assert env.action_space == gym.spaces.Discrete(3)
    env.reset(seed=0)
    omegas = [env.step(a)[4]["omega"] for a in (2, 2, 1, 0, 0, 0)]
    assert omegas == [2.5, 4.0, 4.0, 2.5, 1.0, 1.0]
    with pytest.raises(ValueError, match="0 \\(down\\), 1 \\(stay\\) or 2 \\(up\\)"):
        env.step(3)


@pytest.mark.parametrize(
    "action",
    ["0.5", None, [0.1, 0.2], 0.5 + 0.5j, np.array([0.5 + 0j]), True, {"a": 1}],
    ids=["str", "none", "two-values", "complex", "complex-array", "bool", "dict"],
)
def test_invalid_continuous_actions_are_named(action):
    env = MetaCurriculumEnv(student="analytic", n_max=5)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="continuous action must") as error:
        env.step(action)
    assert repr(action)[:10] in str(error.value)
    assert env.unwrapped.meta_step == 0  # nothing was trained


@pytest.mark.parametrize(
    "action",
    ["2", None, np.array([1, 2]), 1.5, 2.0, np.float32(1.0), True, np.array([1])],
    ids=["str", "none", "two-values", "float", "whole-float", "numpy-float", "bool", "1-d"],
)
def test_invalid_discrete_actions_are_named(action):
    env = MetaCurriculumEnv(student="analytic", n_max=5, action_type="discrete")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="discrete action must be the integer 0") as error:
        env.step(action)
    assert repr(action)[:6] in str(error.value)


@pytest.mark.parametrize("action", [2, np.int64(2), np.array(2)], ids=["int", "np-int", "0-d"])
def test_integer_discrete_actions_are_accepted(action):
    env = MetaCurriculumEnv(student="analytic", n_max=5, action_type="discrete", omega_min=1.0)
    env.reset(seed=0)
    assert env.step(action)[4]["omega"] == 2.0


@pytest.mark.parametrize("end", ["truncated", "terminated"])
def test_step_after_the_episode_ended_asks_for_reset(end):
    if end == "truncated":
        env = MetaCurriculumEnv(student="analytic", n_max=5, budget=8)
    else:
        env = MetaCurriculumEnv(student="analytic", n_max=5, budget=8, divergence_threshold=1e-9)
    env.reset(seed=0)
    done = False
    while not done:
        _, _, terminated, truncated, info = env.step(np.array([0.0], np.float32))
        done = terminated or truncated
    assert (terminated if end == "terminated" else truncated) and info["meta_step"] <= 8
    with pytest.raises(RuntimeError, match=r"episode has ended .*call reset\(\)"):
        env.step(np.array([0.0], np.float32))
    assert env.meta_step == info["meta_step"]  # nothing trained past the end
    env.reset(seed=0)
    assert env.step(np.array([0.0], np.float32))[4]["meta_step"] == 4


def test_default_range_skips_one_way_tasks():
    env = MetaCurriculumEnv(student="analytic", n_max=6)
    _, info = env.reset(seed=0)
    assert info["omega"] == info["omega_min"] == 2.0
    _, _, _, _, info = env.step(np.array([-1.0], np.float32))
    assert info["omega"] == 2.0 and min(info["n_way"]) == 2
    with pytest.raises(ValueError, match="omega_min=7"):
        MetaCurriculumEnv(student="analytic", n_max=6, omega_min=7.0)


def test_action_for_omega_inverts_the_action_mapping():
    for action_type in ("continuous", "discrete"):
        env = MetaCurriculumEnv(student="analytic", n_max=9, action_type=action_type)
        _, info = env.reset(seed=0)
        for target in (4.0, 9.0, 2.0, 30.0):
            for _ in range(10):
                info = env.step(action_for_omega(target, info, env.action_space))[4]
            assert info["omega"] == min(target, 9.0)


def test_target_reward_telescopes_to_total_improvement():
    env = gym.make("MetaCurriculum-Analytic-v0", budget=200, max_episode_steps=50)
    _, info = env.reset(seed=3)
    start, total, done = info["target_loss_normalized"], 0.0, False
    while not done:
        harder = info["omega"] + (info["val_loss_normalized"] < 0.4)
        action = action_for_omega(harder, info, env.action_space)
        _, reward, terminated, truncated, info = env.step(action)
        total += reward
        done = terminated or truncated
    assert truncated and not terminated and info["meta_step"] == 200
    assert total == pytest.approx(start - info["target_loss_normalized"])
    assert total > 0.1


def test_observation_layout():
    env = MetaCurriculumEnv(student="analytic", n_max=5, history=3, budget=40)
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (5,)
    np.testing.assert_allclose(obs[:3], info["val_loss_normalized"], rtol=1e-6)
    assert obs[3] == 0.0 and obs[4] == 0.0
    obs, *_, info = env.step(np.array([0.5], np.float32))
    assert obs[3] == pytest.approx(0.5) and obs[4] == pytest.approx(4 / 40)
    assert obs[2] == pytest.approx(info["val_loss_normalized"], rel=1e-6)
    assert env.observation_space.contains(obs)


def test_ansi_render():
    env = MetaCurriculumEnv(student="analytic", render_mode="ansi")
    env.reset(seed=0)
    assert "omega 2.00" in env.render()


def test_a_diverged_student_terminates_with_a_flag_not_an_exception():
    env = make_tiny("MetaCurriculum-Tiny-v0", meta_lr=1e6, inner_lr=1e6)
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step(np.array([1.0], np.float32))
    assert terminated and not truncated and info["diverged"]
    assert reward == env.unwrapped.config.divergence_penalty


def test_a_healthy_student_is_not_flagged():
    env = make_tiny("MetaCurriculum-Tiny-v0")
    env.reset(seed=0)
    _, _, terminated, _, info = env.step(np.array([0.5], np.float32))
    assert not terminated and not info["diverged"]


def test_make_env_time_limit_follows_the_budget():
    from metacurriculum.envs import make_env

    env = make_env("MetaCurriculum-Analytic-v0", budget=40, update_rate=2)
    assert env.spec.max_episode_steps == 20
    env.reset(seed=0)
    steps, done = 0, False
    while not done:
        _, _, terminated, truncated, info = env.step(np.array([0.0], np.float32))
        steps, done = steps + 1, terminated or truncated
    assert steps == 20 and info["meta_step"] == 40
    assert make_env("MetaCurriculum-Analytic-v0", max_episode_steps=3).spec.max_episode_steps == 3


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"k_shot": 10, "q_query": 15}, ValueError, "k_shot \\+ q_query"),
        ({"device": "tpu"}, ValueError, "device='tpu'"),
        ({"data_root": "/nonexistent/data"}, FileNotFoundError, "/nonexistent/data"),
    ],
    ids=["too-many-images", "unknown-device", "missing-data"],
)
def test_student_settings_fail_at_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        gym.make("MetaCurriculum-Tiny-v0", **kwargs)
