"""Measure how long ``bench`` takes to exit after SIGTERM, and what it leaves behind.

For each executor (``processes`` on two workers, ``ray`` on a local Ray started by the
command) and each target (the command alone, or its whole process group as Slurm
signals a job), start a benchmark of two slow analytic runs, wait until both runs are
logging steps, send SIGTERM, and report: the exit status, the seconds from the signal to
the command's exit and to the last process of its session, and any temporary run
folder left. The README's numbers come from::

    python benchmarks/experiments/sigterm.py --trials 3

Not a test: it takes about a minute per trial, and its numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
ANALYTIC = "MetaCurriculum-Analytic-v0"


def session_members(sid: int) -> list[int]:
    """The live processes of the session ``sid`` (the command and all it started)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def trial(executor: str, target: str) -> dict[str, float | int]:
    temp = Path(tempfile.mkdtemp(prefix="ms", dir="/tmp"))  # short: Ray's socket paths
    out = temp / "runs"
    command = [sys.executable, "-m", "metacurriculum.cli", "bench", "--env", ANALYTIC]
    command += ["--teachers", "slow-random", "--seeds", "2", "--no-plots", "--eval-tasks", "8"]
    command += ["--import", "slow_teacher", "--env-kwargs", "budget=400,n_max=5"]
    command += ["--executor", executor, "--workers", "2", "--threads", "1", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(HERE), "TMPDIR": str(temp)}
    env.pop("RAY_ADDRESS", None)
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        pattern = (
            "metacurriculum-*/*/*/seed_*/steps.jsonl"
            if executor == "ray"
            else "runs/*/*/seed_*/steps.jsonl"
        )
        while len(list(temp.glob(pattern))) < 2:
            if process.poll() is not None:
                raise RuntimeError(f"the command exited early ({process.returncode})")
            time.sleep(0.05)
        time.sleep(1.0)
        sent = time.monotonic()
        if target == "group":
            os.killpg(process.pid, signal.SIGTERM)
        else:
            process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=120)
        exited = time.monotonic() - sent
        while session_members(process.pid) and time.monotonic() - sent < 120:
            time.sleep(0.05)
        gone = time.monotonic() - sent
        folders = len(list(temp.glob("metacurriculum-*")))
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        shutil.rmtree(temp, ignore_errors=True)
    return {"status": status, "exit_s": exited, "all_gone_s": gone, "folders_left": folders}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--executors", default="processes,ray")
    args = parser.parse_args()
    for executor in args.executors.split(","):
        for target in ("command", "group"):
            results = [trial(executor, target) for _ in range(args.trials)]
            exits = [r["exit_s"] for r in results]
            gone = [r["all_gone_s"] for r in results]
            print(
                f"{executor:9} SIGTERM to the {target:7}: exit status "
                f"{sorted({r['status'] for r in results})}, exit after "
                f"{min(exits):.1f}-{max(exits):.1f} s (median {statistics.median(exits):.1f}), "
                f"every process gone after {max(gone):.1f} s at most, temporary folders left "
                f"{sum(r['folders_left'] for r in results)}",
                flush=True,
            )


if __name__ == "__main__":
    main()
