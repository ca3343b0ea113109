"""Teachers for a vector ω: ALP-GMM and ADR against hand-made cases of their papers' rules,
and every vector teacher on the three-dimensional analytic student (bounds, seeds,
where it moves)."""

from __future__ import annotations

from collections.abc import Callable
from importlib.util import find_spec

import gymnasium as gym
import numpy as np
import pytest

import metacurriculum  # noqa: F401 - registers the ids
from metacurriculum.teachers import (
    ADRTeacher,
    ALPGMMTeacher,
    make_teacher,
    teacher_summary,
    vector_teachers,
)
from metacurriculum.teachers.continuous import NearestALP

ANALYTIC_MULTI = "MetaCurriculum-AnalyticMulti-v0"
VECTOR_TEACHERS = [
    name
    for name in vector_teachers()
    if name != "sb3" and (find_spec("syllabus") is not None or not name.startswith("syllabus"))
]


def unit_info(dim: int, **extra) -> dict:
    """An env info over the unit box whose actions are ω itself."""
    info = {
        "omega": np.zeros(dim),
        "omega_min": np.zeros(dim),
        "omega_max": np.ones(dim),
        "omega_easiest": np.zeros(dim),
        "omega_hardest": np.ones(dim),
        "val_loss_normalized": 1.0,
        "meta_step": 0,
        "budget": 1000,
        "action_type": "omega",
    }
    return {**info, **extra}


def drive_field(teacher, loss: Callable[[np.ndarray, int], float], steps: int, dim: int = 2):
    """Run ``teacher`` against a hand-made loss ``loss(ω, t)``; returns the ω chosen."""
    space = gym.spaces.Box(0.0, 1.0, (dim,), np.float32)
    teacher.reset(space, space, seed=0)
    info, chosen = unit_info(dim), []
    for t in range(steps):
        omega = np.asarray(teacher.act(None, info), dtype=float)
        chosen.append(omega)
        info = unit_info(dim, omega=omega, val_loss_normalized=loss(omega, t), meta_step=t)
    return np.array(chosen)


# -- ALP-GMM ---------------------------------------------------------------------------


def test_alp_is_the_change_from_the_nearest_task_seen_before():
    alp = NearestALP(warmup=2)
    assert alp(np.array([0.0, 0.0]), 0.1) == 0.0  # warming up
    assert alp(np.array([1.0, 1.0]), 0.5) == 0.0
    assert alp(np.array([0.0, 1.0]), 0.2) == 0.0
    # nearest of (0,0), (1,1), (0,1) to (0.1, 0.1) is (0,0) with competence 0.1
    assert alp(np.array([0.1, 0.1]), 0.4) == pytest.approx(0.3)
    assert alp(np.array([0.9, 0.9]), 0.45) == pytest.approx(0.05)  # nearest (1,1): 0.5


def test_alp_gmm_draws_uniformly_while_bootstrapping_then_fits_on_schedule():
    teacher = ALPGMMTeacher(fit_rate=10)
    chosen = drive_field(teacher, lambda w, t: 0.5, steps=31)
    assert teacher.fits == 3  # after 10, 20 and 30 measured steps
    assert teacher.gmm is not None and 2 <= teacher.gmm.n_components <= 2  # k <= 10 // 4
    assert np.all((chosen >= 0) & (chosen <= 1))
    assert teacher_summary(teacher)["teacher/fits"] == 3.0


def test_alp_gmm_samples_where_the_learning_progress_is():
    """Competence rises only in the corner x0 > 0.7 (loss falls there with every visit):
    after the bootstrap, the GMM's draws concentrate there; uniform would put 30% there."""
    visits = {"n": 0}

    def loss(omega, t):
        if omega[0] > 0.7:
            visits["n"] += 1
            return 1.0 - 0.02 * visits["n"] + 0.0 * t
        return 0.6

    teacher = ALPGMMTeacher(fit_rate=20, random_ratio=0.0)
    chosen = drive_field(teacher, loss, steps=200)
    late = chosen[100:]
    assert np.mean(late[:, 0] > 0.7) > 0.6
    assert teacher_summary(teacher)["teacher/uniform_fraction"] == pytest.approx(
        20 / 200
    )  # the bootstrap


def test_alp_gmm_picks_components_in_proportion_to_their_mean_alp():
    teacher = ALPGMMTeacher(fit_rate=40, random_ratio=0.0)
    space = gym.spaces.Box(0.0, 1.0, (2,), np.float32)
    teacher.reset(space, space, seed=3)
    rng = np.random.default_rng(0)
    quiet = np.column_stack([rng.normal(0.2, 0.02, (20, 2)), np.zeros(20)])
    busy = np.column_stack([rng.normal(0.8, 0.02, (20, 2)), np.full(20, 0.5)])
    teacher.fit(np.vstack([quiet, busy]))
    draws = np.array([teacher.sample(2) for _ in range(200)])
    assert np.mean(np.linalg.norm(draws - 0.8, axis=1) < 0.15) > 0.95


