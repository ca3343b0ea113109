"""Teachers that follow the target gain (alp, target-bandit, mixture) on students known in advance.

Two fake worlds, in which the target loss (the hardest tasks) is a function of the ω of
every step so far:

- ``only_hardest_teaches``: each step at the top of the range lowers the target loss by
  0.01, any other step does nothing; the best teacher is plain MAML.
- ``frontier``: a skill that grows fastest one class beyond itself (the analytic
  student's rule) and a target loss linear in the skill; training at the top from the
  start teaches almost nothing, so the best teacher follows the skill upwards.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from fakes import FakeEnv, drive

from metacurriculum.teachers import make_teacher, teacher_summary
from metacurriculum.teachers.progress import TargetGain, sample_tilted, tilted_mean

PROGRESS = ["alp", "target-bandit", "mixture"]
N_MAX = 5


def flat(omega, t, visits):
    return 0.5


def only_hardest_teaches(omegas):
    return 1.0 - 0.01 * sum(w >= N_MAX - 0.5 for w in omegas)


def frontier(omegas):
    skill = 1.0
    for w in omegas:
        skill += 0.05 * math.exp(-((w - skill - 1.0) ** 2) / (2 * 0.7**2))
    return 1.0 - skill / (N_MAX + 1)


def run(name, target, seed=0, steps=150, **kwargs):
    env = FakeEnv(flat, n_max=N_MAX, noise=0.001, target=target)
    return drive(make_teacher(name, **kwargs), env, steps=steps, seed=seed)


@pytest.mark.parametrize("name", PROGRESS)
@pytest.mark.parametrize("seed", [0, 1])
def test_stays_at_the_hardest_when_only_the_hardest_teaches(name, seed):
    late = run(name, only_hardest_teaches, seed)["omegas"][-50:]
    assert late.mean() >= N_MAX - 0.7, np.round(late, 1)
    # random would sit at 3 on average, and reach the top a fifth of the time
    assert np.mean(late >= N_MAX - 0.5) >= 0.75


@pytest.mark.parametrize("name", PROGRESS)
@pytest.mark.parametrize("seed", [0, 1])
def test_follows_the_frontier_where_a_curriculum_helps(name, seed):
    result = run(name, frontier, seed)
    omegas = result["omegas"]
    assert omegas[:30].mean() < 3.5, "starts on easier tasks"
    assert omegas[-40:].mean() > omegas[:30].mean() + 1.0, "moves up with the skill"
    none = run("none", frontier)["info"]["target_loss_normalized"]
    assert result["info"]["target_loss_normalized"] < none - 0.4, "beats plain MAML"


def interference(omegas):
    """Steps at ω = 1 raise the target loss; steps at the top lower it, less."""
    return 1.0 - 0.005 * sum(w >= N_MAX - 0.5 for w in omegas) + 0.01 * sum(w < 1.5 for w in omegas)


def test_target_bandit_avoids_an_arm_that_hurts_the_target():
    omegas = run("target-bandit", interference)["omegas"][50:]
    assert np.mean(omegas < 1.5) < 0.1 and np.mean(omegas > 4.5) > 0.7


def test_alp_with_the_val_signal_prefers_the_bin_whose_own_loss_moves():
    """ALP-GMM's own signal: each bin's competence; bin 3's loss falls, the others are flat."""

    def bin_three_learns(omega, t, visits):
        return 0.9 * math.exp(-0.01 * t) if round(omega) == 3 else 0.8

    env = FakeEnv(bin_three_learns, n_max=4, noise=0.001)
    omegas = drive(make_teacher("alp", signal="val"), env, steps=200)["omegas"][100:]
    assert np.mean(omegas == 3.0) > 0.6


