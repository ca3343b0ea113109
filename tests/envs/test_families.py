"""Task families: ω as a vector of named parameters, the env's spaces derived from it,
the per-task perturbation, the multi-dimensional Omniglot family's transforms, a user's
own family, and the errors on bad input."""

from __future__ import annotations

import dataclasses
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from tiny_settings import TINY, TINY_SETTINGS

import metacurriculum  # noqa: F401 - registers the ids
from metacurriculum.envs import (
    FAMILIES,
    MetaCurriculumConfig,
    OmniglotMultiFamily,
    Parameter,
    TaskFamily,
    classes_parameter,
    list_families,
    make_family,
    register_family,
)
from metacurriculum.envs.learner_student import learner_student

MULTI, ANALYTIC_MULTI = "MetaCurriculum-OmniglotMulti-v0", "MetaCurriculum-AnalyticMulti-v0"


# -- the families ------------------------------------------------------------------


def test_the_classes_family_is_the_number_of_classes():
    family = make_family(MetaCurriculumConfig(n_max=20, omega_min=2.5))
    assert family.names == ("classes",) and family.dim == 1
    assert family.low.tolist() == [2.5] and family.high.tolist() == [20.0]
    assert family.hardest.tolist() == [20.0] and family.easiest.tolist() == [2.5]
    # Per task: rounded, and a task may have floor(omega_min) classes.
    params = family.task_parameters(2.5, np.array([-1.0, -0.2, 0.2, 1.0]), 0.5)
    assert params[:, 0].tolist() == [2.0, 2.0, 3.0, 3.0]


def test_the_multi_family_names_its_parameters_and_hardest_corner():
    family = make_family(MetaCurriculumConfig(family="omniglot-multi", n_max=5))
    assert family.names == ("classes", "rotation", "noise")
    assert family.hardest.tolist() == [5.0, 60.0, 0.5]
    assert family.easiest.tolist() == [2.0, 0.0, 0.0]
    assert family.unit.tolist() == [1.0, 7.5, 0.0625]
    # Continuous parameters are perturbed in units of their unit, and clipped to the box.
    params = family.task_parameters([3.0, 30.0, 0.0], np.array([[0.0, 1.0, -1.0]]), 0.5)
    assert params.tolist() == [[3.0, 33.75, 0.0]]
    assert family.normalize([3.5, 30.0, 0.25]).tolist() == [0.5, 0.5, 0.5]


def test_difficulty_follows_each_parameters_hardest_end():
    family = TaskFamily(
        [Parameter("a", 0.0, 10.0), Parameter("b", 1.0, 3.0, hardest="low")], n_max=5
    )
    assert family.hardest.tolist() == [10.0, 1.0] and family.easiest.tolist() == [0.0, 3.0]
    assert family.difficulty([10.0, 1.0]).tolist() == [1.0, 1.0]
    assert family.difficulty([0.0, 3.0]).tolist() == [0.0, 0.0]
    assert family.from_difficulty([0.5, 0.25]).tolist() == [5.0, 2.5]
    assert family.n_way(np.zeros((3, 2))).tolist() == [5, 5, 5]  # no classes parameter


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"low": 1.0, "high": 1.0}, "low=1.0 must be below high=1.0"),
        ({"low": 2.0, "high": 1.0}, "must be below"),
        ({"low": 0.0, "high": math.inf}, "must be finite"),
        ({"low": 0.0, "high": 1.0, "hardest": "top"}, "hardest='top'"),
        ({"low": 0.0, "high": 1.0, "unit": 0.0}, "unit=0.0 must be > 0"),
    ],
)
def test_bad_parameters_are_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Parameter("p", **kwargs)


def test_an_unknown_family_lists_the_families():
    with pytest.raises(ValueError, match=r"family='clases' is unknown\. Did you mean 'classes'"):
        MetaCurriculumConfig(family="clases")
    with pytest.raises(ValueError, match="Registered families: classes, omniglot-multi"):
        gym.make("MetaCurriculum-Analytic-v0", family="nope")


def test_omega_of_the_wrong_length_is_an_error():
    family = make_family(MetaCurriculumConfig(family="omniglot-multi"))
    with pytest.raises(ValueError, match=r"ω has 2 value\(s\).*3 parameter\(s\)"):
        family.check([3.0, 10.0])
    with pytest.raises(ValueError, match="must be finite"):
        family.check([3.0, math.nan, 0.0])
    env = gym.make(ANALYTIC_MULTI)
    with pytest.raises(ValueError, match="ω has 1 value"):
        env.reset(seed=0, options={"omega": 5.0})
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"must hold 3 value\(s\), one per parameter"):
        env.step(np.array([0.5], np.float32))
    with pytest.raises(ValueError, match=r"omega_init=5\.0 is a number"):
        gym.make(ANALYTIC_MULTI, omega_init=5.0)


