"""The paper's static and adaptive teachers against losses known in advance."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from fakes import FakeEnv, drive

from metacurriculum.teachers import AdaptiveTeacher, StaticTeacher, make_teacher

ACTION_TYPES = ["continuous", "discrete"]


def learns_each_rung(omega, t, visits):
    """0.9 ** (steps trained at this ω): below 0.5 after the 7th step at a rung."""
    return 0.9 ** visits[round(omega)]


# -- static ------------------------------------------------------------------------


@pytest.mark.parametrize("action_type", ACTION_TYPES)
def test_static_climbs_at_the_threshold_and_stays_at_the_top(action_type):
    env = FakeEnv(learns_each_rung, n_max=4, action_type=action_type)
    run = drive(StaticTeacher(threshold=0.5), env, steps=40)
    assert run["omegas"].tolist() == [1.0] * 7 + [2.0] * 7 + [3.0] * 7 + [4.0] * 19


def test_static_patience_needs_consecutive_measurements_below_the_threshold():
    env = FakeEnv(learns_each_rung, n_max=3)
    run = drive(StaticTeacher(threshold=0.5, patience=3), env, steps=20)
    assert run["omegas"].tolist() == [1.0] * 9 + [2.0] * 9 + [3.0] * 2

    def alternating(omega, t, visits):
        return 0.4 if t % 2 else 0.6

    assert set(drive(StaticTeacher(patience=2), FakeEnv(alternating), steps=20)["omegas"]) == {1.0}
    assert drive(StaticTeacher(patience=1), FakeEnv(alternating), steps=20)["omegas"][-1] == 5.0


def test_static_never_leaves_a_rung_it_cannot_learn():
    """The paper's failure mode: a too-hard rung is never passed."""

    def stuck_at_three(omega, t, visits):
        return 1.0 if round(omega) >= 3 else 0.1

    run = drive(StaticTeacher(), FakeEnv(stuck_at_three, n_max=6), steps=30)
    assert run["omegas"][:2].tolist() == [1.0, 2.0]
    assert set(run["omegas"][2:]) == {3.0}


def test_static_ignores_the_untrained_measurement_of_reset():
    def low_at_reset(omega, t, visits):
        return 0.1 if t == 0 else 0.9

    run = drive(StaticTeacher(), FakeEnv(low_at_reset), steps=5)
    assert set(run["omegas"]) == {1.0}


def test_static_custom_ladder():
    env = FakeEnv(learns_each_rung, n_max=10)
    run = drive(StaticTeacher(ladder=[2, 5, 10], threshold=0.5), env, steps=20)
    assert run["omegas"].tolist() == [2.0] * 7 + [5.0] * 7 + [10.0] * 6


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"threshold": -0.1}, "threshold=-0.1"),
        ({"patience": 0}, "patience=0"),
        ({"ladder": [3, 2]}, "increase strictly"),
        ({"ladder": []}, "non-empty"),
    ],
    ids=["negative-threshold", "zero-patience", "decreasing-ladder", "empty-ladder"],
)
def test_static_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StaticTeacher(**kwargs)


# -- adaptive ----------------------------------------------------------------------


def rising(omega, t, visits):
    """Loss rises with ω: 0.5 at ω = 10."""
    return 0.05 * omega


def falling(omega, t, visits):
    """Loss falls with ω: 0.5 at ω = 5."""
    return 1.0 - 0.1 * omega


@pytest.mark.parametrize("action_type", ACTION_TYPES)
@pytest.mark.parametrize(
    ("target_loss", "where"),
    [(0.8, "up"), (0.2, "down")],
    ids=["over-performing-raises", "under-performing-lowers"],
)
def test_adaptive_moves_omega_the_way_the_paper_prescribes(action_type, target_loss, where):
    env = FakeEnv(rising, n_max=20, omega_init=10.0, action_type=action_type, noise=0.005)
    teacher = AdaptiveTeacher(target_loss=target_loss)
    run = drive(teacher, env, steps=60)
    settled = run["omegas"][-20:].mean()
    goal = target_loss / 0.05  # where the loss equals the target: ω = 16 or 4
    if where == "up":
        assert run["omegas"][:10].mean() < settled
    else:
        assert run["omegas"][:10].mean() > settled
    assert abs(settled - goal) <= 2.0, (settled, goal)
    assert teacher.difficulty_gradient == pytest.approx(0.05, abs=0.03)


