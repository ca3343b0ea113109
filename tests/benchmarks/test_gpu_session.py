"""The GPU session on the CPU with tiny settings: a benchmark done in two slices, resumed
from the archive the first left, equals one done at once; what does not fit does not start;
an overrun is stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from bench_helpers import ANALYTIC, run_numbers

from metacurriculum.benchmarks import resolve, run_benchmark, tables
from metacurriculum.benchmarks.experiments import gpu_session
from metacurriculum.benchmarks.experiments.gpu_carry import collect
from metacurriculum.benchmarks.experiments.gpu_session import (
    ARCHIVE,
    GpuSession,
    Population,
    Session,
)
from metacurriculum.benchmarks.run_folders import unfinished_reason

ROOT = Path(__file__).resolve().parents[2]
#: A tiny benchmark: the analytic student, 3 teachers x 2 seeds, 10 env steps a run.
BENCH = (
    *("--env-kwargs", "budget=40,n_max=5,inner_steps=3"),
    *("--teachers", "none,linear,random", "--seeds", "2", "--eval-tasks", "4"),
    *("--device", "cpu"),
)


class Clock:
    """A slice's clock that moves only when a population runs (by ``per_population``)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    """Each ``bench`` subprocess runs for real and takes 100 s of the fake slice."""
    fake, real = Clock(), gpu_session._call

    def call(command, log, timeout):
        code = real(command, log, 300)
        fake.now += 100
        return code

    monkeypatch.setattr(gpu_session, "_call", call)
    return fake


def session(tmp_path: Path, name: str, clock: Clock, carried: Path | None, **fields) -> Session:
    settings = {
        "work": tmp_path / name / "work",
        "out": tmp_path / name / "out",
        "carried": carried,
        "seconds": 150.0,  # one population (100 s) fits, a second (60 s predicted) does not
        "envs": (ANALYTIC,),
        "bench_options": BENCH,
        "max_population": 3,
        "throughput": 1e15,
        "startup": 60.0,
        "reserve": 10.0,
        "steps": ("bench",),
        "clock": clock,
    }
    return Session(**{**settings, **fields})


def test_two_slices_resume_from_the_archive_and_equal_one_benchmark(tmp_path, clock):
    first = GpuSession(session(tmp_path, "first", clock, None)).run()
    assert [o["seeds"] for o in first["observations"]] == [[0]]  # seed 0's three runs
    out = tmp_path / "first" / "out"
    assert {p.name for p in out.iterdir()} == {ARCHIVE, "results.md", "session.log"}
    clock.now = 0.0
    second = GpuSession(session(tmp_path, "second", clock, out)).run()
    assert [o["seeds"] for o in second["observations"]] == [[0], [1]]  # its state travelled
    assert all(0 < o["flops"] <= o["predicted_flops"] for o in second["observations"])  # a bound
    assert len(second["calls"]) == 2
    collect(tmp_path / "second" / "out", tmp_path / "carry", tmp_path / "local")
    assert (tmp_path / "carry" / "previous" / ARCHIVE).is_file()
    config = resolve(
        "paper",
        envs=[ANALYTIC],
        teachers=["none", "linear", "random"],
        seeds=(0, 1),
        env_kwargs={"budget": 40, "n_max": 5, "inner_steps": 3, "device": "cpu"},
        eval_tasks=4,
        out=str(tmp_path / "at-once"),
        executor="population",
        plots=False,
    )
    for spec in run_benchmark(config):
        local = spec.folder(tmp_path / "local")
        assert unfinished_reason(local) is None, spec.name
        assert run_numbers(local) == run_numbers(spec.folder(config.out)), spec.name
    tables.report(config.out)
    tables.report(tmp_path / "local")
    runs_csv = (tmp_path / "local" / "runs.csv").read_bytes()
    assert runs_csv == (tmp_path / "at-once" / "runs.csv").read_bytes()
    assert (tmp_path / "local" / "plots" / "compute.png").is_file()
    log = (tmp_path / "local" / "session.log").read_text()
    assert "call 2" in log and "every run of the preset is finished" in log


def test_a_population_that_would_not_fit_is_not_started(tmp_path, clock):
    state = GpuSession(session(tmp_path, "short", clock, None, seconds=60.0)).run()
    assert clock.now == 0 and state["observations"] == []
    archive = tmp_path / "short" / "out" / ARCHIVE
    assert tarfile.open(archive).getnames() == ["gpu_session.json", "session.log"]
    log = (tmp_path / "short" / "work" / "session.log").read_text()
    assert f"no population of {ANALYTIC} fits the 50 s left" in log


