"""TSCL bandits: they prefer the arm with the largest learning progress."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fakes import FakeEnv, drive

from metacurriculum.teachers import (
    Boltzmann,
    EpsilonGreedy,
    NaiveTeacher,
    OnlineTeacher,
    SamplingTeacher,
    Thompson,
    WindowTeacher,
    make_teacher,
)
from metacurriculum.teachers.tscl import make_policy, slope

BANDITS = ["tscl-online", "tscl-naive", "tscl-window", "tscl-sampling"]
COMBINATIONS = [(name, policy) for name in BANDITS for policy in ("epsilon-greedy", "boltzmann")]
COMBINATIONS.append(("tscl-sampling", "thompson"))


def arm_three_learns(omega, t, visits):
    """Arm 3's loss falls with time, the others are flat: arm 3 has all the progress."""
    return 0.9 * math.exp(-0.01 * t) if round(omega) == 3 else 0.8


def arm_two_forgets(omega, t, visits):
    """Arm 2's loss rises with time (forgetting), arm 4's falls slowly, the others are flat."""
    if round(omega) == 2:
        return 0.2 + 0.005 * t
    return 0.9 - 0.001 * t if round(omega) == 4 else 0.8


def share(omegas: np.ndarray, arm: float) -> float:
    return float(np.mean(np.isclose(omegas, arm)))


@pytest.mark.parametrize(("name", "policy"), COMBINATIONS, ids=lambda v: v)
def test_bandit_prefers_the_arm_with_the_largest_learning_progress(name, policy):
    env = FakeEnv(arm_three_learns, n_max=4, noise=0.001)
    run = drive(make_teacher(name, policy=policy), env, steps=200, seed=0)
    assert share(run["omegas"][100:], 3.0) > 0.6, np.bincount(run["omegas"].astype(int))


@pytest.mark.parametrize("name", BANDITS)
def test_absolute_progress_makes_a_forgetting_arm_attract(name):
    env = FakeEnv(arm_two_forgets, n_max=4, noise=0.001)
    forgets = drive(make_teacher(name, absolute=True), env, steps=200, seed=0)["omegas"][100:]
    learns = drive(make_teacher(name, absolute=False), env, steps=200, seed=0)["omegas"][100:]
    assert share(forgets, 2.0) > 0.6
    assert share(learns, 2.0) < 0.2 and share(learns, 4.0) > 0.6


def test_bandit_credits_the_arm_where_omega_is_with_discrete_actions():
    env = FakeEnv(arm_three_learns, n_max=4, action_type="discrete", noise=0.001)
    run = drive(WindowTeacher(), env, steps=200, seed=0)
    assert share(run["omegas"][100:], 3.0) > 0.6


def test_custom_arms_are_the_only_omegas_chosen():
    env = FakeEnv(arm_three_learns, n_max=10)
    run = drive(SamplingTeacher(arms=[1, 3, 7]), env, steps=60, seed=0)
    assert set(run["omegas"]) <= {1.0, 3.0, 7.0}


def test_first_act_has_no_measurement():
    teacher, env = OnlineTeacher(), FakeEnv(arm_three_learns)
    drive(teacher, env, steps=1)
    assert np.all(teacher.q == 0.0)


def test_epsilon_greedy_and_boltzmann_probabilities():
    rng = np.random.default_rng(0)
    p = EpsilonGreedy(0.2)(np.array([0.0, 1.0, 0.5, 0.0]), rng)
    assert np.allclose(p, [0.05, 0.85, 0.05, 0.05])
    p = Boltzmann(temperature=1.0)(np.array([0.0, np.log(3.0)]), rng)
    assert np.allclose(p, [0.25, 0.75])


def test_policies_by_name_dict_or_object():
    assert make_policy("boltzmann") == Boltzmann()
    assert make_policy({"name": "epsilon-greedy", "epsilon": 0.3}) == EpsilonGreedy(0.3)
    assert make_policy(Thompson(0.0)) == Thompson(0.0)
    assert slope([(0, 1.0), (1, 3.0), (2, 5.0)]) == pytest.approx(2.0)


@pytest.mark.parametrize("teacher", [OnlineTeacher, NaiveTeacher, WindowTeacher])
def test_thompson_only_with_the_sampling_teacher(teacher):
    with pytest.raises(ValueError, match="only with the sampling teacher"):
        teacher(policy="thompson")


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: EpsilonGreedy(1.5), ValueError, "epsilon=1.5"),
        (lambda: Boltzmann(0.0), ValueError, "temperature=0.0"),
        (lambda: WindowTeacher(policy="greedy"), ValueError, "policy 'greedy' is unknown"),
        (lambda: WindowTeacher(policy=3), TypeError, "policy=3"),
        (lambda: OnlineTeacher(alpha=0.0), ValueError, "alpha=0.0"),
        (lambda: NaiveTeacher(window=0), ValueError, "window=0"),
        (lambda: WindowTeacher(window=1), ValueError, "window=1"),
        (lambda: SamplingTeacher(arms=[2, 2]), ValueError, "same ω twice"),
        (lambda: SamplingTeacher(arms=[]), ValueError, "non-empty"),
    ],
    ids=[
        "epsilon-above-1",
        "zero-temperature",
        "unknown-policy",
        "policy-not-a-policy",
        "zero-alpha",
        "naive-window-0",
        "window-1",
        "duplicate-arms",
        "no-arms",
    ],
)
def test_bad_arguments(build, error, match):
    with pytest.raises(error, match=match):
        build()