# -- the env's spaces, observation and info -----------------------------------------


def test_the_env_derives_spaces_observation_and_info_from_the_family():
    env = gym.make(ANALYTIC_MULTI, history=4)
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    assert env.observation_space.shape == (4 + 3 + 1,)
    obs, info = env.reset(seed=0, options={"omega": [11.0, 30.0, 0.5]})
    np.testing.assert_allclose(obs[4:7], [0.5, 0.5, 1.0])
    assert info["omega"].tolist() == [11.0, 30.0, 0.5]
    assert info["omega_names"] == ("classes", "rotation", "noise")
    assert info["omega/rotation"] == 30.0 and info["omega_hardest"].tolist() == [20.0, 60.0, 0.5]
    # A change of a quarter of each range; clipped at the top.
    obs, _, _, _, info = env.step(np.array([0.25, -0.25, 0.25], np.float32))
    np.testing.assert_allclose(info["omega"], [15.5, 15.0, 0.5])
    assert env.unwrapped.omega_for_action(np.array([-1, 0, 0], np.float32)).tolist() == [
        2.0,
        15.0,
        0.5,
    ]


def test_discrete_actions_step_each_coordinate_by_its_unit():
    env = gym.make(ANALYTIC_MULTI, action_type="discrete", omega_step=2.0)
    assert env.action_space == gym.spaces.MultiDiscrete([3, 3, 3])
    env.reset(seed=0, options={"omega": [10.0, 30.0, 0.25]})
    _, _, _, _, info = env.step(np.array([2, 0, 1]))
    assert info["omega"].tolist() == [12.0, 15.0, 0.25]
    with pytest.raises(ValueError, match="integer array of 3"):
        env.step(np.array([2.0, 0.0, 1.0]))


def test_the_omega_action_type_is_the_direct_path():
    env = gym.make(ANALYTIC_MULTI, action_type="omega")
    assert env.action_space == gym.spaces.Box(
        np.array([2.0, 0.0, 0.0]), np.array([20.0, 60.0, 0.5]), dtype=np.float64
    )
    env.reset(seed=0)
    target = np.array([7.123456789012345, 12.3456789, 0.1234567890123])
    assert env.action_space.contains(target)
    _, _, _, _, info = env.step(target)
    assert info["omega"].tolist() == target.tolist()  # float64, exactly
    _, _, _, _, info = env.step(np.array([100.0, -5.0, 0.2]))
    assert info["omega"].tolist() == [20.0, 0.0, 0.2]  # clipped to the box
    # One-parameter envs too: a teacher that says ω gets it without float32 round-off.
    scalar = gym.make("MetaCurriculum-Analytic-v0", action_type="omega")
    scalar.reset(seed=0)
    assert scalar.step(np.array([3.3]))[-1]["omega"] == 3.3


@pytest.mark.parametrize("action_type", ["continuous", "discrete", "omega"])
@pytest.mark.parametrize("env_id", [MULTI, ANALYTIC_MULTI])
def test_checkers_pass_on_the_multi_dimensional_ids(env_id, action_type):
    from gymnasium.utils.env_checker import check_env

    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    settings = TINY if env_id == MULTI else {}
    env = gym.make(env_id, action_type=action_type, **settings)
    with pytest.warns(UserWarning) if action_type == "omega" else _nothing():
        check_env(env.unwrapped, skip_render_check=True)  # omega: "not symmetric" advice
    with pytest.warns(UserWarning) if action_type == "omega" else _nothing():
        sb3_checker.check_env(env.unwrapped, warn=True)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# -- the multi-dimensional Omniglot family on real data ------------------------------


def _batch(images: torch.Tensor) -> object:
    from metacurriculum.student.batch import MetaBatch

    tasks, shots = images.shape[:2]
    labels = torch.zeros(tasks, shots, dtype=torch.long)
    mask = torch.ones(tasks, shots, dtype=torch.bool)
    return MetaBatch(images, labels, mask, images, labels, mask, torch.full((tasks,), 2))