def test_alp_gmm_is_deterministic_for_a_seed():
    def loss(omega, t):
        return float(np.abs(omega - 0.5).sum()) / (1 + 0.01 * t)

    a = drive_field(ALPGMMTeacher(fit_rate=10), loss, steps=40)
    b = drive_field(ALPGMMTeacher(fit_rate=10), loss, steps=40)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fit_rate": 2}, "fit_rate=2"),
        ({"max_k": 1}, "max_k=1"),
        ({"random_ratio": 1.5}, "random_ratio=1.5"),
        ({"criterion": "aicc"}, "criterion='aicc'"),
    ],
)
def test_alp_gmm_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ALPGMMTeacher(**kwargs)


# -- ADR -------------------------------------------------------------------------------


def adr_ready(dim: int = 2, **kwargs) -> ADRTeacher:
    teacher = ADRTeacher(**kwargs)
    space = gym.spaces.Box(0.0, 1.0, (dim,), np.float32)
    teacher.reset(space, space, seed=0)
    teacher.act(None, unit_info(dim))  # starts the box
    return teacher


def test_adr_starts_at_the_easiest_corner_and_samples_the_open_bound():
    teacher = adr_ready(boundary_p=1.0)
    assert teacher.lower.tolist() == [0.0, 0.0] and teacher.upper.tolist() == [0.0, 0.0]
    for _ in range(20):
        x = teacher.sample()
        assert x.tolist() == [0.0, 0.0]
        assert teacher.boundary[1] == "upper"  # the lower bound is at the global limit


def test_adr_widens_a_bound_where_the_student_copes_and_narrows_it_where_not():
    teacher = adr_ready(step=0.2, queue_len=3, expand_below=0.55, contract_above=0.8)
    for loss in (0.5, 0.4, 0.6):  # mean 0.5 < 0.55: widen the upper bound of coordinate 1
        teacher.record((1, "upper"), loss)
    assert teacher.upper.tolist() == [0.0, pytest.approx(0.2)]
    assert not teacher.queues[(1, "upper")]  # emptied after the decision
    for loss in (0.6, 0.7, 0.7):  # between the thresholds: nothing
        teacher.record((1, "upper"), loss)
    assert teacher.upper.tolist() == [0.0, pytest.approx(0.2)]
    for loss in (0.9, 0.9, 0.9):  # above 0.8: narrow it again
        teacher.record((1, "upper"), loss)
    assert teacher.upper.tolist() == [0.0, 0.0]
    for loss in (0.9, 0.9, 0.9):  # never past the lower bound
        teacher.record((1, "upper"), loss)
    assert teacher.upper.tolist() == [0.0, 0.0]
    for _ in range(10):  # never past the global limit
        for loss in (0.1, 0.1, 0.1):
            teacher.record((0, "upper"), loss)
    assert teacher.upper[0] == 1.0
    # 1 + 5 moves changed a bound; the 5 decisions clipped at the limit are not expansions
    assert teacher_summary(teacher)["teacher/expansions"] == 6.0
    assert teacher_summary(teacher)["teacher/contractions"] == 1.0  # the second was clipped


def test_adr_feeds_a_boundary_steps_loss_to_that_bounds_queue():
    teacher = adr_ready(boundary_p=1.0, queue_len=2)
    info = unit_info(2)
    for t in range(1, 7):
        omega = np.asarray(teacher.act(None, info))
        bound = teacher.boundary
        info = unit_info(2, omega=omega, val_loss_normalized=0.1, meta_step=t)
    # Every step was a boundary step on an upper bound with loss 0.1: each two widen one.
    assert bound is not None
    assert teacher.upper.sum() == pytest.approx(0.2 * teacher.moves["expand"])
    assert teacher.moves["expand"] >= 2


def drive_adr(teacher: ADRTeacher, steps: int, loss: float = 0.1) -> None:
    """``steps`` acts, each measuring ``loss`` at the previous choice."""
    info = unit_info(2, val_loss_normalized=loss, meta_step=1)
    for t in range(1, steps + 1):
        omega = np.asarray(teacher.act(None, info))
        info = unit_info(2, omega=omega, val_loss_normalized=loss, meta_step=t)


