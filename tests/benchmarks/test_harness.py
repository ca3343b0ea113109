"""The harness: expansion, run folders, resume after interruption, parallel workers."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bench_helpers import ANALYTIC, TINY_ANALYTIC, run_numbers

from metacurriculum.benchmarks import (
    BenchmarkError,
    ConfigMismatchError,
    RunSpec,
    execute_run,
    expand,
    run_benchmark,
    tables,
)
from metacurriculum.benchmarks import benchmark as execution_module
from metacurriculum.benchmarks import executors as executors_module
from metacurriculum.benchmarks.run_folders import target_loss_auc
from metacurriculum.envs import MetaCurriculumEnv


def folders(out: str) -> list[Path]:
    return sorted(p.parent for p in Path(out).glob("*/*/seed_*/done.json"))


def test_expand_is_the_product_of_envs_teachers_and_seeds():
    specs = expand(
        [ANALYTIC, "MetaCurriculum-Tiny-v0"],
        ["none", "adaptive", "random"],
        [0, 1, 2, 3],
        env_kwargs={"budget": 40},
        teacher_kwargs={"adaptive": {"step": 1.0}},
    )
    assert len(specs) == 2 * 3 * 4
    keys = {(s.env_id, s.teacher, s.seed) for s in specs}
    assert len(keys) == len(specs)
    assert all(s.env_kwargs == {"budget": 40} for s in specs)
    assert {s.teacher: dict(s.teacher_kwargs) for s in specs}["adaptive"] == {"step": 1.0}
    assert {s.teacher: dict(s.teacher_kwargs) for s in specs}["none"] == {}
    # Seeds vary slower than teachers: the first runs are seed 0 of every teacher.
    assert [s.seed for s in specs[:3]] == [0, 0, 0]


def test_run_folder_holds_config_steps_evaluation_student_and_done(tmp_path):
    spec = RunSpec(ANALYTIC, "adaptive", 3, env_kwargs=TINY_ANALYTIC, eval_tasks=7, eval_seed=5)
    summary = execute_run(spec, tmp_path)
    folder = tmp_path / ANALYTIC / "adaptive" / "seed_3"
    assert folder == spec.folder(tmp_path)
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["config.json", "done.json", "evaluation.json", "steps.jsonl", "student.pt"]

    config = json.loads((folder / "config.json").read_text())
    assert config["env_id"] == ANALYTIC and config["teacher"] == "adaptive" and config["seed"] == 3
    assert config["env_settings"]["budget"] == 40 and config["env_settings"]["n_max"] == 5
    assert config["eval_tasks"] == 7 and config["eval_seed"] == 5
    assert set(config["versions"]) >= {"metacurriculum", "torch", "gymnasium"}

    steps = [json.loads(line) for line in (folder / "steps.jsonl").read_text().splitlines()]
    assert len(steps) == 40 // 4 + 1  # the reset measurement, then one line per env step
    assert [s["step"] for s in steps] == list(range(11))
    assert steps[-1]["meta_step"] == 40
    for key in ("omega", "n_way", "train_loss", "val_loss", "target_loss", "target_accuracy"):
        assert key in steps[-1]
    # A one-parameter ω stays a number, with no named coordinates (the files as before).
    assert isinstance(steps[-1]["omega"], float)
    assert not any(key.startswith("omega/") for step in steps for key in step)
    assert steps[0]["reward"] is None and isinstance(steps[1]["reward"], float)
    assert len(steps[1]["n_way"]) == 4 * 8  # update_rate x meta_batch tasks

    evaluation = json.loads((folder / "evaluation.json").read_text())
    assert len(evaluation["loss_mean"]) == 3 + 1  # before adaptation, then 3 inner steps
    assert len(evaluation["loss"]) == 7 and len(evaluation["loss"][0]) == 4
    assert summary == json.loads((folder / "done.json").read_text())
    assert summary["final_loss"] == evaluation["loss_mean"][-1]
    assert summary["env_steps"] == 10 and summary["diverged"] is False
    assert summary["final_omega"] == steps[-1]["omega"]
    assert not any(key.startswith("final_omega/") for key in summary)
    target = [(s["meta_step"], s["target_loss"]) for s in steps]
    assert summary["target_loss_auc"] == pytest.approx(target_loss_auc(target))
    assert min(t for _, t in target) < summary["target_loss_auc"] < max(t for _, t in target)
    # The teacher's own statistics: how often its decision, not its floor, set ω.
    own = summary["teacher/own_decision_fraction"]
    assert 0.0 <= own <= 1.0
    assert summary["teacher/up_fraction"] + summary["teacher/down_fraction"] <= 1.0


def test_runs_csv_shows_each_runs_teacher_statistics(tmp_path):
    for teacher in ("adaptive", "none"):
        execute_run(RunSpec(ANALYTIC, teacher, 0, env_kwargs=TINY_ANALYTIC, eval_tasks=3), tmp_path)
    tables.report(tmp_path)
    rows = {r["teacher"]: r for r in csv.DictReader(open(tmp_path / "runs.csv"))}
    assert 0.0 <= float(rows["adaptive"]["teacher/own_decision_fraction"]) <= 1.0
    assert rows["none"]["teacher/own_decision_fraction"] == ""  # a teacher with no summary()


def test_target_loss_auc_is_the_mean_target_loss_over_training():
    assert target_loss_auc([(0, 3.0), (4, 1.0), (8, 1.0)]) == pytest.approx((8 + 4) / 8)
    assert math.isnan(target_loss_auc([(0, 3.0), (4, float("nan"))]))


def test_finished_runs_are_skipped(tiny_config, monkeypatch):
    config = tiny_config()
    run_benchmark(config)
    done = {p: (p / "done.json").stat().st_mtime_ns for p in folders(config.out)}
    assert len(done) == 6
    calls = []
    monkeypatch.setattr(executors_module, "execute_run", lambda *a, **k: calls.append(a))
    run_benchmark(config)
    assert calls == []
    assert {p: (p / "done.json").stat().st_mtime_ns for p in folders(config.out)} == done


def test_changed_settings_are_refused_then_recomputed_with_overwrite(tiny_config):
    run_benchmark(tiny_config(seeds=(0,)))
    changed = tiny_config(seeds=(0,), eval_tasks=5)
    with pytest.raises(
        ConfigMismatchError, match=r"eval_tasks.*stored 12, requested 5(.|\n)*--overwrite"
    ):
        run_benchmark(changed)
    run_benchmark(tiny_config(seeds=(0,), eval_tasks=5, overwrite=True))
    for folder in folders(changed.out):
        assert json.loads((folder / "config.json").read_text())["eval_tasks"] == 5
        assert len(json.loads((folder / "evaluation.json").read_text())["loss"]) == 5


def test_runs_from_before_task_families_are_still_finished(tiny_config, monkeypatch):
    """A config.json without ``family`` (written before families) is the default family's;
    another family is another run."""
    from metacurriculum.benchmarks.run_folders import config_digest

    run_benchmark(tiny_config(seeds=(0,)))
    for folder in folders(tiny_config().out):
        config = json.loads((folder / "config.json").read_text())
        del config["env_settings"]["family"]
        (folder / "config.json").write_text(json.dumps(config))
        done = json.loads((folder / "done.json").read_text())
        (folder / "done.json").write_text(
            json.dumps({**done, "config_digest": config_digest(config)})
        )
    calls = []
    monkeypatch.setattr(executors_module, "execute_run", lambda *a, **k: calls.append(a))
    run_benchmark(tiny_config(seeds=(0,)))
    assert calls == []
    other = tiny_config(seeds=(0,), env_kwargs={**TINY_ANALYTIC, "family": "omniglot-multi"})
    with pytest.raises(ConfigMismatchError, match=r"env_settings.family: stored None"):
        run_benchmark(other)


def test_runs_from_before_learners_are_still_finished(tiny_config, monkeypatch):
    """A config.json with MAML's settings as env settings of their own (written before the
    learner interface) is the ``maml`` learner's run with those settings."""
    from metacurriculum.benchmarks.run_folders import config_digest

    run_benchmark(tiny_config(seeds=(0,)))
    for folder in folders(tiny_config().out):
        config = json.loads((folder / "config.json").read_text())
        settings = config["env_settings"]
        assert settings.pop("learner") == "maml"
        settings.update(settings.pop("learner_kwargs"))  # inner_lr, inner_steps, first_order
        (folder / "config.json").write_text(json.dumps(config))
        done = json.loads((folder / "done.json").read_text())
        (folder / "done.json").write_text(
            json.dumps({**done, "config_digest": config_digest(config)})
        )
    calls = []
    monkeypatch.setattr(executors_module, "execute_run", lambda *a, **k: calls.append(a))
    run_benchmark(tiny_config(seeds=(0,)))
    assert calls == []
    other = tiny_config(seeds=(0,), env_kwargs={**TINY_ANALYTIC, "inner_steps": 4})
    with pytest.raises(ConfigMismatchError, match=r"env_settings.learner_kwargs"):
        run_benchmark(other)