def test_adaptive_follows_the_measured_gradient_when_loss_falls_with_omega():
    """Over-performing where difficulty falls with ω means lowering ω (requirement 3)."""
    env = FakeEnv(falling, n_max=10, omega_init=5.0, noise=0.005)
    teacher = AdaptiveTeacher(target_loss=0.8)
    run = drive(teacher, env, steps=40)
    assert run["omegas"][-10:].mean() <= 3.0
    assert teacher.difficulty_gradient < 0


def test_adaptive_holds_inside_the_threshold():
    env = FakeEnv(rising, n_max=20, omega_init=10.0)
    teacher = AdaptiveTeacher(target_loss=0.5, threshold=0.01)
    drive(teacher, env, steps=30)
    assert teacher.base == 10.0


def test_adaptive_gradient_estimate_is_the_least_squares_slope():
    teacher = AdaptiveTeacher(prior_weight=0.0, min_delta=0.1)
    teacher.on_reset()
    teacher.history.extend([(1.0, 0.1), (2.0, 0.3), (2.05, 0.9), (4.0, 0.7)])
    # pairs (Δω, ΔL): (1, 0.2), (0.05, 0.6) ignored, (1.95, -0.2)
    expected = (1 * 0.2 + 1.95 * -0.2) / (1 + 1.95**2)
    assert teacher.estimate_gradient() == pytest.approx(expected)


def test_adaptive_prior_leaves_a_flat_plateau_of_chance_loss():
    """Started at the top where the loss is flat, the prior walks it down; without, it stays."""

    def plateau(omega, t, visits):
        return 1.0 if omega > 3 else 0.3

    with_prior = drive(AdaptiveTeacher(), FakeEnv(plateau, n_max=20, omega_init=20.0), steps=40)
    assert with_prior["omegas"][-10:].max() <= 6.0
    without = drive(
        AdaptiveTeacher(prior_slope=0.0), FakeEnv(plateau, n_max=20, omega_init=20.0), steps=40
    )
    assert without["omegas"].min() >= 19.0


@pytest.mark.parametrize("floor", ["linear", "none"])
def test_adaptive_pushes_to_the_hardest_tasks_by_the_end(floor):
    """Requirement 4: even a student that never meets the target ends on the hardest tasks."""
    env = gym.make("MetaCurriculum-Analytic-v0", n_max=10, budget=200, max_episode_steps=50)
    teacher = AdaptiveTeacher(target_loss=0.0, floor=floor, push_until=0.5)
    omegas = drive(teacher, env, steps=50)["omegas"]
    if floor == "none":
        assert omegas[-10:].max() < 5.0
    else:
        assert omegas[25:].min() >= 10.0 - teacher.perturbation - 1e-6
        assert omegas[:5].mean() < 6.0


def test_adaptive_perturbs_around_the_base_with_its_own_generator():
    env = FakeEnv(rising, n_max=20, omega_init=10.0)
    a = drive(AdaptiveTeacher(threshold=1.0), env, steps=50, seed=3)["omegas"]
    b = drive(AdaptiveTeacher(threshold=1.0), env, steps=50, seed=3)["omegas"]
    assert np.array_equal(a, b)
    assert a.min() >= 9.25 and a.max() <= 10.75 and a.std() > 0.3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window": 1}, "window=1"),
        ({"step": -2.0}, "step=-2.0"),
        ({"perturbation": float("nan")}, "perturbation=nan"),
        ({"min_delta": 0.0}, "min_delta=0.0"),
        ({"prior_slope": float("inf")}, "prior_slope=inf"),
        ({"push_until": 1.5}, "push_until=1.5"),
        ({"push_until": None}, "push_until=None"),
        ({"floor": "cosine"}, "floor='cosine' is unknown"),
    ],
    ids=[
        "window-1",
        "negative-step",
        "nan-perturbation",
        "zero-min-delta",
        "infinite-prior",
        "push-past-budget",
        "push-none",
        "unknown-floor",
    ],
)
def test_adaptive_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AdaptiveTeacher(**kwargs)


# -- adaptive at a real budget: the floor ------------------------------------------


def struggles(omega, t, visits):
    """Always above any target below 0.6, rising with ω: the teacher asks for easier tasks."""
    return 0.6 + 0.05 * omega


def well_then_struggles(omega, t, visits):
    """Below the target (0.5) for the first 50 steps, above it after."""
    return (0.2 if t <= 50 else 0.8) + 0.02 * omega


def run_with_floor(loss, floor, n_max=9, budget=100, **kwargs):
    env = FakeEnv(loss, n_max=n_max, budget=budget, noise=0.002)
    teacher = AdaptiveTeacher(floor=floor, **kwargs)
    return teacher, drive(teacher, env, steps=budget)["omegas"]


