"""Teacher variants: ``adaptive@step=1,adaptive@step=4`` sweeps a teacher's settings in one
benchmark, each variant with its own folders and rows."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from bench_helpers import ANALYTIC, TINY_ANALYTIC, run_numbers

from metacurriculum.benchmarks import BenchmarkError, expand, presets, run_benchmark, tables
from metacurriculum.cli import main


def test_a_variant_gets_its_settings_over_its_teachers_kwargs():
    specs = expand(
        [ANALYTIC],
        ["adaptive@step=4", "adaptive@ floor = none @step=1", "adaptive"],
        [0],
        teacher_kwargs={"adaptive": {"step": 2.0, "window": 6}},
    )
    assert [s.teacher for s in specs] == [
        "adaptive@step=4",
        "adaptive@floor=none@step=1",
        "adaptive",
    ]
    assert [dict(s.teacher_kwargs) for s in specs] == [
        {"step": 4, "window": 6},
        {"step": 1, "floor": "none", "window": 6},
        {"step": 2.0, "window": 6},
    ]
    assert {s.registered_teacher for s in specs} == {"adaptive"}
    assert specs[0].name == f"{ANALYTIC}/adaptive@step=4/seed_0"
    (path,) = expand([ANALYTIC], ["sb3@path=runs/ppo.zip"], [0])
    assert path.name == f"{ANALYTIC}/sb3@path=runs--ppo.zip/seed_0"  # one folder, not three
    assert path.teacher_kwargs == {"path": "runs/ppo.zip"}


def test_a_sweep_is_one_benchmark_and_one_table(tiny_config, tmp_path):
    sweep = tiny_config(teachers=("none", "adaptive@step=1", "adaptive@step=4"))
    run_benchmark(sweep)
    out = Path(sweep.out)
    assert sorted(p.name for p in (out / ANALYTIC).iterdir()) == [
        "adaptive@step=1",
        "adaptive@step=4",
        "none",
    ]
    report = tables.report(sweep.out)
    assert "| adaptive@step=1 |" in report and "| adaptive@step=4 |" in report
    with open(out / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted({row["teacher"] for row in rows}) == [
        "adaptive@step=1",
        "adaptive@step=4",
        "none",
    ]
    with open(out / "results.csv") as f:
        assert {row["teacher"] for row in csv.DictReader(f)} >= {"adaptive@step=4"}
    config = json.loads((out / ANALYTIC / "adaptive@step=4" / "seed_1" / "config.json").read_text())
    assert config["teacher"] == "adaptive@step=4" and config["teacher_kwargs"] == {"step": 4}

    # A variant computes what its teacher with those kwargs computes.
    plain = tiny_config(
        teachers=("adaptive",), teacher_kwargs={"adaptive": {"step": 4}}, out=str(tmp_path / "p")
    )
    run_benchmark(plain)
    for seed in (0, 1):
        variant = out / ANALYTIC / "adaptive@step=4" / f"seed_{seed}"
        assert run_numbers(variant) == run_numbers(
            Path(plain.out) / ANALYTIC / "adaptive" / f"seed_{seed}"
        )

    pytest.importorskip("matplotlib")
    from metacurriculum.benchmarks.plots import plot_all

    assert plot_all(sweep.out)  # the plots draw the variants as teachers of their own


@pytest.mark.parametrize(
    ("teacher", "match"),
    [
        ("adaptive@stepp=1", r"teacher 'adaptive@stepp=1' rejects kwargs \{'stepp': 1\}"),
        ("adaptive@step", r"'step' is not key=value"),
        ("adaptiv@step=1", r"unknown teacher 'adaptiv'. Did you mean 'adaptive'"),
    ],
)
def test_a_bad_variant_fails_before_any_run(teacher, match, tiny_config):
    config = tiny_config(teachers=("none", teacher))
    with pytest.raises(BenchmarkError, match=match):
        run_benchmark(config)
    assert not Path(config.out).exists()


def test_kwargs_of_a_teacher_apply_to_its_variants_in_presets_and_configs(tiny_config):
    config = presets.resolve(
        "reduced", teachers=["adaptive@step=1", "none"], teacher_kwargs={"adaptive": {"window": 3}}
    )
    assert config.teacher_kwargs["adaptive"]["window"] == 3
    (spec,) = [s for s in config.specs() if s.seed == 0 and s.teacher != "none"]
    assert spec.teacher_kwargs["step"] == 1 and spec.teacher_kwargs["window"] == 3
    with pytest.raises(BenchmarkError, match=r"teacher kwargs given for \['static'\]"):
        tiny_config(teachers=("adaptive@step=1",), teacher_kwargs={"static": {}}).specs()


def test_the_command_line_takes_variants(tmp_path):
    tiny = [
        "--env",
        ANALYTIC,
        "--env-kwargs",
        ",".join(f"{k}={v}" for k, v in TINY_ANALYTIC.items()),
    ]
    tiny += ["--eval-tasks", "4", "--seeds", "1", "--workers", "1", "--no-plots"]
    teachers = "alp@arms=[2,3,5],alp@arms=[4,5]"  # commas inside brackets stay in the value
    assert main(["bench", *tiny, "--teachers", teachers, "--out", str(tmp_path)]) == 0
    runs = sorted(p.name for p in (tmp_path / ANALYTIC).iterdir())
    assert runs == ["alp@arms=[2, 3, 5]", "alp@arms=[4, 5]"]
