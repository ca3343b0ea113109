"""What runs cost, recorded as they go, and teachers compared at equal compute."""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from bench_helpers import TINY_ANALYTIC
from test_population_executor import TINY_MAML, TINY_MAML_KWARGS, assert_same_runs
from test_stats import fake_run

from metacurriculum.benchmarks import plot_all, run_benchmark, stats, tables
from metacurriculum.benchmarks.costs import at_compute, equal_compute
from metacurriculum.benchmarks.plan import plan
from metacurriculum.benchmarks.run_folders import config_digest, unfinished_reason
from metacurriculum.envs.compute import student_compute

COMPUTE = ("train_flops", "measure_flops", "eval_flops", "compute_budget")


def lines(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "steps.jsonl").read_text().splitlines()]


def test_every_run_records_its_compute_per_step_and_in_total(tiny_config):
    config = tiny_config(teachers=("none", "linear"))
    for spec in run_benchmark(config):
        folder = spec.folder(config.out)
        steps, done = lines(folder), json.loads((folder / "done.json").read_text())
        flops = [step["train_flops"] for step in steps]
        assert flops[0] == 0 and all(a < b for a, b in itertools.pairwise(flops))
        assert steps[0]["measure_flops"] > 0 and steps[-1]["wall_s"] > 0
        assert (
            done["train_flops"] == flops[-1] and done["measure_flops"] == steps[-1]["measure_flops"]
        )
        compute = student_compute(spec.env_settings())
        assert done["eval_flops"] == compute.evaluation([5] * spec.eval_tasks)
        assert done["compute_budget"] is None and done["train_seconds"] >= 0
    tables.report(config.out)
    with open(Path(config.out) / "runs.csv") as f:
        row = next(csv.DictReader(f))
    assert {*COMPUTE} <= set(row) and "train_seconds" not in row  # runs.csv: no timings


def strip_compute(folder: Path) -> None:
    """Make ``folder`` a run of the code before compute was recorded: no compute_budget
    setting, no FLOPs in steps.jsonl or done.json (its config digest rewritten to match)."""
    config = json.loads((folder / "config.json").read_text())
    del config["env_settings"]["compute_budget"]
    (folder / "config.json").write_text(json.dumps(config))
    steps = lines(folder)
    for step in steps:
        del step["train_flops"], step["measure_flops"]
    (folder / "steps.jsonl").write_text("".join(json.dumps(s) + "\n" for s in steps))
    done = json.loads((folder / "done.json").read_text())
    for key in COMPUTE:
        del done[key]
    done["config_digest"] = config_digest(config)
    (folder / "done.json").write_text(json.dumps(done))


def test_runs_made_before_compute_was_recorded_still_count_as_finished(tiny_config, caplog):
    config = tiny_config(teachers=("none", "linear"), plots=True)
    specs = run_benchmark(config)
    for spec in specs:
        strip_compute(spec.folder(config.out))
        assert unfinished_reason(spec.folder(config.out)) is None
    assert plan(specs, config.out) == []  # nothing to redo, no mismatch
    text = tables.report(config.out)
    assert "**Compute**" not in text and "budget 40 meta-steps" in text
    assert "compute.png" not in [p.name for p in plot_all(config.out)]


def test_a_compute_budget_compares_teachers_at_equal_compute(tiny_config):
    kwargs = {**TINY_ANALYTIC, "compute_budget": "matched"}
    config = tiny_config(teachers=("none", "linear"), env_kwargs=kwargs, plots=True)
    specs = run_benchmark(config)
    done = {s.teacher: json.loads((s.folder(config.out) / "done.json").read_text()) for s in specs}
    assert done["none"]["meta_steps"] == TINY_ANALYTIC["budget"]  # n_max throughout
    assert done["linear"]["meta_steps"] > TINY_ANALYTIC["budget"]  # easy tasks first: cheaper
    for summary in done.values():
        assert summary["compute_budget"] <= summary["train_flops"]
        assert summary["train_flops"] < summary["compute_budget"] * 1.1  # one step's overrun
    text = tables.report(config.out)
    assert "compute budget 'matched'" in text and "**Target loss at equal compute**" in text
    with open(Path(config.out) / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert {"equal_compute_flops", "target_at_compute_mean", "target_auc_compute_mean"} <= set(
        rows[0]
    )
    assert float(rows[0]["equal_compute_flops"]) == min(s["train_flops"] for s in done.values())
    assert "compute.png" in [p.name for p in plot_all(config.out)]


def test_populations_end_each_run_on_its_own_compute(tiny_config, tmp_path):
    """Under a compute budget a population's runs end at different steps; each is the run
    computed alone."""
    kwargs = {**TINY_MAML_KWARGS, "compute_budget": "matched"}
    fields = {"envs": (TINY_MAML,), "teachers": ("none", "linear"), "env_kwargs": kwargs}
    inline = tiny_config(**fields, out=str(tmp_path / "inline"), executor="inline", threads=1)
    population = tiny_config(**fields, out=str(tmp_path / "pop"), executor="population", threads=1)
    run_benchmark(inline)
    specs = run_benchmark(population)
    assert_same_runs(specs, population.out, inline.out)
    steps = {s.teacher: len(lines(s.folder(population.out))) for s in specs if s.seed == 0}
    assert steps["linear"] > steps["none"] == TINY_MAML_KWARGS["budget"] + 1


def curve_run(teacher: str, seed: int, flops: list[float], losses: list[float], tmp_path: Path):
    """A fake finished run whose steps.jsonl holds ``flops`` and ``losses``."""
    run = fake_run(teacher, seed, 1.0)
    folder = tmp_path / teacher / f"seed_{seed}"
    folder.mkdir(parents=True)
    steps = [
        {"meta_step": 4 * i, "train_flops": f, "target_loss": loss}
        for i, (f, loss) in enumerate(zip(flops, losses, strict=True))
    ]
    (folder / "steps.jsonl").write_text("".join(json.dumps(s) + "\n" for s in steps))
    run.summary["train_flops"] = flops[-1]
    return stats.Run(folder, run.config, run.summary, run.evaluation)


def test_equal_compute_and_the_target_loss_there(tmp_path):
    cheap = curve_run("linear", 0, [0, 10, 20, 30], [3.0, 2.0, 1.0, 0.5], tmp_path)
    dear = curve_run("none", 0, [0, 20, 40], [3.0, 2.5, 2.0], tmp_path)
    assert equal_compute([cheap, dear]) == 30
    assert at_compute(dear, 30) == {
        "target_at_compute": 2.25,  # halfway between the steps at 20 and 40 FLOPs
        "target_auc_compute": pytest.approx((2.75 * 20 + (2.5 + 2.25) / 2 * 10) / 30),
    }
    assert at_compute(cheap, 30)["target_at_compute"] == 0.5
    assert math.isnan(at_compute(cheap, 31)["target_at_compute"])  # it did not get there
    rows = stats.summarize([cheap, dear])
    assert {r.teacher: r.equal_compute for r in rows} == {"linear": 30, "none": 30}
    by_teacher = {r.teacher: r.metrics["target_at_compute"].mean.value for r in rows}
    assert by_teacher == {"linear": 0.5, "none": 2.25}


def test_runs_without_compute_have_no_equal_compute():
    runs = [fake_run("none", 0, 1.0), fake_run("linear", 0, 0.5)]
    assert math.isnan(equal_compute(runs))
    rows = stats.summarize(runs)
    assert all(np.isnan(r.metrics["target_at_compute"].mean.value) for r in rows)