def test_where_the_data_comes_from_does_not_change_a_run(tiny_config, monkeypatch):
    run_benchmark(tiny_config(seeds=(0,)))
    calls = []
    monkeypatch.setattr(executors_module, "execute_run", lambda *a, **k: calls.append(a))
    moved = {**tiny_config().env_kwargs, "download": True, "data_root": "/elsewhere"}
    run_benchmark(tiny_config(seeds=(0,), env_kwargs=moved))
    assert calls == []


def test_interrupted_run_is_redone_with_identical_results(tiny_config, monkeypatch, tmp_path):
    clean = tiny_config(out=str(tmp_path / "clean"))
    run_benchmark(clean)
    broken = tiny_config(out=str(tmp_path / "broken"))
    step = MetaCurriculumEnv.step
    calls = {"n": 0}

    def failing_step(self, action):
        calls["n"] += 1
        if calls["n"] == 15:  # midway through the second run
            raise RuntimeError("injected failure")
        return step(self, action)

    monkeypatch.setattr(MetaCurriculumEnv, "step", failing_step)
    with pytest.raises(BenchmarkError, match="1 of 6 runs failed"):
        run_benchmark(broken)
    monkeypatch.setattr(MetaCurriculumEnv, "step", step)
    failed = Path(broken.out) / ANALYTIC / "random" / "seed_0"
    assert not (failed / "done.json").exists() and (failed / "steps.jsonl").exists()
    assert "injected failure" in (failed / "error.txt").read_text()
    run_benchmark(broken)
    assert not (failed / "error.txt").exists()
    for a, b in zip(folders(clean.out), folders(broken.out), strict=True):
        assert run_numbers(a) == run_numbers(b)