def test_populations_are_whole_seeds_then_the_first_teachers(tmp_path):
    s = session(tmp_path, "plan", Clock(), None, max_population=6)
    runner = GpuSession(s)
    candidates = gpu_session._candidates(runner.pending(), s)
    assert [(c.seeds, c.teachers) for c in candidates] == [
        ((0, 1), ("none", "linear", "random")),
        ((0,), ("none", "linear", "random")),
        ((0,), ("none", "linear")),
        ((0,), ("none",)),
    ]
    population = Population(ANALYTIC, (0,), ("none",), flops=2e12)
    assert runner.predict(population) == pytest.approx(2e12 / 1e15 * 1.25 + 60)  # the prior
    runner.state["observations"] = [
        {"runs": 1, "flops": 1e12, "seconds": 160.0},  # 1e10 FLOP/s after the 60 s startup
        {"runs": 1, "flops": 1e12, "seconds": 70.0},  # at most half its seconds are startup
        {"runs": 3, "flops": 1e12, "seconds": 61.0},  # faster, but a bigger population
    ]
    assert runner.predict(population) == pytest.approx(2e12 / 1e10 * 1.25 + 60)


@pytest.mark.parametrize("budget", [None, "matched", 1e13])
def test_a_run_s_predicted_flops_bound_what_it_spends(tiny_config, budget):
    kwargs = {"budget": 40, "n_max": 5, "inner_steps": 3, "compute_budget": budget}
    config = tiny_config(teachers=("none", "linear"), seeds=(0,), env_kwargs=kwargs)
    for spec in run_benchmark(config):
        done = json.loads((spec.folder(config.out) / "done.json").read_text())
        spent = done["train_flops"] + done["measure_flops"] + done["eval_flops"]
        assert spent <= gpu_session.run_flops(spec), spec.name


def test_a_command_that_overruns_is_stopped(tmp_path):
    with open(tmp_path / "log", "w") as log:
        code = gpu_session._call([sys.executable, "-c", "import time; time.sleep(60)"], log, 0.5)
    assert code == "timeout"
    assert "stopped after" in (tmp_path / "log").read_text()


def test_the_tests_and_the_speed_table_run_once_per_output_folder(tmp_path, clock):
    fields = {"steps": ("tests", "speed"), "tests": [["--version"]], "speed": ["--help"]}
    state = GpuSession(session(tmp_path, "once", clock, None, **fields)).run()
    assert state["tests"]["results"][0]["code"] == 0
    assert state["speed"]["results"][0]["code"] == 0
    out = tmp_path / "once" / "out"
    assert "pytest" in (out / "cuda_tests.txt").read_text()
    assert "population" in (out / "population_speed.md").read_text()
    again = GpuSession(session(tmp_path, "again", clock, out, **fields)).run()
    assert again["tests"] == state["tests"]  # not rerun: its result travelled with the archive


@pytest.mark.slow
def test_the_shell_entry_point_runs_a_call(tmp_path):
    """gpu_session.sh as the device runs it: the checkout linked into a site folder, no
    install, the current folder off the path."""
    carry = tmp_path / "carry"
    carry.mkdir()
    (carry / "data").symlink_to(os.environ["METACURRICULUM_DATA"])
    env = {
        **os.environ,
        "OUT": str(tmp_path / "out"),
        "PYTHON": sys.executable,
        "SITE": str(tmp_path / "site"),
        "CARRY": str(carry),
    }
    command = ["bash", str(ROOT / "benchmarks/experiments/gpu_session.sh"), "300"]
    command += ["--work", str(tmp_path / "work"), "--steps", "bench", "--envs", ANALYTIC]
    command += ["--", *BENCH]
    subprocess.run(command, env=env, check=True, cwd=tmp_path, timeout=600)
    state = json.loads((tmp_path / "work" / "gpu_session.json").read_text())
    assert state["calls"][0]["package"].startswith(str(tmp_path / "site"))
    assert "every run of the preset is finished" in (tmp_path / "out" / "session.log").read_text()


def test_a_large_archive_travels_in_parts(tmp_path, monkeypatch):
    from metacurriculum.benchmarks.experiments import gpu_carry

    monkeypatch.setattr(gpu_carry, "PART_BYTES", 10)
    archive = tmp_path / "out" / ARCHIVE
    archive.parent.mkdir()
    archive.write_bytes(bytes(range(35)))
    parts = gpu_carry.split(archive)
    assert [p.name for p in parts] == [f"{ARCHIVE}.part{i}" for i in range(4)]
    assert not archive.exists()
    whole = gpu_carry.joined(tmp_path / "out", tmp_path / "scratch")
    assert whole.read_bytes() == bytes(range(35))
    with pytest.raises(SystemExit, match="more than 2 parts"):
        gpu_carry.split(whole, parts=2)
