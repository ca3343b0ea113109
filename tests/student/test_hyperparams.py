"""MAML's hyper-parameters: one definition, so the env and the student agree on defaults and errors."""

from __future__ import annotations

import dataclasses
import math
import re
import subprocess
import sys

import pytest

from metacurriculum.benchmarks.presets import TABLE_I
from metacurriculum.envs import MetaCurriculumConfig, MetaCurriculumEnv
from metacurriculum.envs.maml_student import student_config
from metacurriculum.student import StudentConfig
from metacurriculum.student.hyperparams import DEFAULTS, HYPERPARAMS, MAMLHyperParams

#: setting -> (bad value, what the message says after ``setting=value``).
BAD_VALUES = {
    "inner_lr_zero": ("inner_lr", 0, "must be a finite number > 0"),
    "inner_lr_negative": ("inner_lr", -0.1, "must be a finite number > 0"),
    "inner_lr_nan": ("inner_lr", math.nan, "must be a finite number > 0"),
    "inner_lr_str": ("inner_lr", "0.1", "must be a real number, not str"),
    "inner_lr_bool": ("inner_lr", True, "must be a real number, not bool"),
    "meta_lr_zero": ("meta_lr", 0.0, "must be a finite number > 0"),
    "meta_lr_inf": ("meta_lr", math.inf, "must be a finite number > 0"),
    "meta_lr_none": ("meta_lr", None, "must be a real number, not NoneType"),
    "inner_steps_negative": ("inner_steps", -1, "must be an integer >= 0"),
    "inner_steps_float": ("inner_steps", 2.0, "must be an integer >= 0"),
    "inner_steps_bool": ("inner_steps", True, "must be an integer >= 0"),
    "first_order_str": ("first_order", "false", "must be True or False"),
    "first_order_int": ("first_order", 1, "must be True or False"),
    "batching_unknown": ("batching", "parallel", "is unknown; use one of"),
    "init_unknown": ("init", "orthogonal", r"is unknown; use one of \('torch'"),
}


@pytest.mark.parametrize(("setting", "value", "says"), BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_env_and_student_reject_the_same_values_naming_the_setting(setting, value, says):
    with pytest.raises(ValueError) as env:
        MetaCurriculumConfig(**{setting: value})
    with pytest.raises(ValueError) as student:
        StudentConfig(n_max=5, **{setting: value})
    assert str(env.value).startswith(f"{setting}={value!r} ")
    assert re.search(says, str(env.value))
    assert str(student.value) == f"StudentConfig.{env.value}"


def test_the_env_rejects_a_zero_inner_lr_by_its_own_name():
    with pytest.raises(ValueError, match=r"^inner_lr=0 must be a finite number > 0") as error:
        MetaCurriculumEnv(student="analytic", inner_lr=0)
    assert "StudentConfig" not in str(error.value)


@pytest.mark.parametrize(
    "values",
    [{"inner_steps": 0}, {"inner_lr": 1, "meta_lr": 1e-5}, {"first_order": True}],
    ids=["no_adaptation", "int_lr", "first_order"],
)
def test_env_and_student_accept_the_same_edge_values(values):
    assert MetaCurriculumConfig(**values).to_dict().items() >= values.items()
    assert dataclasses.asdict(StudentConfig(n_max=5, **values)).items() >= values.items()


def test_env_and_student_defaults_agree_on_every_shared_field():
    env = {f.name: f.default for f in dataclasses.fields(MetaCurriculumConfig)}
    student = {
        f.name: f.default
        for f in dataclasses.fields(StudentConfig)
        if f.default is not dataclasses.MISSING
    }
    shared = env.keys() & student.keys()
    assert set(HYPERPARAMS) <= shared
    assert {name: env[name] for name in shared} == {name: student[name] for name in shared}
    assert {name: student[name] for name in HYPERPARAMS} == dataclasses.asdict(DEFAULTS)


def test_the_defaults_are_table_one_and_the_measured_init():
    assert DEFAULTS == MAMLHyperParams(
        inner_lr=0.1, meta_lr=0.001, inner_steps=5, first_order=False, batching="auto", init="torch"
    )
    # The paper presets spell Table I out; the library's defaults must still be it.
    assert {name: TABLE_I[name] for name in HYPERPARAMS if name in TABLE_I} == {
        "inner_lr": DEFAULTS.inner_lr,
        "meta_lr": DEFAULTS.meta_lr,
        "inner_steps": DEFAULTS.inner_steps,
    }


def test_the_env_passes_every_hyperparameter_to_its_student():
    chosen = {
        "inner_lr": 0.25,
        "meta_lr": 0.02,
        "inner_steps": 2,
        "first_order": True,
        "batching": "vmap",
        "init": "xavier",
    }
    assert chosen.keys() == set(HYPERPARAMS)
    config = MetaCurriculumConfig(n_max=7, hidden=8, depth=2, device="cpu", **chosen)
    student = student_config(config)
    assert {name: getattr(student, name) for name in HYPERPARAMS} == chosen
    assert (student.n_max, student.hidden, student.depth, student.device) == (7, 8, 2, "cpu")


def test_checking_hyperparameters_and_env_settings_does_not_import_torch():
    code = (
        "import sys\n"
        "from metacurriculum.student.hyperparams import DEFAULTS\n"
        "from metacurriculum.envs.config import MetaCurriculumConfig\n"
        "MetaCurriculumConfig(inner_lr=DEFAULTS.inner_lr / 2, init='xavier')\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
