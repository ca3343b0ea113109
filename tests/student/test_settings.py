"""The learners' settings: defined once, so the env and the student agree on defaults and errors."""

from __future__ import annotations

import dataclasses
import math
import re
import subprocess
import sys

import pytest

from metacurriculum.benchmarks.presets import TABLE_I
from metacurriculum.envs import MetaCurriculumConfig, MetaCurriculumEnv
from metacurriculum.envs.learner_student import student_config
from metacurriculum.student import StudentConfig
from metacurriculum.student.learners import Learner
from metacurriculum.student.settings import (
    LEARNERS,
    LearnerSettings,
    MAMLSettings,
    learner_settings,
    list_learners,
    register_learner,
    setting,
    setting_names,
)

#: setting -> (bad value, what the message says after ``setting=value``).
BAD_VALUES = {
    "inner_lr_zero": ("inner_lr", 0, "must be a finite number > 0"),
    "inner_lr_negative": ("inner_lr", -0.1, "must be a finite number > 0"),
    "inner_lr_nan": ("inner_lr", math.nan, "must be a finite number > 0"),
    "inner_lr_str": ("inner_lr", "0.1", "must be a real number, not str"),
    "inner_lr_bool": ("inner_lr", True, "must be a real number, not bool"),
    "inner_steps_negative": ("inner_steps", -1, "must be an integer >= 0"),
    "inner_steps_float": ("inner_steps", 2.0, "must be an integer >= 0"),
    "inner_steps_bool": ("inner_steps", True, "must be an integer >= 0"),
    "first_order_str": ("first_order", "false", "must be True or False"),
    "first_order_int": ("first_order", 1, "must be True or False"),
}


@pytest.mark.parametrize(("setting", "value", "says"), BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_env_and_student_reject_a_learner_setting_with_the_same_message(setting, value, says):
    with pytest.raises(ValueError) as env:
        MetaCurriculumConfig.from_overrides(**{setting: value})
    with pytest.raises(ValueError) as student:
        StudentConfig(n_max=5, learner_kwargs={setting: value})
    assert str(env.value).startswith(f"{setting}={value!r} ")
    assert re.search(says, str(env.value))
    assert str(student.value) == str(env.value)


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("meta_lr", 0.0, "must be a finite number > 0"),
        ("meta_lr", None, "must be a real number, not NoneType"),
        ("batching", "parallel", "is unknown; use one of"),
        ("init", "orthogonal", r"is unknown; use one of \('torch'"),
    ],
)
def test_env_and_student_reject_the_shared_settings_naming_them(setting, value, says):
    with pytest.raises(ValueError, match=f"^{setting}={re.escape(repr(value))} {says}"):
        MetaCurriculumConfig(**{setting: value})
    with pytest.raises(ValueError, match=f"^StudentConfig.{setting}={re.escape(repr(value))}"):
        StudentConfig(n_max=5, **{setting: value})


def test_the_env_rejects_a_zero_inner_lr_by_its_own_name():
    with pytest.raises(ValueError, match=r"^inner_lr=0 must be a finite number > 0") as error:
        MetaCurriculumEnv(student="analytic", inner_lr=0)
    assert "StudentConfig" not in str(error.value)


@pytest.mark.parametrize("learner", list_learners())
def test_a_setting_the_learner_lacks_names_the_learners_settings(learner):
    with pytest.raises(TypeError) as error:
        MetaCurriculumConfig.from_overrides(learner=learner, inner_lrr=0.1)
    message = str(error.value)
    assert f"learner {learner!r}" in message
    for name in setting_names(learner):
        assert name in message
    with pytest.raises(ValueError, match=f"learner {learner!r} has no setting 'inner_lrr'"):
        StudentConfig(n_max=5, learner=learner, learner_kwargs={"inner_lrr": 0.1})


def test_a_setting_of_another_learner_says_which_learners_have_it():
    with pytest.raises(TypeError, match=r"'inner_lr' \(a setting of learner 'anil'.*'protonet'"):
        MetaCurriculumConfig.from_overrides(learner="protonet", inner_lr=0.1)


def test_an_ids_learner_defaults_apply_only_to_learners_that_have_them():
    tiny = {"learner_defaults": {"inner_steps": 1}}
    assert MetaCurriculumConfig.from_overrides(**tiny).learner_kwargs["inner_steps"] == 1
    assert MetaCurriculumConfig.from_overrides(**tiny, learner="anil").adaptation_steps == 1
    protonet = MetaCurriculumConfig.from_overrides(**tiny, learner="protonet")
    assert protonet.learner_kwargs == {} and protonet.adaptation_steps == 0
    assert "learner_defaults" not in protonet.to_dict()
    # What the user names is stricter than an id's default.
    with pytest.raises(TypeError, match="inner_steps"):
        MetaCurriculumConfig.from_overrides(**tiny, learner="protonet", inner_steps=2)


