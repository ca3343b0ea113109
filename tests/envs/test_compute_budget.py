"""The env's compute: every step reports the FLOPs of its student's work, and a compute
budget ends an episode when it is spent, with no time limit cutting it short."""

from __future__ import annotations

import itertools
import warnings

import gymnasium as gym
import numpy as np
import pytest
from tiny_settings import TINY_SETTINGS

import metacurriculum  # noqa: F401 - registers the ids
from metacurriculum.envs import MetaCurriculumConfig, make_env
from metacurriculum.envs.compute import student_compute
from metacurriculum.envs.students import AnalyticStudent

ANALYTIC, TINY_ID = "MetaCurriculum-Analytic-v0", "MetaCurriculum-Tiny-v0"
SMALL = {"budget": 40, "n_max": 5}  # the analytic student: 10 env steps
UP, DOWN = np.array([1.0], np.float32), np.array([-1.0], np.float32)


def run(env: gym.Env, action: np.ndarray, seed: int = 0) -> list[dict]:
    """The infos of one episode (the reset's first) under a constant action."""
    _, info = env.reset(seed=seed)
    infos = [info]
    while True:
        _, _, terminated, truncated, info = env.step(action)
        infos.append(info)
        if terminated or truncated:
            return infos


@pytest.mark.parametrize(
    ("env_id", "settings"), [(ANALYTIC, SMALL), (TINY_ID, TINY_SETTINGS)], ids=["analytic", "tiny"]
)
def test_every_step_reports_the_flops_of_the_tasks_it_trained_and_measured(env_id, settings):
    env = make_env(env_id, **settings, omega_init=3.0)
    config = env.unwrapped.config
    compute = student_compute(config)
    infos = run(env, np.array([0.0], np.float32))
    measured = [3] * config.val_tasks + [config.n_max] * config.target_tasks  # ω stays 3
    assert infos[0]["train_flops"] == 0
    assert infos[0]["measure_flops"] == compute.measurement(measured)
    for before, after in itertools.pairwise(infos):
        trained = after["train_flops"] - before["train_flops"]
        assert trained == compute.meta_step(after["n_way"]) > 0
        assert after["measure_flops"] - before["measure_flops"] == compute.measurement(measured)
    assert infos[-1]["compute_budget"] is None
    assert infos[-1]["meta_step"] == config.budget and infos[-1]["elapsed"] == 1.0


def test_matched_gives_the_hardest_teacher_exactly_its_meta_step_budget():
    """'matched' is what ``budget`` meta-steps at n_max cost: a teacher that sits at the
    hardest ω ends at the budget, as without a compute budget, with the same trajectory."""
    plain = run(make_env(ANALYTIC, **SMALL), UP)
    matched = run(make_env(ANALYTIC, **SMALL, compute_budget="matched"), UP)
    assert len(matched) == len(plain) and matched[-1]["meta_step"] == SMALL["budget"]
    assert [i["target_loss"] for i in matched] == [i["target_loss"] for i in plain]
    assert matched[-1]["train_flops"] == matched[-1]["compute_budget"]
    assert [i["elapsed"] for i in matched] == [i["elapsed"] for i in plain]


def test_an_easy_curriculum_trains_more_meta_steps_for_the_same_compute():
    env = make_env(ANALYTIC, **SMALL, compute_budget="matched")
    infos = run(env, DOWN)  # at omega_min = 2: 2-way tasks, 2/5 of a 5-way one's FLOPs
    budget = infos[-1]["compute_budget"]
    assert infos[-2]["train_flops"] < budget <= infos[-1]["train_flops"]  # ends once spent
    assert infos[-1]["meta_step"] == 100  # 2.5 times the 40 meta-steps at n_max
    assert infos[-1]["elapsed"] == 1.0
    assert [i["elapsed"] for i in infos[1:-1]] == [i["train_flops"] / budget for i in infos[1:-1]]


def test_a_compute_budget_in_flops_and_the_observation_s_elapsed_fraction():
    env = make_env(ANALYTIC, **SMALL, compute_budget=1e12)
    obs, info = env.reset(seed=0)
    assert obs[-1] == 0.0 and info["compute_budget"] == 1e12
    obs, _, _, truncated, info = env.step(UP)
    assert obs[-1] == pytest.approx(info["train_flops"] / 1e12) and not truncated


def test_no_time_limit_cuts_a_compute_budgeted_episode():
    """make_env sets none; gym.make keeps the id's 250 steps unless told -1 (documented)."""
    settings = {"n_max": 5, "compute_budget": "matched"}  # 1000 meta-steps of 5-way tasks
    env = make_env(ANALYTIC, **settings)
    assert env.spec.max_episode_steps is None
    whole = run(env, DOWN)  # 2-way tasks: 2500 meta-steps, 625 env steps
    assert whole[-1]["elapsed"] == 1.0 and whole[-1]["meta_step"] == 2500
    cut = run(gym.make(ANALYTIC, **settings), DOWN)
    assert len(cut) - 1 == 250 and cut[-1]["elapsed"] < 0.5
    unlimited = run(gym.make(ANALYTIC, **settings, max_episode_steps=-1), DOWN)
    assert unlimited[-1]["meta_step"] == 2500


def test_the_vector_env_takes_no_limit_and_warns_of_one():
    settings = {"n_max": 5, "compute_budget": "matched"}
    with pytest.warns(UserWarning, match="max_episode_steps=-1"):
        gym.make_vec(ANALYTIC, num_envs=2, **settings)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        envs = gym.make_vec(ANALYTIC, num_envs=2, **settings, max_episode_steps=-1)
    envs.reset(seed=0)
    steps = 0
    while True:  # sub-env 0 at n_max ends after 250 steps and restarts; sub-env 1 goes on
        steps += 1
        _, _, _, truncated, info = envs.step(np.array([[1.0], [-1.0]], np.float32))
        if truncated[1]:
            break
    assert steps == 625 and info["final_info"]["meta_step"][1] == 2500


def test_episode_steps_is_unknown_under_a_compute_budget():
    assert MetaCurriculumConfig(budget=40).episode_steps == 10
    assert MetaCurriculumConfig(budget=40, compute_budget=1e12).episode_steps is None


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), "all", True, [1e12]])
def test_a_bad_compute_budget_names_the_value(value):
    with pytest.raises(ValueError, match="compute_budget="):
        MetaCurriculumConfig(compute_budget=value)


def test_numbers_are_kept_as_json_numbers():
    assert MetaCurriculumConfig(compute_budget=np.float64(2.5e14)).compute_budget == 2.5e14
    assert type(MetaCurriculumConfig(compute_budget=np.int64(10**15)).compute_budget) is int


class Silent(AnalyticStudent):
    """An analytic student that reports no compute."""

    compute = None


def test_a_student_without_compute_reports_none_and_cannot_be_budgeted():
    env = make_env(ANALYTIC, **SMALL)
    env.unwrapped.student_factory = Silent
    infos = run(env, UP)
    assert {i["train_flops"] for i in infos} == {None} == {i["measure_flops"] for i in infos}
    budgeted = make_env(ANALYTIC, **SMALL, compute_budget="matched")
    budgeted.unwrapped.student_factory = Silent
    with pytest.raises(ValueError, match="reports its compute"):
        budgeted.reset(seed=0)
