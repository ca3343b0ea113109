"""Every registered teacher on the registered envs, and their mechanics on the analytic
student (built so that a curriculum pays: not evidence for the paper's claim)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from fakes import ENV_IDS, TEACHER_NAMES, drive

import metacurriculum  # noqa: F401 - registers the envs
from metacurriculum.teachers import make_teacher

ANALYTIC = "MetaCurriculum-Analytic-v0"


@pytest.mark.parametrize("action_type", ["continuous", "discrete"])
@pytest.mark.parametrize("name", TEACHER_NAMES)
def test_every_teacher_drives_the_analytic_env(name, action_type, teacher_for):
    env = gym.make(ANALYTIC, action_type=action_type)
    run = drive(teacher_for(name, env), env, steps=12)
    assert len(run["omegas"]) == 12
    assert np.all((run["omegas"] >= 1.0) & (run["omegas"] <= 20.0))


@pytest.mark.parametrize("name", TEACHER_NAMES)
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_every_teacher_drives_every_registered_env(env_id, name, tiny_envs, teacher_for):
    """MAML-backed ids need the student and the data at $METACURRICULUM_DATA. On a vector
    ω, a teacher made for one coordinate refuses at reset, naming the ones that can."""
    env = tiny_envs(env_id)
    teacher = teacher_for(name, env)
    if env.unwrapped.family.dim > 1 and not getattr(teacher, "vector", False):
        with pytest.raises(ValueError, match=r"one-parameter ω.*adr, alp-gmm"):
            drive(teacher, env, steps=10)
        return
    run = drive(teacher, env, steps=10)
    assert len(run["omegas"]) == 3  # max_episode_steps
    assert np.isfinite(run["info"]["target_loss"])


@pytest.mark.parametrize("name", TEACHER_NAMES)
def test_same_seed_same_curriculum(name, teacher_for):
    env = gym.make(ANALYTIC)
    teacher = teacher_for(name, env)
    a = drive(teacher, env, steps=40, seed=11)["omegas"]
    b = drive(teacher, env, steps=40, seed=11)["omegas"]
    assert np.array_equal(a, b)


def final_target_loss(name: str, seed: int) -> float:
    env = gym.make(ANALYTIC)
    run = drive(make_teacher(name), env, steps=10**6, seed=seed)
    assert run["info"]["meta_step"] == env.unwrapped.config.budget
    return run["info"]["target_loss_normalized"]


@pytest.mark.parametrize("seed", [0, 1, 2], ids=lambda s: f"seed{s}")
@pytest.mark.parametrize("name", ["adaptive", "static", "tscl-window"])
def test_teachers_raise_omega_on_a_student_made_to_reward_a_curriculum(name, seed):
    """The teachers' mechanics, a whole episode each, on the analytic student, whose gain
    peaks one class above its skill by construction: a teacher that raises ω as the
    student improves must end below plain training on the hardest tasks. This is not the
    paper's claim (a curriculum helps a real MAML student): the benchmarks test that."""
    none, taught = final_target_loss("none", seed), final_target_loss(name, seed)
    assert taught < none - 0.05, f"{name}: {taught:.3f}, none: {none:.3f}"
