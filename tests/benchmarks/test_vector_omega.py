"""A vector ω (a family of several parameters) through the harness, run folders, tables,
plots and the command: lists in the files, a column and a panel per named coordinate."""

from __future__ import annotations

import csv
import json
import logging

import pytest
from bench_helpers import ANALYTIC, TINY_ANALYTIC

from metacurriculum.benchmarks import executors as executors_module
from metacurriculum.benchmarks import run_benchmark, tables
from metacurriculum.benchmarks.run_folders import unfinished_reason
from metacurriculum.cli import main

MULTI = "MetaCurriculum-AnalyticMulti-v0"
NAMES = ("classes", "rotation", "noise")
#: 10 env steps a run, on the closed-form student of the three-parameter family.
TINY_MULTI = {"budget": 40, "update_rate": 4, "inner_steps": 3}


@pytest.fixture
def vector_bench(tiny_config):
    """A finished benchmark of none and random on the vector family, two seeds each."""
    config = tiny_config(
        envs=(MULTI,), teachers=("none", "random"), env_kwargs=TINY_MULTI, eval_tasks=6
    )
    return config, [spec.folder(config.out) for spec in run_benchmark(config)]


def _lines(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "steps.jsonl").read_text().splitlines()]


def test_vector_runs_store_omega_as_a_list_and_by_name(vector_bench, monkeypatch):
    config, folders = vector_bench
    assert len(folders) == 4
    for folder in folders:
        assert unfinished_reason(folder) is None
        steps = _lines(folder)
        assert len(steps) == 40 // 4 + 1
        for step in steps:
            assert len(step["omega"]) == 3 and all(isinstance(v, float) for v in step["omega"])
            assert [step[f"omega/{name}"] for name in NAMES] == step["omega"]
        done = json.loads((folder / "done.json").read_text())
        assert done["final_omega"] == steps[-1]["omega"]
        assert [done[f"final_omega/{name}"] for name in NAMES] == done["final_omega"]
    none = json.loads((folders[0] / "done.json").read_text())
    assert none["final_omega"] == [20.0, 60.0, 0.5]  # the hardest corner
    calls = []
    monkeypatch.setattr(executors_module, "execute_run", lambda *a, **k: calls.append(a))
    run_benchmark(config)
    assert calls == []  # every run is finished: nothing is recomputed


def test_runs_csv_holds_the_list_and_a_column_per_coordinate(vector_bench):
    config, _ = vector_bench
    text = tables.report(config.out)
    assert f"### {MULTI}" in text and "| random | 2 | 0 |" in text
    corner = "at the hardest corner of family 'omniglot-multi' (classes 20, rotation 60, noise 0.5)"
    assert corner in text
    rows = list(csv.DictReader(open(f"{config.out}/runs.csv")))
    assert len(rows) == 4
    for row in rows:
        omega = json.loads(row["final_omega"])
        assert [float(row[f"final_omega/{name}"]) for name in NAMES] == omega


def test_omega_plot_has_a_panel_per_coordinate(vector_bench, tiny_config, monkeypatch):
    pytest.importorskip("matplotlib")
    from metacurriculum.benchmarks import plot_all, plots

    config, _ = vector_bench
    scalar = tiny_config(teachers=("none",), seeds=(0,), env_kwargs=TINY_ANALYTIC)
    run_benchmark(scalar)  # a one-parameter env beside it: one panel in its column
    panels = {}
    finish = plots._finish

    def capture(fig, axes, path):
        visible = [ax for ax in axes.flat if ax.get_visible()]
        panels[path.name] = [(ax.get_title(), ax.get_ylabel()) for ax in visible]
        return finish(fig, axes, path)

    monkeypatch.setattr(plots, "_finish", capture)
    paths = plot_all(config.out)
    assert sorted(p.name for p in paths) == sorted(plots.PLOTS)
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths)
    # envs in sorted order; a panel per teacher, a row of them per coordinate
    omega = panels["omega.png"]
    assert omega[0] == (f"{ANALYTIC}\nnone (1 seed)", "ω (classes per task)")
    vector = omega[1:]
    assert [label for _, label in vector] == [f"ω: {n}" for n in NAMES for _ in range(2)]
    assert [title.splitlines()[0] for title, _ in vector[::2]] == [MULTI] * 3
    assert [title for title, _ in vector[1::2]] == ["random (2 seeds)"] * 3


@pytest.mark.parametrize(
    "bad",
    ["ten", [], [1.0, "a", 0.5], [1.0, None, 0.5], [True, 0.0, 0.0], {"classes": 2}],
    ids=["string", "empty", "string-item", "null-item", "bool-item", "object"],
)
def test_a_damaged_vector_final_omega_is_redone(vector_bench, bad, caplog):
    config, (folder, *intact) = vector_bench
    path = folder / "done.json"
    done = json.loads(path.read_text())
    good = done["final_omega"]
    path.write_text(json.dumps({**done, "final_omega": bad}))
    assert f"'final_omega' is {bad!r}" in unfinished_reason(folder)
    before = [(f / "done.json").read_bytes() for f in intact]
    with caplog.at_level(logging.WARNING, logger="metacurriculum"):
        run_benchmark(config)
    assert f"{folder} is unfinished and will be redone" in caplog.text
    assert unfinished_reason(folder) is None
    assert json.loads(path.read_text())["final_omega"] == good
    assert [(f / "done.json").read_bytes() for f in intact] == before


def test_bench_command_on_a_vector_env(tmp_path, capsys):
    out = tmp_path / "runs"
    argv = ["bench", "--env", MULTI, "--env-kwargs", "budget=40,inner_steps=3"]
    argv += ["--teachers", "none,random", "--seeds", "1", "--eval-tasks", "4"]
    assert main([*argv, "--workers", "1", "--no-plots", "--out", str(out)]) == 0
    assert f"### {MULTI}" in capsys.readouterr().out
    done = json.loads((out / MULTI / "random" / "seed_0" / "done.json").read_text())
    assert len(done["final_omega"]) == 3


def test_a_teacher_for_one_coordinate_is_refused_before_any_run(tmp_path):
    from metacurriculum.benchmarks import BenchConfig, BenchmarkError

    config = BenchConfig(
        envs=(MULTI,),
        teachers=("none", "static"),
        seeds=(0,),
        env_kwargs={"budget": 40},
        out=str(tmp_path / "runs"),
        workers=1,
        plots=False,
    )
    with pytest.raises(BenchmarkError, match=r"'static' steers a one-parameter ω.*adr, alp-gmm"):
        run_benchmark(config)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("done.json"))
