"""Damaged run folders: never trusted as finished, redone by ``bench``, named by ``table``."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from bench_helpers import ANALYTIC, TINY_ANALYTIC

from metacurriculum.benchmarks import BenchmarkError, run_benchmark
from metacurriculum.benchmarks.run_folders import (
    RUN_FILES,
    DamagedRunError,
    check_writable,
    read_steps,
    unfinished_reason,
)
from metacurriculum.benchmarks.stats import load_runs
from metacurriculum.cli import main

NOT_UTF8 = "byte 0xff at position 0"


def _edit_line(path: Path, index: int, change: Callable[[dict], None]) -> None:
    lines = path.read_text().splitlines()
    record = json.loads(lines[index])
    change(record)
    lines[index] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")


def _truncate(path: Path) -> None:
    text = path.read_text()
    path.write_text(text[: len(text) - 25])


def _edit_done(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        done = json.loads(path.read_text())
        change(done)
        path.write_text(json.dumps(done))

    return edit


#: file -> how it is damaged, and what the reason says.
DAMAGES = {
    "empty-done": ("done.json", lambda p: p.write_text(""), "is empty"),
    "garbage-done": ("done.json", lambda p: p.write_text("{garbage"), "not valid JSON"),
    "list-done": ("done.json", lambda p: p.write_text("[1, 2]"), "not a JSON object"),
    "keys-missing": (
        "done.json",
        lambda p: p.write_text('{"final_loss": 1.0}'),
        "'final_accuracy'",
    ),
    "wrong-type": (
        "done.json",
        _edit_done(lambda d: d.update(env_steps="ten")),
        "'env_steps' is 'ten'",
    ),
    "string-omega": (
        "done.json",
        _edit_done(lambda d: d.update(final_omega="two")),
        "'final_omega' is 'two'",
    ),
    "nan-omega-list": (
        "done.json",
        _edit_done(lambda d: d.update(final_omega=[2.0, None])),
        "'final_omega' is [2.0, None]",
    ),
    "other-config": (
        "done.json",
        _edit_done(lambda d: d.update(config_digest="0" * 16)),
        "made from another config.json",
    ),
    "truncated-steps": ("steps.jsonl", _truncate, "line 11 is not a JSON object"),
    "short-steps": (
        "steps.jsonl",
        lambda p: p.write_text("\n".join(p.read_text().splitlines()[:4]) + "\n"),
        "holds 4 lines",
    ),
    "garbage-evaluation": ("evaluation.json", lambda p: p.write_text("nan nan"), "not valid JSON"),
    # Bytes that are not UTF-8 (`printf '\xff' > file`), in every file that is read.
    **{
        f"binary-{name.split('.')[0]}": (name, lambda p: p.write_bytes(b"\xff"), NOT_UTF8)
        for name in ("done.json", "config.json", "evaluation.json", "steps.jsonl")
    },
    "binary-tail-steps": ("steps.jsonl", lambda p: p.write_bytes(p.read_bytes() + b"\xfe"), "0xfe"),
    "strings-evaluation": (
        "evaluation.json",
        lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "loss_mean": ["a", "b"]})),
        "'loss_mean' holds 'a', not a number",
    ),
    "short-accuracy": (
        "evaluation.json",
        lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "accuracy_mean": [0.5]})),
        "differ in length",
    ),
    "steps-other-keys": (
        "steps.jsonl",
        lambda p: _edit_line(p, 2, lambda r: r.pop("target_loss")),
        "line 3 has other keys than line 1",
    ),
    "steps-string": (
        "steps.jsonl",
        lambda p: _edit_line(p, 2, lambda r: r.update(target_loss="low")),
        "the 'target_loss' values are not numbers",
    ),
    "config-seed": (
        "config.json",
        lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "seed": "zero"})),
        "made from another config.json",
    ),
    # student.pt is part of "finished" (its digest is in done.json).
    "truncated-student": (
        "student.pt",
        lambda p: p.write_bytes(p.read_bytes()[:5]),
        "is not the student done.json was written for",
    ),
    "deleted-student": ("student.pt", lambda p: p.unlink(), "student.pt is missing"),
    "empty-student": ("student.pt", lambda p: p.write_bytes(b""), "is not a file, or empty"),
}


@pytest.fixture
def finished(tiny_config):
    """A benchmark of two runs, finished."""
    config = tiny_config(teachers=("none",), seeds=(0, 1))
    specs = run_benchmark(config)
    return config, [spec.folder(config.out) for spec in specs]


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_folder_is_unfinished_and_redone(finished, damage, overwrite, caplog):
    config, (folder, intact) = finished
    name, spoil, reason = DAMAGES[damage]
    before = (intact / "done.json").read_bytes()
    spoil(folder / name)
    assert reason in unfinished_reason(folder)
    assert str(folder / name) in unfinished_reason(folder)
    config.overwrite = overwrite
    with caplog.at_level(logging.WARNING, logger="metacurriculum"):
        run_benchmark(config)
    assert f"{folder} is unfinished and will be redone" in caplog.text
    assert unfinished_reason(folder) is None
    assert (intact / "done.json").read_bytes() == before  # the intact run is not redone


@pytest.mark.parametrize(
    "damage",
    [
        "garbage-done",
        "truncated-steps",
        "garbage-evaluation",
        *(f"binary-{name}" for name in ("done", "config", "evaluation", "steps")),
        "strings-evaluation",
        "steps-string",
        "truncated-student",
    ],
)
def test_table_and_plot_leave_a_damaged_run_out_and_name_it(finished, damage, capsys):
    config, (folder, _) = finished
    name, spoil, reason = DAMAGES[damage]
    spoil(folder / name)
    with pytest.warns(UserWarning, match=f"damaged run is left out: {folder / name}.*{reason}"):
        runs = load_runs(config.out)
    assert [run.seed for run in runs] == [1]
    with pytest.warns(UserWarning, match="rerun `metacurriculum bench`"):
        assert main(["table", config.out]) == 0
    with pytest.warns(UserWarning, match=str(folder / name)):
        assert main(["plot", config.out]) == 0
    assert "| none | 1 | 0 |" in capsys.readouterr().out


def test_table_of_only_damaged_runs_says_what_to_do(finished, capsys):
    config, folders = finished
    for folder in folders:
        (folder / "done.json").write_text("")
    with pytest.warns(UserWarning, match="is empty"):
        assert main(["table", config.out]) == 1
    assert "no finished run" in capsys.readouterr().err


def test_read_steps_names_the_file_and_line(tmp_path):
    path = tmp_path / "steps.jsonl"
    path.write_text('{"step": 0}\n{"step": 1, "omeg')
    with pytest.raises(DamagedRunError, match=rf"{path}, line 2 .*rerun `metacurriculum bench`"):
        read_steps(path)


def test_unwritable_output_folder_is_refused_before_anything_runs(tmp_path, tiny_config, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(BenchmarkError, match=r"cannot write to the output folder .*a-file/runs"):
        check_writable(blocker / "runs")
    argv = ["bench", "--env", "MetaCurriculum-Analytic-v0", "--teachers", "none", "--seeds", "1"]
    assert main([*argv, "--out", str(blocker / "runs")]) == 1
    err = capsys.readouterr().err
    assert "cannot write to the output folder" in err and "pass --out" in err
    assert "Traceback" not in err


def test_a_folder_in_place_of_the_student_is_unfinished_and_named(finished, capsys, caplog):
    """``student.pt`` replaced by a folder: not finished; ``bench`` fails that run alone,
    saying what to remove (the folder is not deleted), and the other run is kept."""
    config, (folder, intact) = finished
    before = (intact / "done.json").read_bytes()
    (folder / "student.pt").unlink()
    (folder / "student.pt").mkdir()
    assert "student.pt is not a file" in unfinished_reason(folder)
    with pytest.raises(BenchmarkError, match="1 of 1 runs failed") as failure:
        run_benchmark(config)
    assert f"{folder / 'student.pt'} is a folder where the run's file belongs; remove it" in str(
        failure.value
    )
    assert (folder / "student.pt").is_dir() and (intact / "done.json").read_bytes() == before
    with pytest.warns(UserWarning, match="student.pt is not a file"):
        assert main(["table", config.out]) == 0
    assert "| none | 1 | 0 |" in capsys.readouterr().out


def test_every_run_file_gets_the_mode_of_the_umask(tmp_path):
    """A real command under umask 027: all five files of a run are 0640 (``student.pt``
    was 0600, the mode of the temporary file it is written through)."""
    workers = 1  # spawned workers inherit the umask and write through the same code
    command = [sys.executable, "-m", "metacurriculum.cli", "bench", "--env", ANALYTIC]
    command += ["--teachers", "none", "--seeds", "2", "--no-plots", "--eval-tasks", "4"]
    command += ["--env-kwargs", ",".join(f"{k}={v}" for k, v in TINY_ANALYTIC.items())]
    command += ["--workers", str(workers), "--threads", "1", "--out", str(tmp_path)]
    done = subprocess.run(
        command, preexec_fn=lambda: os.umask(0o027), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    modes = {
        path.relative_to(tmp_path).as_posix(): oct(path.stat().st_mode & 0o777)
        for path in tmp_path.glob("*/*/seed_*/*")
    }
    assert len(modes) == 2 * len(RUN_FILES)
    assert set(modes.values()) == {"0o640"}, modes
