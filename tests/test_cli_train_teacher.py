"""``metacurriculum train-teacher``: what SB3 users expect, end to end on a tiny budget."""

from __future__ import annotations

import pytest

from metacurriculum.cli import main

pytest.importorskip("stable_baselines3")


def test_train_teacher_takes_sb3s_options(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    out = tmp_path / "ppo.zip"
    argv = ["train-teacher", "--algo", "ppo", "--env", "MetaCurriculum-AnalyticEasyFirst-v0"]
    argv += ["--env-kwargs", "budget=40", "--algo-kwargs", "n_steps=16,batch_size=32"]
    argv += ["--timesteps", "64", "--n-envs", "2", "--eval-freq", "32", "--eval-episodes", "1"]
    argv += ["--checkpoint-freq", "32", "--tensorboard-log", str(tmp_path / "tb")]
    argv += ["--out", str(out), "--no-progress"]
    with pytest.warns(UserWarning, match="may have learnt nothing"):
        assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "evaluation (env steps: final loss): 32: " in printed and ", 64: " in printed
    assert "--env-kwargs reward=target_logit,budget=40" in printed
    assert out.exists() and (tmp_path / "ppo.best.zip").exists()
    assert sorted(p.name for p in (tmp_path / "ppo_checkpoints").iterdir()) == [
        "ppo_32_steps.zip",
        "ppo_64_steps.zip",
    ]
    assert any((tmp_path / "tb").rglob("events.out.tfevents.*"))
