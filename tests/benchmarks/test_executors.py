"""The executor seam: a backend is one class; the harness above it does not change."""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import pytest
from bench_helpers import ANALYTIC, TINY_ANALYTIC, run_numbers

from metacurriculum import cli
from metacurriculum.benchmarks import BenchmarkError, RunSpec, execute_run, run_benchmark
from metacurriculum.benchmarks import executors as executors_module
from metacurriculum.benchmarks.executors import (
    EXECUTORS,
    Job,
    RunEvents,
    register_executor,
    run_contents,
    write_run,
)
from metacurriculum.benchmarks.run_folders import RUN_FILES, unfinished_reason


class FakeExecutor:
    """A new backend as one would write it: each run in a folder of its own, shipped back as
    bytes and written by the driver; the runs of the ``random`` teacher fail."""

    calls: ClassVar[list[tuple[list[str], Job]]] = []

    def run(self, pending: Sequence[RunSpec], job: Job, events: RunEvents) -> None:
        FakeExecutor.calls.append(([spec.name for spec in pending], job))
        for spec in pending:
            if spec.teacher == "random":
                events.failed(spec, "Traceback ...\nRuntimeError: the fake backend lost it")
                continue
            with tempfile.TemporaryDirectory() as elsewhere:
                summary = execute_run(spec, elsewhere, on_step=events.step)
                contents = run_contents(spec.folder(elsewhere))
            write_run(spec.folder(job.out), contents)
            events.finished(spec, summary)


@pytest.fixture
def fake(monkeypatch) -> type[FakeExecutor]:
    monkeypatch.setitem(EXECUTORS, "fake", FakeExecutor)
    monkeypatch.setattr(FakeExecutor, "calls", [])
    return FakeExecutor


def test_a_new_backend_runs_reports_failures_and_resumes(fake, tiny_config, tmp_path, caplog):
    inline = tiny_config(out=str(tmp_path / "inline"), executor="inline")
    run_benchmark(inline)
    config = tiny_config(out=str(tmp_path / "fake"), executor="fake", threads=1)
    with caplog.at_level(logging.INFO, "metacurriculum"):
        with pytest.raises(BenchmarkError, match=r"2 of 6 runs failed(.|\n)*fake backend lost"):
            run_benchmark(config)
    ((names, job),) = fake.calls
    assert len(names) == 6 and job.out == config.out and job.threads == 1
    assert caplog.text.count("FAILED") == 2
    for spec in config.specs():
        folder = spec.folder(config.out)
        if spec.teacher == "random":
            assert "fake backend lost it" in (folder / "error.txt").read_text()
            assert unfinished_reason(folder) == "no done.json"
        else:
            assert unfinished_reason(folder) is None
            assert run_numbers(folder) == run_numbers(spec.folder(inline.out))

    with pytest.raises(BenchmarkError, match="2 of 2 runs failed"):
        run_benchmark(config)  # only the unfinished runs are handed out again
    assert fake.calls[1][0] == [s.name for s in config.specs() if s.teacher == "random"]


def test_an_unknown_executor_fails_before_anything_runs(tiny_config):
    config = tiny_config(executor="rey")
    with pytest.raises(BenchmarkError, match=r"unknown executor 'rey'\. Did you mean 'ray'"):
        run_benchmark(config)
    assert not Path(config.out).exists()
    with pytest.raises(ValueError, match="already registered"):
        register_executor("inline", FakeExecutor)


def test_the_command_line_chooses_the_executor(fake, tmp_path, capsys):
    argv = ["bench", "--env", ANALYTIC, "--teachers", "none", "--seeds", "1", "--no-plots"]
    argv += ["--env-kwargs", ",".join(f"{k}={v}" for k, v in TINY_ANALYTIC.items())]
    argv += ["--eval-tasks", "4", "--out", str(tmp_path), "--executor", "fake"]
    argv += ["--ray-address", "auto", "--gpus-per-run", "0.5"]
    assert cli.main(argv) == 0
    ((names, job),) = fake.calls
    assert names == [f"{ANALYTIC}/none/seed_0"]
    assert (job.config.executor, job.config.ray_address, job.config.gpus_per_run) == (
        "fake",
        "auto",
        0.5,
    )
    assert cli.main([*argv[:-6], "--executor", "inline"]) == 0  # finished: nothing to do
    assert len(fake.calls) == 1


def test_write_run_writes_done_json_last_and_refuses_missing_files(tmp_path, monkeypatch):
    spec = RunSpec(ANALYTIC, "none", 0, env_kwargs=TINY_ANALYTIC, eval_tasks=3)
    execute_run(spec, tmp_path / "worker")
    contents = run_contents(spec.folder(tmp_path / "worker"))
    order, replace = [], executors_module.os.replace
    monkeypatch.setattr(
        executors_module.os, "replace", lambda a, b: (order.append(Path(b).name), replace(a, b))
    )
    folder = spec.folder(tmp_path / "driver")
    write_run(folder, contents)
    assert order[-1] == "done.json" and sorted(order) == sorted(RUN_FILES)
    assert unfinished_reason(folder) is None
    assert {name: (folder / name).read_bytes() for name in RUN_FILES} == contents
    with pytest.raises(BenchmarkError, match=r"lack.*student\.pt"):
        write_run(folder, {k: v for k, v in contents.items() if k != "student.pt"})


def test_importing_the_package_never_imports_ray():
    code = (
        "import sys, metacurriculum, metacurriculum.cli, metacurriculum.benchmarks\n"
        "import metacurriculum.benchmarks.ray_executor\n"
        "assert 'ray' not in sys.modules, sorted(m for m in sys.modules if 'ray' in m)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_ray_installed_the_error_names_the_extra(monkeypatch, tiny_config):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(BenchmarkError, match=r"metacurriculum\[ray\]"):
        run_benchmark(tiny_config(executor="ray"))
