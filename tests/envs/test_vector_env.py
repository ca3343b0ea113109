"""``gym.make_vec``: the vector env whose sub-envs' MAML students train as one population.

The contract: sub-env ``i`` of ``reset(seed=s)`` follows the single env reset with
``s + i`` and given the same actions (float64 students, on every population path,
through an autoreset), and the env keeps Gymnasium's VectorEnv conventions
(batched spaces, ``_``-masked info, SAME_STEP autoreset, idempotent close).
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.vector.utils import batch_space
from tiny_settings import TINY_SETTINGS as TINY

import metacurriculum
from metacurriculum.envs import MetaCurriculumVectorEnv
from metacurriculum.student import MetaLearner

ENV_IDS = sorted(metacurriculum.ENV_SPECS)
TINY_ID, ANALYTIC_ID = "MetaCurriculum-Tiny-v0", "MetaCurriculum-Analytic-v0"


@pytest.fixture
def float64_students(monkeypatch):
    """Every meta-learner (single and population) in float64."""
    from metacurriculum.envs import learner_student

    original = learner_student.student_config
    monkeypatch.setattr(
        learner_student,
        "student_config",
        lambda config: dataclasses.replace(original(config), dtype="float64"),
    )


def sub_info(info: dict, i: int) -> dict:
    """Sub-env ``i``'s own info dict out of a vector info (masks respected, recursively)."""
    out = {}
    for key, value in info.items():
        if key.startswith("_") or not info[f"_{key}"][i]:
            continue
        out[key] = sub_info(value, i) if isinstance(value, dict) else value[i]
    return out


def assert_info_close(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, dict):
            assert_info_close(got[key], value)
        elif isinstance(value, np.ndarray):
            np.testing.assert_allclose(got[key], value, rtol=1e-6)
        elif isinstance(value, float) and np.isfinite(value):
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
        elif isinstance(value, float):
            assert not np.isfinite(got[key]), key
        else:
            assert list(np.atleast_1d(got[key])) == list(np.atleast_1d(value)), key


def single_trace(env_id: str, seed: int, actions: list, **kwargs) -> list:
    env = gym.make(env_id, **kwargs)
    obs, info = env.reset(seed=seed)
    trace = [(obs, info)]
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        trace.append((obs, reward, terminated, truncated, info))
        if terminated or truncated:  # what SAME_STEP does: reset at once, no seed
            trace.append(env.reset())
    return trace


def vector_trace(envs, seed: int, actions: np.ndarray) -> list:
    obs, info = envs.reset(seed=seed)
    traces = [[(obs[j], sub_info(info, j))] for j in range(envs.num_envs)]
    for step_actions in actions:
        obs, reward, terminated, truncated, info = envs.step(step_actions)
        for j, trace in enumerate(traces):
            own = sub_info(info, j)
            final = own.pop("final_info", None)
            final_obs = own.pop("final_obs", None)
            if terminated[j] or truncated[j]:
                trace.append((final_obs, reward[j], terminated[j], truncated[j], final))
                trace.append((obs[j], own))
            else:
                assert final is None and final_obs is None
                trace.append((obs[j], reward[j], terminated[j], truncated[j], own))
    return traces


def assert_same_trace(got: list, expected: list) -> None:
    assert len(got) == len(expected)
    for got_item, expected_item in zip(got, expected, strict=True):
        assert len(got_item) == len(expected_item)
        np.testing.assert_allclose(got_item[0], expected_item[0], rtol=1e-6, atol=1e-7)
        for g, e in zip(got_item[1:-1], expected_item[1:-1], strict=True):
            assert g == pytest.approx(e, rel=1e-9, abs=1e-12)
        assert_info_close(got_item[-1], expected_item[-1])


@pytest.mark.parametrize("batching", ["loop", "grouped"])
def test_each_sub_env_follows_the_single_env_with_its_seed(batching, float64_students) -> None:
    settings = {**TINY, "batching": batching, "budget": 4, "max_episode_steps": 4}
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(6, 3, 1)).astype(np.float32)  # past one episode end
    envs = gym.make_vec(TINY_ID, num_envs=3, **settings)
    assert isinstance(envs, MetaCurriculumVectorEnv)
    traces = vector_trace(envs, 10, actions)
    population = envs.unwrapped.students.population
    assert population.size == 3 and population.dtype == torch.float64
    assert population.batching == batching
    for i, trace in enumerate(traces):
        assert_same_trace(trace, single_trace(TINY_ID, 10 + i, list(actions[:, i]), **settings))
    # The sub-envs' students leave as ordinary checkpoints and test curves.
    single = gym.make(TINY_ID, **settings)
    single.reset(seed=11)
    for action in actions[:2, 1]:
        single.step(action)
    envs.reset(seed=10)
    envs.step(actions[0])
    envs.step(actions[1])
    curves = envs.call("evaluate_test", num_tasks=3, seed=5)[1]
    expected = single.unwrapped.evaluate_test(num_tasks=3, seed=5)
    np.testing.assert_allclose(curves.loss, expected.loss, rtol=1e-9)
    envs.close()


