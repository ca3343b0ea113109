"""The fixed schedules: linear (easy to hard) and reverse (hard to easy) over the budget."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import FakeEnv, drive

from metacurriculum.teachers import LinearTeacher, ReverseTeacher, make_teacher


def flat(omega, t, visits):
    return 0.5


@pytest.mark.parametrize("action_type", ["continuous", "discrete"])
def test_linear_rises_from_omega_min_to_omega_max_at_until(action_type):
    env = FakeEnv(flat, n_max=9, budget=100, action_type=action_type)
    omegas = drive(make_teacher("linear", until=0.5), env, steps=100)["omegas"]
    # omegas[t] is chosen at meta_step t: on the line 1 + 8 t / 50, then at the top
    expected = 1.0 + 8.0 * np.minimum(np.arange(100) / 50, 1.0)
    if action_type == "continuous":
        assert np.allclose(omegas, expected, atol=1e-5)
    else:  # one omega_step a step: never more than a step behind the line
        assert np.all(np.abs(omegas - expected) <= 1.0 + 1e-6)
    assert np.all(np.diff(omegas) >= -1e-6) and omegas[-1] == 9.0


def test_reverse_is_the_mirror_image_of_linear():
    env = FakeEnv(flat, n_max=9, budget=100)
    up = drive(LinearTeacher(until=0.8), env, steps=100)["omegas"]
    down = drive(ReverseTeacher(until=0.8), env, steps=100)["omegas"]
    assert np.allclose(up + down, 10.0, atol=1e-5)
    assert down[0] == 9.0 and down[-1] == 1.0


def test_schedules_read_only_the_budget():
    """The student's loss does not matter: a schedule is a function of time alone."""

    def noisy(omega, t, visits):
        return float(np.sin(t) ** 2)

    a = drive(LinearTeacher(), FakeEnv(flat, budget=40), steps=40)["omegas"]
    b = drive(LinearTeacher(), FakeEnv(noisy, budget=40), steps=40, seed=5)["omegas"]
    assert np.array_equal(a, b)


@pytest.mark.parametrize("teacher", [LinearTeacher, ReverseTeacher])
@pytest.mark.parametrize("until", [0.0, 1.5, float("nan")])
def test_until_must_be_a_fraction_of_the_budget(teacher, until):
    with pytest.raises(ValueError, match="until="):
        teacher(until=until)