def test_env_and_student_accept_the_same_edge_values():
    for values in ({"inner_steps": 0}, {"inner_lr": 1}, {"first_order": True}):
        env = MetaCurriculumConfig.from_overrides(**values)
        assert env.learner_kwargs.items() >= values.items()
        assert (
            StudentConfig(n_max=5, learner_kwargs=values).learner_kwargs.items() >= values.items()
        )


def test_every_learner_setting_has_its_default_check_and_help_in_one_place():
    for name in list_learners():
        spec = LEARNERS.lookup(name)
        for field in dataclasses.fields(spec.settings):
            assert field.metadata.get("help"), f"{name}.{field.name} has no help"
            assert field.metadata.get("check"), f"{name}.{field.name} has no check"
        defaults = spec.settings().to_dict()
        assert MetaCurriculumConfig(learner=name).learner_kwargs == defaults
        assert StudentConfig(n_max=5, learner=name).learner_kwargs == defaults


def test_the_defaults_are_table_one():
    assert MAMLSettings() == MAMLSettings(inner_lr=0.1, inner_steps=5, first_order=False)
    for name in ("maml", "fomaml", "anil", "metasgd", "reptile"):
        settings = learner_settings(name)
        assert (settings.inner_lr, settings.inner_steps) == (0.1, 5)  # type: ignore[attr-defined]
    assert learner_settings("fomaml").first_order is True  # type: ignore[attr-defined]
    assert MetaCurriculumConfig().meta_lr == StudentConfig(n_max=5).meta_lr == TABLE_I["meta_lr"]
    # The paper presets spell Table I out; the learners' defaults must still be it.
    defaults = TABLE_I["learner_defaults"]
    assert defaults == {"inner_lr": 0.1, "inner_steps": 5}


def test_the_env_passes_every_setting_to_its_student():
    config = MetaCurriculumConfig.from_overrides(
        n_max=7,
        hidden=8,
        depth=2,
        device="cpu",
        meta_lr=0.02,
        batching="vmap",
        init="xavier",
        learner="metasgd",
        inner_lr=0.25,
        inner_steps=2,
        first_order=True,
    )
    student = student_config(config)
    assert (student.n_max, student.hidden, student.depth, student.device) == (7, 8, 2, "cpu")
    assert (student.meta_lr, student.batching, student.init) == (0.02, "vmap", "xavier")
    assert student.learner == "metasgd"
    assert student.learner_kwargs == {"inner_lr": 0.25, "inner_steps": 2, "first_order": True}


def test_env_settings_from_before_learners_are_upgraded():
    from metacurriculum.envs.config import upgrade_settings

    old = {"student": "maml", "inner_lr": 0.1, "inner_steps": 1, "first_order": True, "hidden": 8}
    upgraded = upgrade_settings(old)
    assert upgraded == {
        "student": "learner",
        "hidden": 8,
        "learner": "maml",
        "learner_kwargs": {"inner_lr": 0.1, "inner_steps": 1, "first_order": True},
    }
    now = MetaCurriculumConfig.from_overrides(hidden=8, learner_defaults={"inner_steps": 1})
    assert upgrade_settings(now.to_dict()) == now.to_dict()
    assert upgrade_settings({"student": "analytic"})["student"] == "analytic"


def test_a_learner_of_your_own_is_a_settings_class_and_a_strategy():
    @dataclasses.dataclass(frozen=True)
    class HalfSettings(LearnerSettings):
        scale: float = setting(0.5, lambda name, value, default: None, "the loss's scale")

    class Half(Learner):
        settings_class = HalfSettings

    register_learner("half-test", Half, summary="a test learner")
    try:
        assert "half-test" in list_learners()
        config = MetaCurriculumConfig.from_overrides(learner="half-test", scale=0.25)
        assert config.learner_kwargs == {"scale": 0.25}
        with pytest.raises(ValueError, match="learner name 'half-test' is taken"):
            register_learner("half-test", Learner, settings=HalfSettings)
    finally:
        del LEARNERS["half-test"]


def test_checking_learner_and_env_settings_does_not_import_torch():
    code = (
        "import sys\n"
        "from metacurriculum.envs.config import MetaCurriculumConfig\n"
        "MetaCurriculumConfig.from_overrides(learner='anil', inner_lr=0.05, init='xavier')\n"
        "MetaCurriculumConfig(learner='protonet')\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
