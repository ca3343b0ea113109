"""The phases of a run without steps (its data loading, its final evaluation) show up.

On the tiny MAML env two runs once took 47 s of wall time while their lines said 7 s
and 3 s: loading Omniglot and the final evaluation said nothing. Without a terminal the
progress is log lines; these tests read them from real commands.
"""

from __future__ import annotations

import logging
import subprocess
import sys

from bench_helpers import ANALYTIC, TINY_ANALYTIC

from metacurriculum.benchmarks import run_benchmark

TINY = "MetaCurriculum-Tiny-v0"
SMALL = {"budget": 4, "update_rate": 2, "val_tasks": 1, "target_tasks": 1}


def index(lines: list[str], text: str) -> int:
    found = [i for i, line in enumerate(lines) if text in line]
    assert found, f"no line says {text!r}:\n" + "\n".join(lines)
    return found[0]


def test_each_run_says_when_it_loads_data_and_evaluates(tmp_path):
    """Two worker processes (their messages come through the pipe) on the analytic env:
    the messages are those of every env, without Omniglot's seconds of loading."""
    args = ["bench", "--env", ANALYTIC, "--teachers", "none,random", "--seeds", "1"]
    args += ["--env-kwargs", ",".join(f"{k}={v}" for k, v in TINY_ANALYTIC.items())]
    args += ["--eval-tasks", "4", "--workers", "2", "--threads", "1", "--no-plots"]
    args += ["--out", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-m", "metacurriculum.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    checked = index(lines, f"checking the student and loading the data of {ANALYTIC}")
    assert checked < index(lines, "2 runs, 0 finished before, 2 to do")
    for teacher in ("none", "random"):
        name = f"{ANALYTIC}/{teacher}/seed_0"
        loading = index(lines, f"{name}: loading the data and building the env")
        evaluating = index(lines, f"{name}: evaluating on 4 unseen tasks")
        finished = index(lines, f"] {name}: final loss")
        assert loading < evaluating < finished
        assert "s training, " in lines[finished] and "s evaluation)" in lines[finished]


def test_a_population_says_the_same(tiny_config, caplog):
    config = tiny_config(
        envs=(TINY,), teachers=("none", "random"), seeds=(0,), executor="population"
    )
    config.env_kwargs = {**SMALL, "device": "cpu"}
    config.eval_tasks = 4
    with caplog.at_level(logging.INFO, logger="metacurriculum"):
        run_benchmark(config, progress=False)
    lines = caplog.text.splitlines()
    building = index(lines, f"a population of 2 runs of {TINY}: loading the data")
    for teacher in ("none", "random"):
        name = f"{TINY}/{teacher}/seed_0"
        assert building < index(lines, f"{name}: evaluating on 4 unseen tasks")
        assert index(lines, f"{name}: evaluating") < index(lines, f"] {name}: final loss")