def test_killed_process_leaves_nothing_trusted_and_rerun_matches(tmp_path):
    """kill -9 in the middle of a run, rerun the same command, compare with a clean run."""
    here = Path(__file__).parent
    command = [sys.executable, "-m", "metacurriculum.cli", "bench", "--env", ANALYTIC]
    command += ["--teachers", "slow-random", "--seeds", "1", "--workers", "1", "--no-plots"]
    command += ["--import", "slow_teacher", "--env-kwargs", "budget=120,n_max=5"]
    command += ["--eval-tasks", "8"]
    env = {**os.environ, "PYTHONPATH": f"{here}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    killed = tmp_path / "killed"
    process = subprocess.Popen([*command, "--out", str(killed)], env=env, cwd=tmp_path)
    steps = killed / ANALYTIC / "slow-random" / "seed_0" / "steps.jsonl"
    deadline = time.monotonic() + 60
    while not (steps.exists() and len(steps.read_text().splitlines()) >= 5):
        assert process.poll() is None and time.monotonic() < deadline, "the run ended too soon"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (steps.parent / "done.json").exists()

    subprocess.run([*command, "--out", str(killed)], env=env, check=True)  # the same command
    fast = ["--teacher-kwargs", "slow-random:delay=0", "--out", str(tmp_path / "clean")]
    subprocess.run([*command, *fast], env=env, check=True)
    assert run_numbers(steps.parent) == run_numbers(
        tmp_path / "clean" / ANALYTIC / "slow-random" / "seed_0"
    )


def test_parallel_spawned_workers_give_the_serial_results(tiny_config, tmp_path):
    serial = tiny_config(out=str(tmp_path / "serial"), seeds=(0, 1))
    parallel = tiny_config(out=str(tmp_path / "parallel"), seeds=(0, 1), workers=2)
    run_benchmark(serial)
    run_benchmark(parallel)
    pairs = list(zip(folders(serial.out), folders(parallel.out), strict=True))
    assert len(pairs) == 6
    for a, b in pairs:
        assert run_numbers(a) == run_numbers(b)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        (
            {"envs": ("MetaCurriculum-Analytc-v0",)},
            "unknown env id .*Did you mean 'MetaCurriculum-Analytic-v0'",
        ),
        ({"teachers": ("adaptve",)}, "unknown teacher 'adaptve'. Did you mean 'adaptive'"),
        ({"env_kwargs": {"budgett": 3}}, "did you mean 'budget'"),
        ({"env_kwargs": {"budget": 0}}, "budget=0"),
        ({"teacher_kwargs": {"adaptive": {"stepp": 1}}}, "teacher 'adaptive' rejects kwargs"),
        ({"teacher_kwargs": {"static": {"threshold": 1}}}, "not among the teachers"),
        ({"eval_tasks": 0}, "eval_tasks=0"),
        ({"imports": ("no_such_module_here",)}, "--import 'no_such_module_here' failed"),
        ({"workers": 0}, "--workers 0 must be >= 1"),
    ],
    ids=[
        "env",
        "teacher",
        "env-kwarg",
        "env-value",
        "teacher-kwarg",
        "kwargs-teacher",
        "eval",
        "import",
        "workers",
    ],
)
def test_bad_names_and_settings_fail_before_running(tiny_config, fields, match):
    config = tiny_config(**fields)
    with pytest.raises(BenchmarkError, match=match):
        run_benchmark(config)
    assert not Path(config.out).exists()


def test_a_resumed_run_is_computed_with_the_threads_of_the_first_attempt(tiny_config, monkeypatch):
    """Fewer runs left than workers once ran them in this process on every core's threads."""
    monkeypatch.setattr(execution_module, "available_cores", lambda: 4)
    config = tiny_config(teachers=("none", "random"), seeds=(0,), workers=2)
    assert execution_module.schedule(config, pending=1) == (1, 2)
    specs = run_benchmark(config)  # two spawned workers, 4 // 2 threads each
    tables.report(config.out)
    first = {n: (Path(config.out) / n).read_bytes() for n in ("runs.csv", "results.csv")}
    redo = specs[1].folder(config.out)
    (redo / "done.json").unlink()  # as if interrupted
    run_benchmark(config)  # one run left: in this process
    threads = [json.loads((s.folder(config.out) / "config.json").read_text()) for s in specs]
    assert [c["threads"] for c in threads] == [2, 2]
    tables.report(config.out)
    assert first == {n: (Path(config.out) / n).read_bytes() for n in first}
