"""Training SB3 teachers as SB3 users expect: evaluation on held-out seeds, a warning for a
policy that learns nothing, checkpoints, TensorBoard, user callbacks. Tiny budgets only:
the learning itself is measured by ``benchmarks/experiments/sb3_teachers.py``."""

from __future__ import annotations

import logging
import sys
import warnings

import pytest

import metacurriculum  # noqa: F401 - registers the envs
from metacurriculum.teachers import train_sb3_teacher
from metacurriculum.teachers.sb3_callbacks import TeacherTrainingWarning, teacher_eval_callback

pytest.importorskip("stable_baselines3")

EASY_FIRST = "MetaCurriculum-AnalyticEasyFirst-v0"
#: 10 env steps an episode, and PPO updates after 32 steps.
SHORT = {"env_kwargs": {"budget": 40}, "n_steps": 32, "batch_size": 32, "n_epochs": 1}


def test_an_untrained_policy_is_evaluated_as_training_goes_and_warns(caplog):
    caplog.set_level(logging.INFO, logger="metacurriculum")
    with pytest.warns(TeacherTrainingWarning, match="may have learnt nothing"):
        model = train_sb3_teacher(
            "ppo", EASY_FIRST, 64, seed=0, eval_freq=32, eval_episodes=2, **SHORT
        )
    assert [steps for steps, _ in model.teacher_eval_curve] == [32, 64]
    assert set(model.teacher_eval_baselines) == {"none", "random"}
    lines = [r.getMessage() for r in caplog.records if "teacher eval at" in r.getMessage()]
    assert len(lines) == 2 and "held-out seeds" in lines[0] and "none" in lines[0]


def test_the_warning_compares_the_last_evaluation_with_every_baseline():
    callback = teacher_eval_callback(lambda: None, seeds=[1])
    callback.baseline_losses = {"none": 3.0, "random": 2.0}
    callback.curve = [(10, 2.5)]
    with pytest.warns(TeacherTrainingWarning, match="no better than random 2.000"):
        callback.check_learned()
    callback.curve.append((20, 1.5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        callback.check_learned()  # beats both: silent


def test_checkpoints_best_model_and_user_callbacks(tmp_path):
    from stable_baselines3.common.callbacks import BaseCallback

    class Count(BaseCallback):
        calls = 0

        def _on_step(self) -> bool:
            Count.calls += 1
            return True

    path = tmp_path / "ppo.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TeacherTrainingWarning)
        train_sb3_teacher(
            "ppo",
            EASY_FIRST,
            64,
            seed=0,
            path=path,
            eval_freq=32,
            eval_episodes=1,
            checkpoint_freq=32,
            callback=Count(),
            **SHORT,
        )
    checkpoints = sorted(p.name for p in (tmp_path / "ppo_checkpoints").iterdir())
    assert checkpoints == ["ppo_32_steps.zip", "ppo_64_steps.zip"]
    assert path.exists() and (tmp_path / "ppo.best.zip").exists()
    assert Count.calls == 64


def test_tensorboard_gets_the_evaluations(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TeacherTrainingWarning)
        train_sb3_teacher("ppo", EASY_FIRST, 32, eval_episodes=1, tensorboard_log=tmp_path, **SHORT)
    (run,) = tmp_path.iterdir()  # SB3 names it PPO_1
    events = EventAccumulator(str(run))
    events.Reload()
    assert {"eval/final_loss", "eval/baseline_none", "eval/return"} <= set(events.Tags()["scalars"])


def test_missing_tensorboard_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(ImportError, match=r"metacurriculum\[tensorboard\]"):
        train_sb3_teacher("ppo", EASY_FIRST, 8, tensorboard_log=tmp_path)
