"""The ``ray`` executor on a local Ray (2 CPUs, no dashboard), started once per session."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from bench_helpers import ANALYTIC, run_numbers

from metacurriculum.benchmarks import BenchmarkError, RunSpec, run_benchmark, tables
from metacurriculum.benchmarks.benchmark import Progress
from metacurriculum.benchmarks.ray_executor import RayExecutor, _gpus, check_reachable
from metacurriculum.benchmarks.run_folders import RUN_FILES, unfinished_reason

HERE = Path(__file__).parent
#: Files whose bytes hold no timing and must be equal between executors.
EXACT = ("config.json", "evaluation.json", "student.pt")


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray whose workers can import the test helpers (``faulty_teacher``)."""
    import ray

    env = {
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        "RAY_DEDUP_LOGS": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    before = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    ray.init(
        num_cpus=2,
        num_gpus=0,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=256 * 2**20,
        _temp_dir=temp,
    )
    try:
        yield ray
    finally:
        ray.shutdown()
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(temp, ignore_errors=True)


def folders(out: str) -> list[Path]:
    return sorted(p.parent for p in Path(out).glob("*/*/seed_*/done.json"))


def test_ray_gives_the_results_of_the_inline_executor(
    ray_cluster, tiny_config, tmp_path, monkeypatch
):
    settings = {"teachers": ("none", "random"), "seeds": (0, 1), "threads": 1}
    inline = tiny_config(out=str(tmp_path / "inline"), executor="inline", **settings)
    on_ray = tiny_config(out=str(tmp_path / "ray"), executor="ray", workers=None, **settings)
    run_benchmark(inline)
    steps, step = {}, Progress.step
    monkeypatch.setattr(
        Progress,
        "step",
        lambda self, spec, *at: (steps.update({spec.name: at}), step(self, spec, *at)),
    )
    run_benchmark(on_ray, progress=True)
    for spec in on_ray.specs():  # every run's last meta-step reached the bar
        done = json.loads((spec.folder(on_ray.out) / "done.json").read_text())
        assert steps[spec.name][0] == done["meta_steps"]
    pairs = list(zip(folders(inline.out), folders(on_ray.out), strict=True))
    assert len(pairs) == 4
    for a, b in pairs:
        assert a.relative_to(inline.out) == b.relative_to(on_ray.out)
        assert sorted(p.name for p in b.iterdir()) == sorted(RUN_FILES)
        assert {n: (a / n).read_bytes() for n in EXACT} == {n: (b / n).read_bytes() for n in EXACT}
        assert run_numbers(a) == run_numbers(b)
    for out in (inline.out, on_ray.out):
        tables.report(out)
    for name in ("runs.csv", "results.csv"):
        assert (Path(inline.out) / name).read_bytes() == (Path(on_ray.out) / name).read_bytes()


def test_ray_gives_the_results_of_the_inline_executor_on_the_maml_student(
    ray_cluster, tiny_config, tmp_path
):
    """The real MAML student (Omniglot data at ``$METACURRICULUM_DATA``, which Ray's
    workers inherit)."""
    settings = {"envs": ("MetaCurriculum-Tiny-v0",), "teachers": ("adaptive",), "env_kwargs": {}}
    settings |= {"seeds": (0, 1), "eval_tasks": 6, "threads": 1}
    inline = tiny_config(out=str(tmp_path / "inline"), executor="inline", **settings)
    on_ray = tiny_config(out=str(tmp_path / "ray"), executor="ray", **settings)
    run_benchmark(inline)
    run_benchmark(on_ray)
    pairs = list(zip(folders(inline.out), folders(on_ray.out), strict=True))
    assert len(pairs) == 2
    for a, b in pairs:
        assert {n: (a / n).read_bytes() for n in EXACT} == {n: (b / n).read_bytes() for n in EXACT}
        assert run_numbers(a) == run_numbers(b)


def test_ray_resumes_only_the_unfinished_runs(ray_cluster, tiny_config, caplog):
    config = tiny_config(teachers=("none", "random"), seeds=(0,), executor="ray", threads=1)
    run_benchmark(config)
    cut, kept = (spec.folder(config.out) for spec in config.specs())
    (cut / "done.json").unlink()  # as if interrupted
    kept_files = {p.name: p.stat().st_mtime_ns for p in kept.iterdir()}
    cut_numbers = run_numbers(cut)
    bigger = tiny_config(teachers=("none", "random"), seeds=(0, 1), executor="ray", threads=1)
    with caplog.at_level(logging.INFO, "metacurriculum"):
        run_benchmark(bigger)
    assert "4 runs, 1 finished before, 3 to do" in caplog.text
    assert {p.name: p.stat().st_mtime_ns for p in kept.iterdir()} == kept_files
    assert run_numbers(cut) == cut_numbers
    assert all(unfinished_reason(spec.folder(config.out)) is None for spec in bigger.specs())


def test_a_run_that_raises_is_reported_and_the_others_finish(
    ray_cluster, tiny_config, faulty_teachers
):
    config = tiny_config(
        teachers=("none", "raising"), seeds=(0, 1), executor="ray", imports=(faulty_teachers,)
    )
    with pytest.raises(BenchmarkError, match=r"1 of 4 runs failed(.|\n)*injected failure"):
        run_benchmark(config)
    for spec in config.specs():
        folder = spec.folder(config.out)
        if (spec.teacher, spec.seed) == ("raising", 1):
            error = (folder / "error.txt").read_text()
            assert "Traceback" in error and "RuntimeError: injected failure at step 3" in error
            assert not (folder / "done.json").exists()
        else:
            assert unfinished_reason(folder) is None and not (folder / "error.txt").exists()


def test_a_killed_worker_is_retried_a_bounded_number_of_times(
    ray_cluster, tiny_config, faulty_teachers, tmp_path, monkeypatch
):
    """Seed 0's worker dies once (retried, then finished), seed 1's twice (reported)."""
    monkeypatch.setattr(RayExecutor, "max_retries", 1)
    markers = tmp_path / "crashes"
    markers.mkdir()
    config = tiny_config(
        teachers=("none", "crashing"),
        seeds=(0, 1),
        teacher_kwargs={"crashing": {"marker_dir": str(markers)}},
        executor="ray",
        imports=(faulty_teachers,),
    )
    with pytest.raises(BenchmarkError, match=r"1 of 4 runs failed(.|\n)*WorkerCrashedError"):
        run_benchmark(config)
    assert sorted(p.name for p in markers.iterdir()) == ["seed_0.0", "seed_1.0", "seed_1.1"]
    for spec in config.specs():
        folder = spec.folder(config.out)
        if (spec.teacher, spec.seed) == ("crashing", 1):
            assert "WorkerCrashedError" in (folder / "error.txt").read_text()
        else:
            assert unfinished_reason(folder) is None
    summary = json.loads((Path(config.out) / config.specs()[1].name / "done.json").read_text())
    assert summary["env_steps"] == 10  # the retried run ran whole


def test_gpus_on_a_cluster_without_any_fail_at_once(ray_cluster, tiny_config):
    config = tiny_config(executor="ray", gpus_per_run=0.5)
    with pytest.raises(BenchmarkError, match=r"0.5 GPU.*the Ray cluster has no GPU"):
        run_benchmark(config)
    assert not list(Path(config.out).glob("*/*/seed_*"))


def session_members(sid: int) -> list[str]:
    """The live processes of the session ``sid`` (the command and what it started)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # exited meanwhile
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            members.append(stat.parent.name)
    return members


@pytest.mark.parametrize("target", ["command", "group"])
def test_the_command_starts_its_own_ray_and_stops_it_on_sigterm(tmp_path, target):
    """SIGTERM while Ray's tasks run, to the command or to its whole process group (as
    Slurm sends it, reaching Ray's own processes too): exit 143 within seconds (the
    group once took 8-9 s), every process of the local Ray gone, no temporary run folder
    left (killed tasks once left theirs), no run left finished."""
    command = [sys.executable, "-m", "metacurriculum.cli", "bench", "--env", ANALYTIC]
    command += ["--teachers", "slow-random", "--seeds", "2", "--no-plots", "--eval-tasks", "8"]
    command += ["--import", "slow_teacher", "--env-kwargs", "budget=400,n_max=5"]
    command += ["--executor", "ray", "--out", str(tmp_path / "runs")]
    temp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        "TMPDIR": str(temp),  # the tasks' temporary folders, apart from other jobs'
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.pop("RAY_ADDRESS", None)
    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        process = subprocess.Popen(command, env=env, stderr=stderr, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while not list(temp.glob("metacurriculum-*/*/*/seed_*/steps.jsonl")):  # inside runs
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the Ray tasks never started their runs"
            time.sleep(0.1)
        time.sleep(0.3)
        sent = time.monotonic()
        if target == "group":
            os.killpg(process.pid, signal.SIGTERM)
        else:
            process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=60)
        took = time.monotonic() - sent
        deadline = time.monotonic() + 5
        while session_members(process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = session_members(process.pid)
        folders = sorted(p.name for p in temp.glob("metacurriculum-*"))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)
    stderr = log.read_text()
    assert status == 143, stderr
    assert took < 5, f"exit took {took:.1f} s"
    assert not left, f"processes outlived the command: {left}"
    assert not folders, f"temporary run folders left: {folders}"
    assert "interrupted (SIGTERM)" in stderr and "Traceback" not in stderr, stderr
    assert not list((tmp_path / "runs").glob("*/*/seed_*/done.json"))


@pytest.mark.parametrize(
    ("device", "requested", "available", "expected"),
    [
        ("auto", None, 2, 1.0),  # CUDA when present: a whole GPU by default
        ("cuda", 0.25, 1, 0.25),  # four runs share a GPU
        ("cpu", None, 2, 0.0),  # CPU runs leave the GPUs to others
        ("auto", None, 0, 0.0),  # no GPU anywhere: the run takes the CPU
    ],
    ids=["auto", "fraction", "cpu", "no-gpu"],
)
def test_gpus_per_run(device, requested, available, expected):
    spec = RunSpec(ANALYTIC, "none", 0, env_kwargs={"device": device})
    assert _gpus(spec, requested, available) == expected
    if available == 0:
        with pytest.raises(BenchmarkError, match="cluster has no GPU"):
            _gpus(RunSpec(ANALYTIC, "none", 0, env_kwargs={"device": "cuda"}), None, 0)


def test_an_address_where_nothing_listens_fails_in_seconds():
    with pytest.raises(BenchmarkError, match=r"nothing answers at the Ray address '127.0.0.1:1'"):
        check_reachable("127.0.0.1:1")
    for address in ("auto", "local", "ray://head:10001"):  # left to Ray
        check_reachable(address)


def test_ray_runs_log_to_tensorboard_as_inline_ones(ray_cluster, tiny_config, tmp_path):
    pytest.importorskip("tensorboard")
    from test_tracking import same, scalars

    from metacurriculum.benchmarks.tracking import Tracking

    settings = {"teachers": ("adaptive",), "seeds": (0,), "threads": 1}
    inline = tiny_config(
        out=str(tmp_path / "inline"),
        executor="inline",
        **settings,
        tracking=Tracking(tensorboard=str(tmp_path / "a")),
    )
    on_ray = tiny_config(
        out=str(tmp_path / "ray"),
        executor="ray",
        **settings,
        tracking=Tracking(tensorboard=str(tmp_path / "b")),
    )
    run_benchmark(inline)
    run_benchmark(on_ray)
    (spec,) = inline.specs()
    expected, logged = scalars(tmp_path / "a" / spec.name), scalars(tmp_path / "b" / spec.name)
    assert set(logged) == set(expected) and "teacher/up_fraction" in logged
    for tag, points in expected.items():
        assert same(logged[tag], points), tag
    assert sorted(p.name for p in spec.folder(on_ray.out).iterdir()) == sorted(RUN_FILES)
