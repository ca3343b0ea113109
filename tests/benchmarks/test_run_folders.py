"""Damaged run folders: never trusted as finished, redone by ``bench``, named by ``table``."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from metacurriculum.benchmarks import BenchmarkError, run_benchmark
from metacurriculum.benchmarks.run_folders import (
    DamagedRunError,
    check_writable,
    read_steps,
    unfinished_reason,
)
from metacurriculum.benchmarks.stats import load_runs
from metacurriculum.cli import main


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


@pytest.mark.parametrize("damage", ["garbage-done", "truncated-steps", "garbage-evaluation"])
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