def test_no_rotation_and_no_noise_leave_the_images_alone(data_root):
    from metacurriculum.envs.data import load_dataset

    images = load_dataset("omniglot", str(data_root), device="cpu").train[:3, :4]
    family = OmniglotMultiFamily(MetaCurriculumConfig(n_max=5))
    batch = _batch(images.clone())
    same = family.transform(batch, np.array([[5, 0, 0]] * 3, float), torch.Generator())
    torch.testing.assert_close(same.support_x, images, atol=1e-5, rtol=0)
    noisy = family.transform(batch, np.array([[5, 0, 0.5]] * 3, float), torch.Generator())
    assert (noisy.query_x - images).std().item() == pytest.approx(0.5, rel=0.05)
    turned = family.transform(batch, np.array([[5, 60, 0]] * 3, float), torch.Generator())
    changed = (turned.support_x - images).abs().flatten(2).amax(dim=2)
    assert (changed > 0.5).float().mean() > 0.9  # almost every image moved
    # Rotation keeps the ink (within the interpolation's blur).
    ink = images.sum(dim=(2, 3, 4))
    assert torch.allclose(turned.support_x.sum(dim=(2, 3, 4)), ink, rtol=0.25)


def test_the_target_tasks_are_the_hardest_corner(data_root):
    config = MetaCurriculumConfig.from_overrides(
        **TINY_SETTINGS,
        family="omniglot-multi",
        n_max=5,
        data_root=str(data_root),
    )
    student = learner_student(config, seed=0)
    assert student.target_batch.n_way.tolist() == [5, 5]
    # The same classes and images drawn without the transforms: the target's differ.
    plain = student.val_tasks.tasks.sample_tasks(torch.full((2,), 5), torch.Generator())
    assert plain.support_x.shape == student.target_batch.support_x.shape
    noise = (student.target_batch.support_x - student.target_batch.support_x.round()).abs()
    assert noise.mean() > 0.1  # pixels are no longer 0 or 1
    curves = student.evaluate_test(num_tasks=3, seed=0)
    assert curves.n_way.tolist() == [5, 5, 5]


def test_each_parameter_of_the_multi_family_is_drawn_per_task(data_root):
    config = MetaCurriculumConfig.from_overrides(
        **TINY_SETTINGS,
        family="omniglot-multi",
        data_root=str(data_root),
    )
    student = learner_student(config, seed=0)
    params = student.train_tasks.task_parameters([3.4, 30.0, 0.25], 400, torch.Generator())
    assert set(params[:, 0]) == {3.0, 4.0}
    assert abs(np.mean(params[:, 0] == 4.0) - 0.4) < 0.08  # 3.4 mixes its neighbours
    assert 30.0 - 3.75 <= params[:, 1].min() and params[:, 1].max() <= 30.0 + 3.75
    assert params[:, 2].std() > 0


# -- a user's own family -------------------------------------------------------------


class Dimmed(TaskFamily):
    """ω = (classes, dim): the ink of a task's images is scaled by 1 - dim (the README's)."""

    def __init__(self, config):
        super().__init__([classes_parameter(config), Parameter("dim", 0.0, 0.9, unit=0.1)])

    def transform(self, batch, params, generator):  # params: [tasks, d], a row per task
        scale = (1.0 - batch.support_x.new_tensor(params[:, 1])).view(-1, 1, 1, 1, 1)
        return dataclasses.replace(
            batch, support_x=batch.support_x * scale, query_x=batch.query_x * scale
        )


def test_a_user_registers_a_family_in_a_few_lines(data_root):
    register_family("dimmed", Dimmed)
    register_family("dimmed", Dimmed)  # idempotent
    try:
        assert "dimmed" in list_families()
        with pytest.raises(ValueError, match="taken by"):
            register_family("dimmed", OmniglotMultiFamily)
        env = gym.make("MetaCurriculum-Tiny-v0", family="dimmed", data_root=str(data_root))
        assert env.action_space.shape == (2,)
        _, info = env.reset(seed=0)
        assert info["omega_names"] == ("classes", "dim")
        for _ in range(3):
            *_, info = env.step(env.action_space.sample())
        assert np.isfinite(info["target_loss"])
        student = env.unwrapped.student
        assert student.target_batch.support_x.max() <= 0.1 + 1e-6  # dimmed to 1 - 0.9
        # The analytic student takes any family: one skill per coordinate.
        fast = gym.make("MetaCurriculum-Analytic-v0", family="dimmed")
        fast.reset(seed=0)
        assert fast.step(np.array([0.1, 0.1], np.float32))[-1]["omega/dim"] == pytest.approx(0.09)
    finally:
        FAMILIES.pop("dimmed", None)