def test_save_student_writes_the_rows_maml(tmp_path, float64_students) -> None:
    envs = gym.make_vec(TINY_ID, num_envs=2, **TINY)
    envs.reset(seed=3)
    envs.step(np.array([[0.5], [-0.5]], np.float32))
    envs.call_each("save_student", [(str(tmp_path / f"s{i}.pt"),) for i in range(2)])
    for i in range(2):
        saved = MetaLearner.load(tmp_path / f"s{i}.pt")
        assert saved.meta_steps == 1
        for name, p in saved.params.items():
            assert torch.equal(p.detach(), envs.unwrapped.students.population.params[name][i])


@pytest.mark.parametrize("action_type", ["continuous", "discrete"])
def test_analytic_sub_envs_follow_the_single_env(action_type) -> None:
    settings = {"budget": 20, "max_episode_steps": 4, "action_type": action_type}
    envs = gym.make_vec(ANALYTIC_ID, num_envs=4, **settings)
    assert envs.unwrapped.students is None
    actions = np.stack([envs.action_space.sample() for _ in range(9)])
    for i, trace in enumerate(vector_trace(envs, 0, actions)):
        assert_same_trace(trace, single_trace(ANALYTIC_ID, i, list(actions[:, i]), **settings))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_make_vec_gives_a_batched_vector_env_for_every_id(env_id) -> None:
    assert gym.spec(env_id).vector_entry_point == metacurriculum.registration.VECTOR_ENTRY_POINT
    envs = gym.make_vec(env_id, num_envs=2, **TINY)
    single = gym.make(env_id, **TINY)
    assert isinstance(envs, MetaCurriculumVectorEnv) and envs.num_envs == 2
    assert envs.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    assert envs.single_observation_space == single.observation_space
    assert envs.single_action_space == single.action_space
    assert envs.observation_space == batch_space(single.observation_space, 2)
    assert envs.action_space == batch_space(single.action_space, 2)
    assert envs.spec.id == env_id and envs.spec.kwargs["num_envs"] == 2
    obs, info = envs.reset(seed=0)
    assert obs.dtype == np.float32 and envs.observation_space.contains(obs)
    dim = single.unwrapped.family.dim  # a vector ω is stacked: [num_envs, d]
    assert info["omega"].shape == ((2,) if dim == 1 else (2, dim)) and info["_omega"].all()
    obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
    assert envs.observation_space.contains(obs)
    assert reward.shape == (2,) and reward.dtype == np.float64
    assert terminated.dtype == truncated.dtype == np.bool_
    assert info["meta_step"].tolist() == [1, 1] and info["n_way"].dtype == object
    envs.close()
    envs.close()  # idempotent
    assert envs.closed


def test_an_ended_episode_resets_in_the_same_step() -> None:
    envs = gym.make_vec(ANALYTIC_ID, num_envs=3, budget=12, update_rate=4)
    obs, _ = envs.reset(seed=0)
    for _ in range(2):
        obs, _, _, truncated, info = envs.step(np.zeros((3, 1), np.float32))
        assert not truncated.any() and "final_obs" not in info
    obs, _, terminated, truncated, info = envs.step(np.zeros((3, 1), np.float32))
    assert truncated.all() and not terminated.any()
    assert info["_final_obs"].all() and info["final_obs"].dtype == object
    assert info["final_info"]["meta_step"].tolist() == [12] * 3
    assert info["meta_step"].tolist() == [0] * 3  # the new episodes' reset info
    np.testing.assert_array_equal(obs[:, -1], 0.0)  # elapsed budget of the new episodes
    assert all(final[-1] > 0 for final in info["final_obs"])


def test_on_episode_end_sees_each_trained_sub_env_before_its_autoreset(float64_students) -> None:
    envs = gym.make_vec(TINY_ID, num_envs=2, device="cpu")
    seen = []

    def on_end(i, env):
        seen.append((i, env.meta_step))  # 0 once the autoreset has replaced the student

    envs.unwrapped.on_episode_end = on_end
    envs.reset(seed=0)
    steps = envs.unwrapped.max_episode_steps
    for _ in range(steps):
        assert seen == []
        envs.step(np.zeros((2, 1), np.float32))
    budget = envs.unwrapped.config.budget
    assert seen == [(0, budget), (1, budget)]
    envs.close()


