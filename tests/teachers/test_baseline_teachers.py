"""The baselines: no curriculum (hardest tasks at once) and domain randomisation."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import FakeEnv, drive

from metacurriculum.teachers import NoCurriculumTeacher, RandomTeacher


def flat(omega, t, visits):
    return 0.5


def test_none_goes_to_n_max_at_once():
    run = drive(NoCurriculumTeacher(), FakeEnv(flat, n_max=20), steps=5)
    assert run["omegas"].tolist() == [20.0] * 5


def test_none_climbs_one_step_at_a_time_with_discrete_actions():
    run = drive(NoCurriculumTeacher(), FakeEnv(flat, n_max=4, action_type="discrete"), steps=5)
    assert run["omegas"].tolist() == [2.0, 3.0, 4.0, 4.0, 4.0]


def test_random_covers_the_range_uniformly():
    omegas = drive(RandomTeacher(), FakeEnv(flat, n_max=20), steps=400, seed=1)["omegas"]
    assert omegas.min() >= 1.0 and omegas.max() <= 20.0
    counts, _ = np.histogram(omegas, bins=4, range=(1.0, 20.0))
    assert counts.min() >= 70, counts  # 100 expected per quarter


@pytest.mark.parametrize("action_type", ["continuous", "discrete"])
def test_random_is_reproducible_from_its_seed(action_type):
    env = FakeEnv(flat, n_max=10, action_type=action_type)
    a = drive(RandomTeacher(), env, steps=30, seed=5)["omegas"]
    b = drive(RandomTeacher(), env, steps=30, seed=5)["omegas"]
    c = drive(RandomTeacher(), env, steps=30, seed=6)["omegas"]
    assert np.array_equal(a, b) and not np.array_equal(a, c)
