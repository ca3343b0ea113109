"""The teacher protocol, the OmegaTeacher base, adapters and the registry."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import TEACHER_NAMES, FakeEnv, drive

from metacurriculum.teachers import (
    TEACHERS,
    FunctionTeacher,
    OmegaTeacher,
    SB3Teacher,
    Teacher,
    as_teacher,
    list_teachers,
    make_teacher,
    register_teacher,
    teacher_summary,
)


@pytest.fixture
def scratch_registry():
    """Remove whatever a test registers."""
    before = dict(TEACHERS)
    yield
    TEACHERS.clear()
    TEACHERS.update(before)


def flat(omega, t, visits):
    return 0.5


def test_every_name_is_registered():
    assert set(TEACHER_NAMES) >= {
        "none",
        "random",
        "static",
        "adaptive",
        "tscl-online",
        "tscl-naive",
        "tscl-window",
        "tscl-sampling",
        "sb3",
        "linear",
        "reverse",
        "adaptive-paper",
        "alp",
        "target-bandit",
        "mixture",
    }
    assert list_teachers() == sorted(TEACHERS)


@pytest.mark.parametrize("name", [n for n in TEACHER_NAMES if n != "sb3"])
def test_registered_teachers_satisfy_the_protocol(name):
    assert isinstance(make_teacher(name), Teacher)


def test_readme_example_custom_omega_teacher(scratch_registry):
    class HalfwayTeacher(OmegaTeacher):
        def choose_omega(self, observation, info):
            return (info["omega_min"] + info["omega_max"]) / 2

    register_teacher("halfway", HalfwayTeacher)
    run = drive(make_teacher("halfway"), FakeEnv(flat, n_max=5), steps=3)
    assert np.allclose(run["omegas"], 3.0)


def test_register_as_decorator_and_twice_with_the_same_factory(scratch_registry):
    @register_teacher("mine")
    class Mine(OmegaTeacher):
        def choose_omega(self, observation, info):
            return info["omega_max"]

    assert register_teacher("mine", Mine) is Mine
    assert isinstance(make_teacher("mine"), Mine)


def test_register_a_different_factory_under_a_taken_name_fails(scratch_registry):
    with pytest.raises(ValueError, match="'static' is taken"):
        register_teacher("static", lambda: None)
    with pytest.raises(ValueError, match="non-empty string"):
        register_teacher("", OmegaTeacher)


def test_unknown_name_lists_the_registered_names():
    with pytest.raises(ValueError, match=r"unknown teacher 'adaptiv'.*'adaptive'.*tscl-window"):
        make_teacher("adaptiv")


def test_function_teacher_and_as_teacher():
    def up(observation, info):
        return np.array([0.25], dtype=np.float32)

    teacher = as_teacher(up)
    assert isinstance(teacher, FunctionTeacher)
    run = drive(teacher, FakeEnv(flat, n_max=5), steps=4)
    assert run["omegas"].tolist() == [2.0, 3.0, 4.0, 5.0]


def test_as_teacher_returns_teachers_unchanged_and_wraps_predictors():
    teacher = make_teacher("static")
    assert as_teacher(teacher) is teacher

    class Predictor:
        def predict(self, observation, deterministic=True):
            return np.int64(2), None

    wrapped = as_teacher(Predictor())
    assert isinstance(wrapped, SB3Teacher)
    run = drive(wrapped, FakeEnv(flat, n_max=5, action_type="discrete"), steps=2)
    assert run["omegas"].tolist() == [2.0, 3.0]
    assert run["actions"] == [2, 2]


def test_as_teacher_rejects_other_objects():
    with pytest.raises(TypeError, match="not a teacher"):
        as_teacher(42)


def test_act_before_reset_is_an_error():
    with pytest.raises(RuntimeError, match=r"reset\(observation_space, action_space\)"):
        make_teacher("none").act(np.zeros(6), {})


def test_missing_info_keys_are_named():
    env = FakeEnv(flat)
    teacher = make_teacher("none")
    obs, _ = env.reset(seed=0)
    teacher.reset(env.observation_space, env.action_space, seed=0)
    with pytest.raises(KeyError, match="val_loss_normalized"):
        teacher.act(obs, {"omega": 1.0, "omega_min": 1.0, "omega_max": 5.0})


def test_unsupported_action_space_is_an_error():
    from gymnasium import spaces

    with pytest.raises(TypeError, match="action_type='continuous', 'discrete' or 'omega'"):
        make_teacher("none").reset(spaces.Box(0, 1, (6,)), spaces.Tuple([spaces.Discrete(3)]))


def test_choose_omega_must_be_implemented():
    env = FakeEnv(flat)
    teacher = OmegaTeacher()
    obs, info = env.reset(seed=0)
    teacher.reset(env.observation_space, env.action_space)
    with pytest.raises(NotImplementedError, match="choose_omega"):
        teacher.act(obs, info)


def test_teacher_summary_is_an_optional_hook():
    assert teacher_summary(as_teacher(lambda observation, info: [0.0])) == {}
    assert teacher_summary(make_teacher("none")) == {}  # OmegaTeacher's default

    class Reports(OmegaTeacher):
        def summary(self):
            return {"teacher/answer": 42}

    assert teacher_summary(Reports()) == {"teacher/answer": 42.0}

    class Wrong(OmegaTeacher):
        def summary(self):
            return [("teacher/answer", 42)]

    with pytest.raises(TypeError, match=r"Wrong.summary\(\) returned"):
        teacher_summary(Wrong())
