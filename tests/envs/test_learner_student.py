"""The real student's settings that reach past the network: protocol, evaluation queries, init."""

from __future__ import annotations

import pytest
import torch

from metacurriculum.envs.meta_env import make_env


@pytest.mark.parametrize(("protocol", "test_classes"), [("maml", 1692), ("background", 659)])
def test_the_protocol_setting_picks_the_test_characters(data_root, protocol, test_classes):
    env = make_env("MetaCurriculum-Tiny-v0", omniglot_protocol=protocol, device="cpu")
    env.reset(seed=0)
    assert env.unwrapped.student.test_tasks.images.shape[0] == test_classes
    env.close()


def test_evaluation_queries_are_independent_of_training_queries(data_root):
    env = make_env("MetaCurriculum-Tiny-v0", q_query=2, eval_q_query=7, device="cpu")
    env.reset(seed=0)
    student = env.unwrapped.student
    assert student.train_tasks.q_query == 2 and student.val_tasks.q_query == 2
    assert student.test_tasks.q_query == 7
    batch = student.test_tasks.sample(5.0, 1, torch.Generator())
    assert batch.query_x.shape[1] == 5 * 7  # n_max classes x eval_q_query
    curves = env.unwrapped.evaluate_test(num_tasks=3, seed=1)
    assert curves.accuracy.shape == (3, 2)  # before and after the tiny env's one inner step
    env.close()


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"omniglot_protocol": "rotated"}, "omniglot_protocol='rotated' is not one of"),
        ({"eval_q_query": 0}, "eval_q_query=0 must be an integer >= 1"),
        ({"eval_q_query": 20}, "k_shot \\+ q_query = 1 \\+ 20 exceeds the 20 images"),
        ({"init": "orthogonal"}, "init='orthogonal' is unknown"),
    ],
)
def test_bad_student_settings_fail_at_construction(data_root, setting, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make_env("MetaCurriculum-Tiny-v0", device="cpu", **setting)
