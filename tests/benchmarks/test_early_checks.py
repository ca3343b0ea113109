"""Settings that once failed only after training, or said the wrong thing, now fail first.

Each case runs the real command and checks that it stops before any run folder exists,
with one line that names the setting and the fix.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from bench_helpers import ANALYTIC, TINY_ANALYTIC

from metacurriculum.benchmarks import BenchmarkError, run_benchmark
from metacurriculum.benchmarks.presets import PRESETS
from metacurriculum.cli import main

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
TINY = "MetaCurriculum-Tiny-v0"
ANALYTIC_ARGS = ["--env", ANALYTIC, "--teachers", "none", "--seeds", "1", "--no-plots"]
ANALYTIC_ARGS += ["--env-kwargs", ",".join(f"{k}={v}" for k, v in TINY_ANALYTIC.items())]
ANALYTIC_ARGS += ["--eval-tasks", "4"]


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "metacurriculum.cli", *args]


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--eval-seed", "-5"], r"eval_seed=-5 \(--eval-seed\) must be an integer >= 0"),
        (
            ["--env-kwargs", "hidden=-3"],
            rf"bad env settings for {TINY}: StudentConfig.hidden must be >= 1, got -3",
        ),
        (
            ["--device", "tpu"],
            rf"bad env settings for {TINY}: StudentConfig.device='tpu' is not supported",
        ),
        (["--data-root", "EMPTY"], rf"{TINY}: Omniglot data not found"),
    ],
    ids=["eval-seed", "hidden", "device", "missing-data"],
)
def test_a_bad_setting_fails_before_any_run(options, says, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    options = [str(tmp_path / "empty") if o == "EMPTY" else o for o in options]
    out = tmp_path / "runs"
    argv = ["bench", "--env", TINY, "--teachers", "none", "--seeds", "1", "--no-plots"]
    assert main([*argv, "--eval-tasks", "2", *options, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert re.search(says, err), err
    assert not out.exists()  # nothing ran, nothing was written


def test_missing_data_names_the_command_line_options(tmp_path, capsys):
    argv = ["bench", "--env", TINY, "--teachers", "none", "--seeds", "1"]
    argv += ["--data-root", str(tmp_path), "--out", str(tmp_path / "runs")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "--data-root PATH" in err and "pass --download" in err
    assert "(or pass root=)" not in err and "pass download=True" not in err


def test_download_without_a_network_is_one_line(tmp_path, monkeypatch, capsys):
    """No network (a proxy that refuses every connection): one line saying what failed
    and what to do instead, not urllib's traceback."""
    unreachable = "http://127.0.0.1:9"
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, unreachable)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    args = ["bench", "--env", TINY, "--teachers", "none", "--seeds", "1", "--download"]
    args += ["--data-root", str(tmp_path / "data"), "--out", str(tmp_path / "runs")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"{TINY}: downloading the omniglot data failed" in err
    assert "copy the data to a folder on this machine and pass --data-root" in err
    assert not (tmp_path / "runs").exists()


def test_thread_counts_out_of_range_are_refused(tmp_path, capsys):
    """``--threads 0`` was silently the default; ``--threads 100000`` crashed the real
    command (rc 139)."""
    out = str(tmp_path / "runs")
    assert main(["bench", *ANALYTIC_ARGS, "--threads", "0", "--out", out]) == 1
    assert "--threads 0 must be >= 1" in capsys.readouterr().err
    args = ["bench", *ANALYTIC_ARGS, "--threads", "100000", "--out", out]
    done = subprocess.run(command(*args), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert re.search(r"--threads 100000 is more than the \d+ cores", done.stderr), done.stderr
    assert not (tmp_path / "runs").exists()


def test_an_empty_output_folder_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["bench", *ANALYTIC_ARGS, "--out", ""]) == 1
    assert "the output folder is empty (--out '')" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written into the current folder


def test_a_module_in_the_current_folder_is_imported_by_the_console_script(tmp_path):
    """``--import mymodule`` with ``mymodule.py`` in the current folder, through the
    ``metacurriculum`` script (whose path starts at its own folder), on two workers."""
    (tmp_path / "mymodule.py").write_text(
        "from metacurriculum.teachers import OmegaTeacher, register_teacher\n\n\n"
        "class Halfway(OmegaTeacher):\n"
        "    def choose_omega(self, observation, info):\n"
        "        return (info['omega_min'] + info['omega_max']) / 2\n\n\n"
        "register_teacher('halfway', Halfway)\n"
    )
    script = Path(sys.executable).parent / "metacurriculum"
    if not script.exists():
        pytest.skip(f"no console script at {script}")
    args = [*ANALYTIC_ARGS, "--teachers", "halfway,none", "--seeds", "2", "--workers", "2"]
    args += ["--threads", "1", "--import", "mymodule", "--out", "runs"]
    done = subprocess.run(
        [str(script), "bench", *args], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert len(list(tmp_path.glob(f"runs/{ANALYTIC}/halfway/seed_*/done.json"))) == 2


def test_a_dead_worker_says_to_keep_the_threads(tiny_config, faulty_teachers, tmp_path):
    """A worker killed mid-run (as by the OOM killer): the advice keeps the runs' threads,
    so the rerun with fewer workers computes the numbers the first attempt would have."""
    marker = tmp_path / "crashes"
    marker.mkdir()
    config = tiny_config(
        teachers=("crashing",),
        seeds=(0, 1),
        workers=2,
        threads=1,
        imports=(faulty_teachers,),
        teacher_kwargs={"crashing": {"marker_dir": str(marker)}},
    )
    with pytest.raises(BenchmarkError, match=r"a worker process died") as error:
        run_benchmark(config)
    assert "rerun with fewer --workers and --threads 1" in str(error.value)


def test_train_teacher_checks_its_output_and_env_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for args, says in (
        (["--env", ANALYTIC, "--out", "/proc/no/x.zip"], "cannot write /proc/no/x.zip"),
        (["--env", "MetaCurriculum-Tny-v0"], "Did you mean 'MetaCurriculum-Tiny-v0'"),
    ):
        argv = ["train-teacher", "--algo", "ppo", "--timesteps", "8", "--no-progress", *args]
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err, err
        assert not list(tmp_path.iterdir())  # no model, no partial model


def test_the_reduced_presets_time_is_the_measured_one():
    """``metacurriculum presets`` quotes the runs and wall time the README measured."""
    readme = (ROOT / "README.md").read_text()
    runs, minutes, seconds = re.search(
        r"(\d+) runs in (\d+) min (\d+) s of wall time on 2 free cores", readme
    ).groups()
    preset = PRESETS["reduced"]
    assert int(runs) == len(preset.seeds) * len(preset.teachers)
    wall = round(int(minutes) + int(seconds) / 60)
    assert f"{runs} runs in {wall} min on 2 free CPU cores" in preset.description
