"""Filesystem faults under real commands: each is one line naming the path and the fix.

A read-only folder and a full disk are made for real, in a private mount namespace
(``unshare``: a read-only bind mount, a tiny ``tmpfs``), so that they hold for root as
for anyone; the tests skip where ``unshare`` is not allowed. A file where a folder
belongs, and a folder where a file belongs, need nothing special.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bench_helpers import ANALYTIC, TINY_ANALYTIC

from metacurriculum.benchmarks.run_folders import unfinished_reason
from metacurriculum.cli import main

HERE = Path(__file__).parent
BENCH = [sys.executable, "-m", "metacurriculum.cli", "bench", "--env", ANALYTIC, "--no-plots"]
BENCH += ["--env-kwargs", ",".join(f"{k}={v}" for k, v in TINY_ANALYTIC.items())]
BENCH += ["--eval-tasks", "4", "--threads", "1"]


@pytest.fixture(scope="module")
def namespace() -> list[str]:
    """``unshare`` arguments for a private mount namespace (as root) or a user and mount
    namespace (otherwise); skips the test where neither is allowed."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux) for a private mount namespace")
    args = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-rm"]
    probe = subprocess.run([*args, "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare is not allowed here: {probe.stderr.decode().strip()}")
    return args


def run_inside(namespace: list[str], setup: str, command: list[str], after: str = "") -> Any:
    """``command`` in a mount namespace after the shell ``setup`` (mounts), then ``after``
    (while the mounts last); returns the finished process, text captured."""
    script = f'{setup} || exit 99; "$@"; rc=$?; {after or ":"}; exit $rc'
    return subprocess.run(
        [*namespace, "sh", "-c", script, "sh", *command],
        capture_output=True,
        text=True,
        timeout=300,
    )


def read_only(folder: Path) -> str:
    """Shell that makes ``folder`` a read-only bind mount of itself."""
    return f"mount --bind {folder} {folder} && mount -o remount,bind,ro {folder}"


def one_line_each(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr


def test_a_read_only_run_folder_fails_its_runs_alone(namespace, tmp_path):
    """``none``'s folder is read-only: its three runs fail, each with one line naming the
    folder and the fix (its traceback cannot be saved either: said so), and the other
    teacher's runs all finish, on two worker processes."""
    out = tmp_path / "runs"
    folder = out / ANALYTIC / "none"
    folder.mkdir(parents=True)
    command = [*BENCH, "--teachers", "none,random", "--seeds", "3", "--workers", "2"]
    done = run_inside(namespace, read_only(folder), [*command, "--out", str(out)])
    assert done.returncode == 1, done.stderr
    one_line_each(done.stderr)
    assert "3 of 6 runs failed" in done.stderr
    for seed in range(3):
        line = next(
            x for x in done.stderr.splitlines() if x.strip().startswith(f"{folder}/seed_{seed}:")
        )
        assert f"WriteError: cannot write {folder}/seed_{seed} (Read-only file system)" in line
        assert f"{folder} is on a read-only file system" in line
        assert "its traceback is not saved" in line
        assert unfinished_reason(out / ANALYTIC / "random" / f"seed_{seed}") is None


def test_a_full_disk_says_no_space_left_not_torchs_unexpected_pos(namespace, tmp_path):
    """A 16 KiB tmpfs as the output folder: config.json and steps.jsonl fit, student.pt
    (torch.save) does not. The run's line and error.txt say "No space left on device"
    for student.pt."""
    out = tmp_path / "full"
    out.mkdir()
    command = [sys.executable, "-m", "metacurriculum.cli", "bench"]
    command += ["--env", "MetaCurriculum-Tiny-v0", "--teachers", "none", "--seeds", "1"]
    command += ["--eval-tasks", "1", "--workers", "1", "--no-plots", "--out", str(out)]
    command += ["--env-kwargs", "budget=4,val_tasks=1,target_tasks=1"]
    error_txt = out / "MetaCurriculum-Tiny-v0" / "none" / "seed_0" / "error.txt"
    setup = f"mount -t tmpfs -o size=16k tmpfs {out}"
    done = run_inside(namespace, setup, command, after=f"tail -n 1 {error_txt}")
    assert done.returncode == 1, done.stderr
    one_line_each(done.stderr)
    student = error_txt.with_name("student.pt")
    expected = f"cannot write {student} (No space left on device); free space on its disk"
    assert expected in done.stderr
    assert expected in done.stdout  # error.txt's last line
    assert "unexpected pos" not in done.stderr + done.stdout


def test_table_on_a_read_only_folder_names_the_file(namespace, tiny_config, tmp_path):
    from metacurriculum.benchmarks import run_benchmark

    config = tiny_config(teachers=("none",), seeds=(0,))
    run_benchmark(config)
    table = [sys.executable, "-m", "metacurriculum.cli", "table", config.out]
    done = run_inside(namespace, read_only(Path(config.out)), table)
    assert done.returncode == 1, done.stderr
    one_line_each(done.stderr)
    assert f"cannot write {config.out}/results.csv (Read-only file system)" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_results_csv_as_a_folder_and_plots_as_a_file(tiny_config, capsys):
    """``table``, ``plot`` and ``bench`` (whose runs are finished) each fail with one
    line naming what is in the way."""
    from metacurriculum.benchmarks import run_benchmark

    config = tiny_config(teachers=("none",), seeds=(0,))
    run_benchmark(config)
    out = Path(config.out)
    (out / "results.csv").mkdir()
    (out / "plots").write_text("")
    bench = ["bench", "--env", ANALYTIC, "--teachers", "none", "--seeds", "1", "--eval-tasks"]
    bench += ["12", "--env-kwargs", ",".join(f"{k}={v}" for k, v in TINY_ANALYTIC.items())]
    bench += ["--workers", "1", "--out", config.out]
    in_the_way = f"{out}/results.csv is a folder where a file belongs: remove or rename it"
    for argv in (["table", config.out], [*bench, "--no-plots"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert f"cannot write {out}/results.csv (Is a directory); {in_the_way}" in err
    (out / "results.csv").rmdir()
    file_in_the_way = f"{out}/plots is a file where a folder belongs: remove or rename it"
    for argv in (["plot", config.out], bench):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert file_in_the_way in err and "Traceback" not in err, err


def test_a_file_where_a_run_folder_belongs_fails_those_runs_alone(tiny_config, capsys):
    config = tiny_config(teachers=("none", "random"), seeds=(0, 1))
    blocker = Path(config.out) / ANALYTIC / "none"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a folder")
    argv = ["bench", "--env", ANALYTIC, "--teachers", "none,random", "--seeds", "2"]
    argv += ["--env-kwargs", ",".join(f"{k}={v}" for k, v in TINY_ANALYTIC.items())]
    argv += ["--eval-tasks", "12", "--workers", "1", "--no-plots", "--out", config.out]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "2 of 4 runs failed" in err and "Traceback" not in err
    assert f"{blocker} is a file where a folder belongs: remove or rename it" in err
    assert "its traceback is not saved" in err
    for seed in (0, 1):
        assert unfinished_reason(Path(config.out) / ANALYTIC / "random" / f"seed_{seed}") is None
