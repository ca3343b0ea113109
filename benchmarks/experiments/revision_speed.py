"""Whole benchmark runs of two revisions of this project, timed against each other in one run.

A change to the student is worth what it saves on the runs people make, so this times the
same ``metacurriculum bench`` command (by default one run of the ``reduced`` preset: the
real student, its data, the env steps, the measurements and the final evaluation) on a
base revision and on the working tree, alternating so that the machine's load falls on
both alike, and reports the wall time, the CPU time and the peak memory of each, and their
ratios::

    python -m metacurriculum.benchmarks.experiments.revision_speed --base 10e2d14 --rounds 3
    python -m metacurriculum.benchmarks.experiments.revision_speed --base HEAD~3 --teachers none,linear

Each revision is installed once, with pip, into a folder of its own (``--cache``), and run
from there with this Python (the installed packages it needs are this environment's),
each run in a fresh output folder. The command's progress bar goes to a log beside it.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Runs the command line in this process and writes its peak resident set (KiB) to a file.
_WRAPPER = """
import os, resource, sys
from metacurriculum.cli import main
try:
    code = main(sys.argv[1:])
finally:
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    with open(os.environ["METACURRICULUM_PEAK_FILE"], "w") as file:
        file.write(str(peak))
sys.exit(code)
"""


@dataclass
class Timing:
    """One timed command.

    Attributes:
        revision: ``"base"`` or ``"head"``.
        wall: Wall time, seconds.
        cpu: User plus system CPU time of the command and its children, seconds.
        peak_mib: The largest resident set of the command or any child, MiB.
    """

    revision: str
    wall: float
    cpu: float
    peak_mib: float


def install(revision: str, cache: Path) -> Path:
    """A folder holding ``revision`` of this project installed (``pip install --target``)."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", revision], capture_output=True, text=True, check=True
    ).stdout.strip()
    target = cache / commit[:12]
    if (target / "metacurriculum").is_dir():
        return target
    with tempfile.TemporaryDirectory() as work:
        source = Path(work) / "source"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(source), commit],
            check=True,
            capture_output=True,
        )
        try:
            subprocess.run(
                [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                 str(target), str(source)],
                check=True,
            )  # fmt: skip
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(source)],
                check=False,
                capture_output=True,
            )
    return target


def timed(revision: str, path: Path | None, argv: list[str], log: Path, cwd: Path) -> Timing:
    """Run ``metacurriculum <argv>`` from the installed ``path`` (``None``: this tree), in
    ``cwd``: never the repository's root, whose ``metacurriculum/`` folder would shadow
    the installed revision (``python -c`` puts the working folder first on the path)."""
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(path), env.get("PYTHONPATH")]))
    if env.get("METACURRICULUM_DATA"):  # the command runs elsewhere: an absolute data root
        env["METACURRICULUM_DATA"] = str(Path(env["METACURRICULUM_DATA"]).resolve())
    peak_file = log.with_name(f"peak-{revision}.txt")
    env["METACURRICULUM_PEAK_FILE"] = str(peak_file)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with log.open("a") as output:
        command = [sys.executable, "-c", _WRAPPER, *argv]
        done = subprocess.run(command, env=env, stdout=output, stderr=output, check=False, cwd=cwd)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{revision}: metacurriculum {' '.join(argv)} failed; see {log}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(revision, wall, cpu, int(peak_file.read_text()) / 1024)


def main(argv: list[str] | None = None) -> list[Timing]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the git revision to compare with")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs of each revision")
    parser.add_argument("--preset", default="reduced")
    parser.add_argument("--teachers", default="none")
    parser.add_argument("--seeds", default="0,")
    parser.add_argument("--threads", default="1")
    parser.add_argument("--cache", type=Path, default=Path("runs/revision_speed"))
    args = parser.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    args.cache = args.cache.resolve()
    base = install(args.base, args.cache)
    log = args.cache / "commands.log"
    timings = []
    for round_ in range(args.rounds):
        for revision, path in (("base", base), ("head", None)):
            out = Path(tempfile.mkdtemp(prefix=f"{revision}-", dir=args.cache))
            bench = ["bench", "--preset", args.preset, "--teachers", args.teachers]
            bench += ["--seeds", args.seeds, "--workers", "1", "--threads", args.threads]
            bench += ["--no-plots", "--out", str(out)]
            timing = timed(revision, path, bench, log.resolve(), out)
            shutil.rmtree(out, ignore_errors=True)
            timings.append(timing)
            print(
                f"round {round_ + 1} {revision}: {timing.wall:.1f} s wall, {timing.cpu:.1f} s CPU, "
                f"{timing.peak_mib:.0f} MiB",
                flush=True,
            )
    base_wall = statistics.median(t.wall for t in timings if t.revision == "base")
    head_wall = statistics.median(t.wall for t in timings if t.revision == "head")
    base_cpu = statistics.median(t.cpu for t in timings if t.revision == "base")
    head_cpu = statistics.median(t.cpu for t in timings if t.revision == "head")
    base_peak = max(t.peak_mib for t in timings if t.revision == "base")
    head_peak = max(t.peak_mib for t in timings if t.revision == "head")
    print(
        f"{args.base} -> working tree, median of {args.rounds}: wall {base_wall:.1f} s -> "
        f"{head_wall:.1f} s ({base_wall / head_wall:.2f}x), CPU {base_cpu:.1f} s -> "
        f"{head_cpu:.1f} s ({base_cpu / head_cpu:.2f}x); peak memory {base_peak:.0f} -> "
        f"{head_peak:.0f} MiB"
    )
    return timings


if __name__ == "__main__":
    main()
