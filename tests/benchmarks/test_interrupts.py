"""Ctrl-C and SIGTERM on a real ``metacurriculum bench`` process with spawned workers.

Each test starts the command in its own session (so its process group is its own),
waits until the workers are inside runs, sends the signals, and checks the exit status,
how long the exit took, that no process of the group is left, and the run folders.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bench_helpers import ANALYTIC

from metacurriculum.benchmarks.run_folders import unfinished_reason

HERE = Path(__file__).parent
#: Three runs of ~2 s each (40 env steps of 0.05 s) on two workers.
COMMAND = [sys.executable, "-m", "metacurriculum.cli", "bench", "--env", ANALYTIC]
COMMAND += ["--teachers", "slow-random", "--seeds", "3", "--no-plots"]
COMMAND += ["--import", "slow_teacher", "--env-kwargs", "budget=160,n_max=5", "--eval-tasks", "8"]
#: Seconds the command may take to exit after the first signal.
EXIT_WITHIN = 3.0


def start(out: Path, workers: int = 2) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen(
        [*COMMAND, "--out", str(out), "--workers", str(workers)],
        env=env,
        start_new_session=True,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_folders(out: Path) -> list[Path]:
    return sorted((out / ANALYTIC / "slow-random").glob("seed_*"))


def wait_until_running(process: subprocess.Popen, out: Path, workers: int = 2) -> None:
    """Until ``workers`` runs have logged a few steps each."""
    deadline = time.monotonic() + 90
    while True:
        logs = [folder / "steps.jsonl" for folder in run_folders(out)]
        lines = [len(p.read_text().splitlines()) for p in logs if p.exists()]
        if sum(n >= 3 for n in lines) >= workers:
            return
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "the workers never started their runs"
        time.sleep(0.05)


def group_members(pgid: int) -> list[str]:
    """The live (not zombie) processes of the process group ``pgid``, from ``/proc``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # exited meanwhile
            continue
        state, _, group = text.rpartition(")")[2].split()[:3]
        if int(group) == pgid and state != "Z":
            members.append(text)
    return members


def group_gone(pgid: int, within: float) -> bool:
    """Whether every process of the group has exited within ``within`` seconds."""
    deadline = time.monotonic() + within
    while group_members(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize(
    ("signals", "to_group", "status", "workers"),
    [
        ([signal.SIGINT], False, 130, 2),
        ([signal.SIGINT, signal.SIGINT], True, 130, 2),  # a terminal's Ctrl-C, twice
        ([signal.SIGTERM], False, 143, 2),  # what schedulers and Ray send
        ([signal.SIGTERM], False, 143, 1),  # runs in the command's own process
    ],
    ids=["ctrl-c", "ctrl-c-twice-to-the-group", "sigterm", "sigterm-one-process"],
)
def test_signal_stops_every_worker_within_seconds(tmp_path, signals, to_group, status, workers):
    process = start(tmp_path, workers)
    try:
        wait_until_running(process, tmp_path, workers)
        sent = time.monotonic()
        for i, signum in enumerate(signals):
            if i:
                time.sleep(0.3)
            (os.killpg if to_group else os.kill)(process.pid, signum)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("the command still runs 30 s after the signal")
        took = time.monotonic() - sent
        gone = group_gone(process.pid, within=2.0)
        left = group_members(process.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):  # a failed test leaves nothing behind
            os.killpg(process.pid, signal.SIGKILL)
    stderr = process.stderr.read()
    assert process.returncode == status, stderr
    assert took < EXIT_WITHIN + 0.3 * (len(signals) - 1), f"exit took {took:.1f} s"
    assert gone, f"processes outlived the command: {left}"
    assert "interrupted" in stderr and "rerun the same command" in stderr
    assert "Traceback" not in stderr, stderr
    folders = run_folders(tmp_path)
    cut = [f for f in folders if unfinished_reason(f) is not None]
    assert cut, "the signal came while runs were in progress"
    assert all(not (f / "done.json").exists() for f in cut)
    logs = {f: (f / "steps.jsonl").stat().st_mtime_ns for f in folders}
    time.sleep(0.5)  # nothing writes after the exit
    assert logs == {f: (f / "steps.jsonl").stat().st_mtime_ns for f in folders}


def test_rerun_after_ctrl_c_finishes_with_the_results_of_an_uncut_benchmark(tmp_path):
    cut, clean = tmp_path / "cut", tmp_path / "clean"
    process = start(cut)
    try:
        wait_until_running(process, cut)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 130
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    finished = {
        f: (f / "done.json").read_bytes() for f in run_folders(cut) if not unfinished_reason(f)
    }

    for out in (cut, clean):
        rerun = start(out)
        _, stderr = rerun.communicate(timeout=300)
        assert rerun.returncode == 0, stderr
    assert finished == {f: (f / "done.json").read_bytes() for f in finished}  # kept as they were
    for name in ("results.csv", "runs.csv"):
        assert (cut / name).read_bytes() == (clean / name).read_bytes(), name
    for a, b in zip(run_folders(cut), run_folders(clean), strict=True):
        numbers = [json.loads((f / "evaluation.json").read_text()) for f in (a, b)]
        assert numbers[0] == numbers[1]