def test_linear_floor_sets_omega_for_a_student_that_never_meets_the_target():
    teacher, omegas = run_with_floor(struggles, "linear", push_until=0.5)
    t = np.arange(len(omegas))  # meta_step at the act that chose omegas[t]
    line = 1.0 + 8.0 * np.minimum(t / 50, 1.0)
    assert np.all(omegas >= line - teacher.perturbation - 1e-6)
    assert np.all(omegas[55:] >= 9.0 - teacher.perturbation - 1e-6)
    summary = teacher.summary()
    assert summary["teacher/own_decision_fraction"] < 0.2, summary
    assert summary["teacher/down_fraction"] > 0.8, summary


@pytest.mark.parametrize("floor", ["none", "gated"])
def test_without_a_floor_or_gated_a_struggling_student_keeps_easy_tasks(floor):
    teacher, omegas = run_with_floor(struggles, floor)
    assert omegas[5:].max() <= 1.0 + teacher.perturbation + 1e-6
    assert teacher.summary()["teacher/own_decision_fraction"] == 1.0


@pytest.mark.parametrize(
    ("floor", "late"),
    [("none", (1.0, 1.8)), ("gated", (4.2, 5.8)), ("linear", (8.2, 9.0))],
)
def test_the_three_floors_differ_after_the_student_starts_to_struggle(floor, late):
    """Doing well for 50 of 100 steps: the teacher climbs, then wants easier tasks. The
    gated floor's clock ran for those 50 steps only: it holds ω at the middle of the range."""
    teacher, omegas = run_with_floor(well_then_struggles, floor, push_until=1.0)
    assert omegas[40:50].mean() >= 7.0, "climbs while the student does well"
    assert late[0] <= omegas[-10:].mean() <= late[1], omegas[-10:]
    own = teacher.summary()["teacher/own_decision_fraction"]
    assert (own == 1.0) if floor == "none" else (own < 1.0)


def test_adaptive_paper_is_the_adaptive_teacher_without_prior_or_floor():
    teacher = make_teacher("adaptive-paper")
    assert isinstance(teacher, AdaptiveTeacher)
    assert (teacher.floor, teacher.prior_weight, teacher.step) == ("none", 0.0, 2.0)
    env = FakeEnv(struggles, n_max=9, budget=100, omega_init=9.0)
    omegas = drive(teacher, env, steps=100)["omegas"]
    assert omegas[-20:].max() <= 1.0 + teacher.perturbation + 1e-6
    assert teacher.summary()["teacher/own_decision_fraction"] == 1.0
    # no prior: on a loss flat in ω the slope is 0 and the teacher holds
    flat_env = FakeEnv(lambda omega, t, visits: 0.9, n_max=9, budget=100, omega_init=5.0)
    assert set(np.round(drive(teacher, flat_env, steps=30)["omegas"])) <= {4.0, 5.0, 6.0}


def run_analytic(teacher, steps: int = 100, seed: int = 0) -> tuple[np.ndarray, list[dict]]:
    env = gym.make("MetaCurriculum-Analytic-v0", budget=4 * steps, max_episode_steps=steps)
    obs, info = env.reset(seed=seed)
    teacher.reset(env.observation_space, env.action_space, seed=seed)
    infos = []
    for _ in range(steps):
        obs, _, _, _, info = env.step(teacher.act(obs, info))
        infos.append(info)
    return np.array([i["omega"] for i in infos]), infos


def test_adaptive_paper_literal_descends_the_raw_loss_and_sits_near_the_easiest_omega():
    """Algorithm 1's line 9 as written: the raw loss rises with the number of classes, so
    descending it walks to the easiest ω; the default (a target of 0.55 on the loss per
    log n) climbs to the hardest as the analytic student learns."""
    literal = make_teacher("adaptive-paper", literal=True)
    assert (literal.target_loss, literal.loss) == (0.0, "raw")
    omegas, infos = run_analytic(literal)
    assert omegas[50:].mean() < 2.0 + 2 * literal.perturbation
    last = infos[-2]  # measured at the last act
    assert literal.history[-1][1] == last["val_loss"] != last["val_loss_normalized"]
    assert run_analytic(make_teacher("adaptive-paper"))[0][50:].mean() > 10.0
    with pytest.raises(ValueError, match="literal=True descends the loss itself"):
        make_teacher("adaptive-paper", literal=True, target_loss=0.3)
    with pytest.raises(ValueError, match="loss='log' is unknown"):
        make_teacher("adaptive", loss="log")
