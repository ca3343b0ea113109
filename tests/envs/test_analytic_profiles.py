"""The analytic profiles: each learning model does what its docstring says, and on each the
teacher that should win by construction beats the ones that should not (a few seeds of
whole episodes: the students answer in microseconds)."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import metacurriculum  # noqa: F401 - registers the ids
from metacurriculum.envs import STUDENTS, MetaCurriculumConfig, make_student
from metacurriculum.envs.analytic_profiles import (
    ANALYTIC_PROFILES,
    CalibratedStudent,
    ForgettingStudent,
    LocalStudent,
)
from metacurriculum.teachers.evaluation import evaluate_teacher


def student(name: str, **settings):
    config = MetaCurriculumConfig.from_overrides(student=name, **settings)
    return make_student(config, seed=0)


def test_every_profile_is_a_student_and_an_id():
    assert set(ANALYTIC_PROFILES) <= set(STUDENTS)
    ids = {spec.kwargs.get("student") for spec in gym.registry.values()}
    assert set(ANALYTIC_PROFILES) <= ids


def test_easy_first_has_no_cap():
    s = student("analytic-easy-first")
    for _ in range(3000):
        s.train(min(s.skill + 1, 20), 1)
    assert s.skill > 20 + 2  # the 'analytic' student stops at n_max + 2


def test_hardest_teaches_most_at_the_hardest_tasks():
    gains = {}
    for n in (2, 10, 20):
        s = student("analytic-hardest", omega_noise=0.0)
        s.train(n, 10)
        gains[n] = s.skill - 1
    assert gains[2] < gains[10] < gains[20]


def test_forgetting_decays_what_is_not_practised_and_gates_on_the_level_below():
    s = student("analytic-forgetting", omega_noise=0.0, budget=1000)
    assert isinstance(s, ForgettingStudent)
    s.train(5, 10)  # level 5 needs level 4: nothing learnt
    assert not s.competence.any()
    s.train(2, 20)
    learnt = s.competence[0]
    assert learnt > 0.9
    s.train(3, 100)
    assert s.competence[1] > 0.5 and s.competence[0] == pytest.approx(learnt * 0.998**100)
    assert s.normalized_loss(np.array([3]))[0] == pytest.approx(1 - s.competence[:2].mean())


def test_noisy_measures_with_a_large_error_and_evaluates_precisely():
    s = student("analytic-noisy", val_tasks=1)
    spread = np.std([s.validate(2.0).normalized_loss for _ in range(200)])
    assert 0.2 < spread < 0.4
    curves = s.evaluate_test(200, seed=0)
    final = curves.loss[:, -1] / np.log(20)
    assert np.std(final) < 0.02


def test_calibrated_follows_its_fit_and_needs_its_class_range():
    s = student("analytic-calibrated", n_max=5)
    assert isinstance(s, CalibratedStudent)
    fit = CalibratedStudent.CALIBRATION
    np.testing.assert_allclose(s.normalized_loss(np.array([2, 3, 4, 5])), fit["a"])
    s.train(2.0, 50)  # g(2) = 0: two-way tasks teach nothing
    assert s.u == pytest.approx(50 * fit["k"] * fit["g"][0])
    s.train(5.0, 1000)
    assert s.normalized_loss(np.array([5]))[0] == pytest.approx(fit["b"][-1], abs=1e-6)
    with pytest.raises(ValueError, match="use n_max=5"):
        student("analytic-calibrated", n_max=20)


@pytest.mark.parametrize("name", ["analytic-easy-first", "analytic-forgetting"])
def test_one_coordinate_profiles_refuse_a_vector_family(name):
    with pytest.raises(ValueError, match="family='classes'"):
        student(name, family="omniglot-multi")


def test_local_competence_grows_near_the_task_and_not_at_an_unlearnt_corner():
    s = student("analytic-local", family="omniglot-multi", omega_noise=0.0)
    assert isinstance(s, LocalStudent)
    family = s.family
    hardest, easiest = family.hardest, family.easiest
    s.train(family.public(hardest), 50)
    assert not s.z.any()  # nothing easier is known: the corner teaches nothing
    near = family.from_difficulty([0.1, 0.1, 0.1])
    far = family.from_difficulty([0.6, 0.6, 0.6])
    s.train(family.public(easiest), 20)
    loss = s.normalized_loss(np.stack([easiest, near, far]))
    assert loss[0] < loss[1] < loss[2] == pytest.approx(1.0, abs=1e-3)
    state = s.state()
    json.dumps(state)
    assert len(state["step"]) == 3


#: (profile, the teacher that should win by construction, teachers it should beat).
WINNERS = [
    ("MetaCurriculum-AnalyticEasyFirst-v0", "static", ["linear", "random", "none"]),
    ("MetaCurriculum-AnalyticHardest-v0", "none", ["linear", "adaptive", "random"]),
    ("MetaCurriculum-AnalyticForgetting-v0", "random", ["linear", "adaptive", "static"]),
    ("MetaCurriculum-AnalyticNoisy-v0", "linear", ["static", "adaptive", "tscl-window"]),
    ("MetaCurriculum-AnalyticLocal-v0", "linear", ["random", "none"]),
]


@pytest.mark.parametrize(("env_id", "winner", "losers"), WINNERS, ids=[w[0] for w in WINNERS])
def test_the_teacher_that_should_win_does(env_id, winner, losers):
    env = gym.make(env_id)
    seeds = [0, 1]

    def mean_loss(name: str) -> float:
        return float(np.mean([e.test_loss for e in evaluate_teacher(env, name, seeds, 50)]))

    best = mean_loss(winner)
    for name in losers:
        assert best < mean_loss(name), f"{winner} should beat {name} on {env_id}"