def test_adr_as_in_teachmyagent_feeds_every_bound_the_point_sits_on():
    """At the single-point start every step sits on all four bounds: TeachMyAgent feeds
    every queue, so both coordinates widen after queue_len steps. The default feeds only
    the sampled bound (OpenAI's Algorithm 1): one boundary step in two, one bound each."""
    reference = adr_ready(queue_len=3, boundary_p=0.5, reference="teachmyagent")
    drive_adr(reference, steps=2)  # two measurements in every queue
    assert reference.upper.tolist() == [0.0, 0.0]
    drive_adr(reference, steps=1)  # the third fills them
    assert reference.upper.tolist() == [pytest.approx(0.2), pytest.approx(0.2)]
    assert reference.lower.tolist() == [0.0, 0.0]  # at the limit: clipped, not counted
    assert teacher_summary(reference)["teacher/expansions"] == 2.0
    default = adr_ready(queue_len=3, boundary_p=0.5)
    drive_adr(default, steps=3)
    assert default.upper.sum() == 0.0  # at most three boundary steps, split over two bounds


def test_adr_as_in_teachmyagent_samples_either_side_unless_both_are_at_the_limit():
    teacher = adr_ready(dim=1, boundary_p=1.0, reference="teachmyagent")
    sides = set()
    for _ in range(40):  # the lower bound is at its limit: TeachMyAgent still draws it
        teacher.sample()
        sides.add(teacher.boundary[1])
    assert sides == {"lower", "upper"}
    teacher.upper[:] = 1.0  # both at the limit: no boundary step
    assert teacher.boundary is not None
    teacher.sample()
    assert teacher.boundary is None
    with pytest.raises(ValueError, match="reference='openai' is unknown"):
        ADRTeacher(reference="openai")


def test_adr_orients_a_coordinate_whose_low_end_is_hardest():
    teacher = ADRTeacher(boundary_p=1.0)
    space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
    teacher.reset(space, space, seed=0)
    info = unit_info(1, omega_easiest=np.ones(1), omega_hardest=np.zeros(1))
    teacher.act(None, info)
    assert teacher.lower.tolist() == [1.0] and teacher.boundary == (0, "lower")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"step": 0.0}, "step=0.0"),
        ({"queue_len": 0}, "queue_len=0"),
        ({"expand_below": 0.9, "contract_above": 0.8}, "must be below"),
        ({"start": [1.5]}, "start="),
    ],
)
def test_adr_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ADRTeacher(**kwargs)


# -- every vector teacher on the analytic student --------------------------------------


def run_episode(name: str, seed: int, budget: int = 400) -> tuple[np.ndarray, dict]:
    env = gym.make(ANALYTIC_MULTI, budget=budget, max_episode_steps=budget // 4)
    family = env.unwrapped.family
    teacher = make_teacher(name)
    obs, info = env.reset(seed=seed)
    teacher.reset(env.observation_space, env.action_space, seed=seed)
    difficulty, done = [], False
    while not done:
        obs, _, terminated, truncated, info = env.step(teacher.act(obs, info))
        assert np.all(info["omega"] >= family.low) and np.all(info["omega"] <= family.high)
        difficulty.append(family.difficulty(info["omega"]))
        done = terminated or truncated
    return np.array(difficulty), info


@pytest.mark.parametrize("name", VECTOR_TEACHERS)
def test_vector_teachers_stay_in_the_box_and_repeat_for_a_seed(name):
    a, info_a = run_episode(name, seed=4, budget=160)
    b, info_b = run_episode(name, seed=4, budget=160)
    np.testing.assert_array_equal(a, b)
    assert info_a["target_loss"] == info_b["target_loss"]


@pytest.mark.parametrize("name", ["adaptive", "adr"])
def test_curriculum_teachers_raise_every_coordinate_as_the_student_learns(name):
    """The analytic student learns each coordinate fastest just beyond its skill: these
    teachers start easy and end harder on every coordinate."""
    difficulty, _ = run_episode(name, seed=0)
    quarter = len(difficulty) // 4
    assert np.all(difficulty[-quarter:].mean(axis=0) > difficulty[:quarter].mean(axis=0) + 0.2)


def test_the_per_coordinate_adaptive_teacher_beats_plain_and_random_training():
    """Built so that a curriculum pays (not evidence for the paper's claim)."""
    final = {
        name: run_episode(name, seed=1, budget=1000)[1]["target_loss_normalized"]
        for name in ("none", "random", "adaptive")
    }
    assert final["adaptive"] < min(final["none"], final["random"]) - 0.3, final


def test_the_adaptive_teacher_estimates_each_partial_derivative():
    """Least squares over the window recovers a known gradient (prior switched off)."""
    teacher = make_teacher("adaptive", prior_weight=0.0, window=8)
    space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    teacher.reset(space, space, seed=0)
    rng = np.random.default_rng(0)
    gradient = np.array([0.3, -0.1, 0.0])
    for omega in rng.uniform(0, 5, (8, 3)):
        teacher.history.append((omega, float(omega @ gradient)))
    np.testing.assert_allclose(teacher.estimate_gradient(), gradient, atol=1e-12)