@pytest.mark.parametrize("name", PROGRESS)
def test_same_seed_same_choices_other_seed_others(name):
    a = run(name, frontier, seed=3, steps=60)["omegas"]
    b = run(name, frontier, seed=3, steps=60)["omegas"]
    c = run(name, frontier, seed=4, steps=60)["omegas"]
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("action_type", ["continuous", "discrete"])
@pytest.mark.parametrize("name", PROGRESS)
def test_choices_stay_in_the_omega_range(name, action_type):
    env = FakeEnv(flat, n_max=N_MAX, noise=0.01, target=frontier, action_type=action_type)
    teacher = make_teacher(name)
    obs, info = env.reset(seed=0)
    teacher.reset(env.observation_space, env.action_space, seed=0)
    for _ in range(80):
        omega = teacher.choose_omega(obs, info)
        assert 1.0 <= omega <= N_MAX
        obs, _, _, _, info = env.step(teacher.act(obs, info))
    assert teacher_summary(teacher)


@pytest.mark.parametrize("name", PROGRESS)
def test_runs_on_the_analytic_student(name):
    env = gym.make("MetaCurriculum-Analytic-v0", n_max=5, budget=200, max_episode_steps=50)
    result = drive(make_teacher(name), env, steps=50)
    assert len(set(result["omegas"].tolist())) > 1, "the target gain moves ω"


def test_mixture_learns_the_tilt_towards_the_top():
    env = FakeEnv(flat, n_max=N_MAX, noise=0.001, target=only_hardest_teaches)
    teacher = make_teacher("mixture")
    drive(teacher, env, steps=150)
    assert teacher_summary(teacher)["teacher/final_tilt"] > 6.0


@pytest.mark.parametrize("tilt", [-4.0, 0.0, 1e-8, 2.0, 9.0])
def test_tilted_sampling_matches_its_mean(tilt):
    rng = np.random.default_rng(0)
    draws = np.array([sample_tilted(tilt, rng) for _ in range(20000)])
    assert draws.min() >= 0.0 and draws.max() <= 1.0
    assert draws.mean() == pytest.approx(tilted_mean(tilt), abs=0.01)


def test_bandit_summary_reports_the_share_at_the_top():
    teacher = make_teacher("target-bandit")
    assert teacher_summary(teacher) == {}
    drive(teacher, FakeEnv(flat, n_max=N_MAX, target=only_hardest_teaches), steps=100)
    assert teacher_summary(teacher)["teacher/hardest_fraction"] > 0.7


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("alp", {"signal": "reward"}, "signal='reward'"),
        ("alp", {"alpha": 0.0}, "alpha=0.0"),
        ("alp", {"random_ratio": 1.5}, "random_ratio=1.5"),
        ("target-bandit", {"alpha": 2.0}, "alpha=2.0"),
        ("mixture", {"tilt": 25.0}, "tilt=25.0"),
        ("mixture", {"lr": -1.0}, "lr=-1.0"),
        ("mixture", {"beta": 0.0}, "beta=0.0"),
    ],
    ids=[
        "unknown-signal",
        "zero-alpha",
        "random-ratio-above-1",
        "bandit-alpha-above-1",
        "tilt-past-max",
        "negative-lr",
        "zero-beta",
    ],
)
def test_bad_arguments(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_teacher(name, **kwargs)


def test_target_gain_is_the_decrease_since_the_last_act_credited_to_omega():
    gain = TargetGain()
    assert gain({"target_loss_normalized": 0.9, "omega": 1.0}) is None  # reset: nothing trained
    assert gain({"target_loss_normalized": 0.7, "omega": 3.0}) == pytest.approx((3.0, 0.2))
    assert gain({"target_loss_normalized": float("nan"), "omega": 4.0}) is None
    assert gain({"target_loss_normalized": 0.8, "omega": 2.0, "diverged": True}) is None
    assert gain({"target_loss_normalized": 0.75, "omega": 5.0}) == pytest.approx((5.0, -0.05))


@pytest.mark.parametrize("name", ["alp", "target-bandit"])
def test_custom_arms_are_the_only_omegas_chosen(name):
    run_ = run(name, frontier, steps=60, arms=[1, 3, 5])
    assert set(run_["omegas"]) <= {1.0, 3.0, 5.0}
