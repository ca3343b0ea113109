"""Two real ``bench`` commands on one output folder: the second is refused at once.

The first command holds the folder's lock from planning to its results; a second one
(a 1-3 s later retry, another terminal) fails in seconds, naming the first, instead of
writing half of the first's runs and a results table of whichever finished last. The
lock dies with its holder: after ``kill -9`` the same command goes ahead.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench_helpers import ANALYTIC

from metacurriculum.benchmarks.run_folders import unfinished_reason

HERE = Path(__file__).parent
#: Four runs of about 2 s (40 env steps of 0.05 s).
COMMAND = [sys.executable, "-m", "metacurriculum.cli", "bench", "--env", ANALYTIC]
COMMAND += ["--teachers", "none,slow-random", "--seeds", "2", "--no-plots", "--threads", "1"]
COMMAND += ["--import", "slow_teacher", "--env-kwargs", "budget=160,n_max=5", "--eval-tasks", "8"]
ENV = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def start(out: Path, workers: int) -> subprocess.Popen:
    return subprocess.Popen(
        [*COMMAND, "--out", str(out), "--workers", str(workers)],
        env=ENV,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for_steps(process: subprocess.Popen, out: Path) -> None:
    """Until a run of ``process`` has logged a step (it holds the lock by then)."""
    deadline = time.monotonic() + 90
    while not list(out.glob("*/*/seed_*/steps.jsonl")):
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "the first command never started a run"
        time.sleep(0.05)


def test_a_second_bench_on_the_same_folder_is_refused_and_the_first_finishes(tmp_path):
    out = tmp_path / "c"
    first = start(out, workers=1)
    try:
        wait_for_steps(first, out)
        second = subprocess.run(
            [*COMMAND, "--out", str(out), "--workers", "2"],
            env=ENV,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert first.wait(timeout=180) == 0, first.stderr.read()
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert second.returncode == 1, second.stderr
    assert f"`metacurriculum bench` (pid {first.pid}, started" in second.stderr
    assert f"is writing to {out}" in second.stderr and "pass another --out" in second.stderr
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert {row["teacher"]: row["seeds"] for row in rows} == {"none": "2", "slow-random": "2"}
    for folder in out.glob("*/*/seed_*"):
        assert unfinished_reason(folder) is None, folder


def test_the_lock_of_a_killed_command_does_not_block_the_next(tmp_path):
    out = tmp_path / "c"
    first = start(out, workers=1)
    try:
        wait_for_steps(first, out)
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the command and its workers, as kill -9
        first.wait(timeout=30)
    again = subprocess.run(
        [*COMMAND, "--out", str(out), "--workers", "1"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert again.returncode == 0, again.stderr
    assert len([f for f in out.glob("*/*/seed_*") if unfinished_reason(f) is None]) == 4