def test_a_diverged_sub_env_terminates_and_restarts_its_student() -> None:
    envs = gym.make_vec(TINY_ID, num_envs=2, meta_lr=1e6, inner_lr=1e6)
    envs.reset(seed=0)
    _, reward, terminated, _, info = envs.step(np.ones((2, 1), np.float32))
    assert terminated.all() and info["final_info"]["diverged"].all()
    assert (reward == envs.unwrapped.config.divergence_penalty).all()
    assert envs.unwrapped.students.population.meta_steps == [0, 0]
    assert info["meta_step"].tolist() == [0, 0]


def test_seeds_none_and_lists() -> None:
    envs = gym.make_vec(ANALYTIC_ID, num_envs=3)
    by_list, _ = envs.reset(seed=[7, 8, 9])
    by_int, _ = envs.reset(seed=7)
    np.testing.assert_array_equal(by_list, by_int)
    envs.reset()  # unseeded: fine
    with pytest.raises(ValueError, match="got 2 seeds for num_envs=3"):
        envs.reset(seed=[1, 2])
    with pytest.raises(ValueError, match="SAME_STEP mode, so reset\\(\\) always resets every"):
        envs.reset(options={"reset_mask": np.array([True, False, True])})


def test_sync_mode_keeps_working_with_the_same_seeding() -> None:
    sync = gym.make_vec(ANALYTIC_ID, num_envs=3, vectorization_mode="sync", budget=40)
    batched = gym.make_vec(ANALYTIC_ID, num_envs=3, budget=40)
    assert isinstance(sync, SyncVectorEnv)
    np.testing.assert_array_equal(sync.reset(seed=4)[0], batched.reset(seed=4)[0])
    actions = np.full((3, 1), 0.25, np.float32)
    for got, expected in zip(batched.step(actions)[:4], sync.step(actions)[:4], strict=True):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    ("num_envs", "error", "match"),
    [
        (0, ValueError, "num_envs=0 must be >= 1"),
        (-2, ValueError, "num_envs=-2 must be >= 1"),
        (2.5, TypeError, "num_envs=2.5 must be an int"),
        (True, TypeError, "num_envs=True must be an int"),
    ],
)
def test_bad_num_envs_is_a_clear_error(num_envs, error, match) -> None:
    with pytest.raises(error, match=match):
        gym.make_vec(ANALYTIC_ID, num_envs=num_envs)


def test_bad_calls_raise_before_any_student_trains() -> None:
    envs = gym.make_vec(TINY_ID, num_envs=2)
    with pytest.raises(RuntimeError, match="call reset\\(\\) before step\\(\\)"):
        envs.step(np.zeros((2, 1), np.float32))
    envs.reset(seed=0)
    with pytest.raises(ValueError, match="not finite"):
        envs.step(np.array([[0.1], [np.nan]], np.float32))
    assert envs.unwrapped.students.population.meta_steps == [0, 0]
    with pytest.raises(ValueError, match="max_episode_steps=0"):
        MetaCurriculumVectorEnv(2, student="analytic", max_episode_steps=0)


def test_ansi_render_and_sub_env_attributes() -> None:
    envs = MetaCurriculumVectorEnv(2, student="analytic", render_mode="ansi", n_max=6)
    envs.reset(seed=0)
    assert all("omega 2.00" in line for line in envs.render())
    assert envs.get_attr("omega") == (2.0, 2.0)
    assert envs.call("omega_max") == (6.0, 6.0)


def test_sub_envs_of_a_vector_omega_family_follow_the_single_env(float64_students) -> None:
    """OmniglotMulti: ω of three coordinates, rotated and noisy images, one population."""
    multi = "MetaCurriculum-OmniglotMulti-v0"
    settings = {**TINY, "batching": "grouped", "budget": 3, "max_episode_steps": 3}
    actions = np.random.default_rng(1).uniform(-1, 1, size=(4, 2, 3)).astype(np.float32)
    envs = gym.make_vec(multi, num_envs=2, **settings)
    assert envs.single_action_space.shape == (3,)
    traces = vector_trace(envs, 4, actions)
    for i, trace in enumerate(traces):
        assert_same_trace(trace, single_trace(multi, 4 + i, list(actions[:, i]), **settings))
    envs.close()
