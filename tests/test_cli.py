"""The ``metacurriculum`` command: parsing, subcommands, errors, the console script."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

import metacurriculum
from metacurriculum.benchmarks.plots import PLOTS
from metacurriculum.cli import main, parse_kwargs, parse_seeds, parse_teacher_kwargs
from metacurriculum.envs import MetaCurriculumConfig, list_families, make_family
from metacurriculum.teachers import list_teachers

ANALYTIC = "MetaCurriculum-Analytic-v0"
TINY = ["--env", ANALYTIC, "--env-kwargs", "budget=40,n_max=5", "--eval-tasks", "8"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("budget=200,device=cpu", {"budget": 200, "device": "cpu"}),
        ("first_order=true,meta_lr=1e-3", {"first_order": True, "meta_lr": 0.001}),
        ("ladder=[1, 3, 5],data_root=None", {"ladder": [1, 3, 5], "data_root": None}),
        ("name='a,b'", {"name": "a,b"}),
    ],
)
def test_parse_kwargs(text, expected):
    assert parse_kwargs(text) == expected


def test_parse_teacher_kwargs_groups_items_by_the_last_named_teacher():
    parsed = parse_teacher_kwargs("adaptive:step=1,window=4,static:threshold=0.3,sb3:path=a:b.zip")
    assert parsed == {
        "adaptive": {"step": 1, "window": 4},
        "static": {"threshold": 0.3},
        "sb3": {"path": "a:b.zip"},
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [("3", (0, 1, 2)), ("0,3,7", (0, 3, 7)), ("10-12", (10, 11, 12)), ("4,", (4,))],
)
def test_parse_seeds(text, expected):
    assert parse_seeds(text) == expected


@pytest.mark.parametrize(
    ("parse", "text", "match"),
    [
        (parse_kwargs, "budget", "not KEY=VALUE"),
        (parse_kwargs, "=3", "not KEY=VALUE"),
        (parse_teacher_kwargs, "step=1", "names no teacher"),
        (parse_seeds, "five", "a count"),
        (parse_seeds, "0", ">= 1"),
        (parse_seeds, "5-2", "the range is empty; write LOW-HIGH with LOW <= HIGH, e.g. 2-5"),
        (parse_seeds, "10" * 12, "more than 10000"),
        (parse_seeds, "0-" + "9" * 30, "more than 10000"),
        (parse_seeds, "0,-1", "seeds must be >= 0"),
        (parse_seeds, ",", "names no seed"),
    ],
)
def test_malformed_values_are_clear_errors(parse, text, match):
    with pytest.raises(argparse.ArgumentTypeError, match=match):
        parse(text)


@pytest.mark.parametrize("argv", [["--help"], ["bench", "--help"]], ids=["top", "bench"])
def test_help_lists_teachers_env_ids_and_presets(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for name in [*list_teachers(), *metacurriculum.ENV_SPECS, "paper-omniglot20", "reduced"]:
        assert name in text
    if argv[0] == "bench":
        for option in ("--env-kwargs", "--teacher-kwargs", "--seeds", "--workers", "--eval-tasks"):
            assert option in text


def test_bench_then_table_and_plot(tmp_path, capsys):
    out = tmp_path / "runs"
    argv = ["bench", *TINY, "--teachers", "none,adaptive", "--seeds", "2", "--workers", "1"]
    assert main([*argv, "--out", str(out), "--teacher-kwargs", "adaptive:step=1"]) == 0
    printed = capsys.readouterr().out
    assert f"### {ANALYTIC}" in printed and "| adaptive | 2 |" in printed
    assert (out / "results.md").is_file() and (out / "results.csv").is_file()
    assert len(list((out / "plots").glob("*.png"))) == len(PLOTS)
    for command in ("table", "report"):
        assert main([command, str(out)]) == 0
        assert "| none | 2 |" in capsys.readouterr().out
    assert main(["plot", str(out), "--out", str(tmp_path / "pngs")]) == 0
    assert len(list((tmp_path / "pngs").glob("*.png"))) == len(PLOTS)


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--teachers", "nope"], "unknown teacher 'nope'"),
        (["--teachers", "none", "--env", "MetaCurriculum-Nope-v0"], "unknown env id"),
        (["--teachers", "none", "--env-kwargs", "hiden=3"], "did you mean 'hidden'"),
        (["--teachers", "none", "--preset", "nope"], "unknown preset 'nope'"),
        (["--teachers", "none", "--env-kwargs", "inner_lr=fast"], "inner_lr='fast' must be a real"),
        (["--teachers", "none", "--env-kwargs", "meta_lr=None"], "meta_lr=None must be a real"),
        (["--teachers", "none", "--env-kwargs", "omega_step=one"], "omega_step='one' must be"),
        (
            ["--teachers", "none", "--env-kwargs", "divergence_threshold=nan"],
            "divergence_threshold=nan must be a finite number > 0",
        ),
    ],
    ids=[
        "teacher",
        "env",
        "env-kwarg",
        "preset",
        "str-lr",
        "none-lr",
        "str-step",
        "nan-threshold",
    ],
)
def test_bench_errors_name_the_bad_value(argv, match, tmp_path, capsys):
    assert main(["bench", *TINY, *argv, "--out", str(tmp_path)]) == 1
    assert match in capsys.readouterr().err


@pytest.mark.parametrize(
    ("seeds", "match"),
    [("5-2", "the range is empty"), ("9" * 25, "more than 10000")],
    ids=["reversed", "huge"],
)
def test_bad_seeds_exit_with_usage_before_running(seeds, match, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", *TINY, "--seeds", seeds, "--out", str(tmp_path / "runs")])
    assert exit_info.value.code == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_malformed_option_exits_with_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--env-kwargs", "budget"])
    assert exit_info.value.code == 2
    assert "not KEY=VALUE" in capsys.readouterr().err


def test_table_of_an_empty_folder_says_what_to_do(tmp_path, capsys):
    assert main(["table", str(tmp_path)]) == 1
    assert "no finished run" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("envs", "MetaCurriculum-Omniglot20-v0"),
        ("teachers", "tscl-window"),
        ("presets", "paper-mnist"),
        ("families", "omniglot-multi"),
    ],
)
def test_listings(command, expected, capsys):
    assert main([command]) == 0
    assert expected in capsys.readouterr().out


def test_envs_lists_each_ids_family_and_its_parameters(capsys):
    assert main(["envs"]) == 0
    text = capsys.readouterr().out
    blocks = dict((block.splitlines()[0], block) for block in re.split(r"\n(?=\S)", text.strip()))
    assert set(blocks) == set(metacurriculum.ENV_SPECS)
    assert "family classes: ω = classes [2, 20], hardest high" in blocks[ANALYTIC]
    assert "family classes: ω = classes [2, 5], hardest high" in blocks["MetaCurriculum-Tiny-v0"]
    multi = blocks["MetaCurriculum-AnalyticMulti-v0"]
    assert "family omniglot-multi: ω = classes [2, 20], hardest high; " in multi
    assert "rotation [0, 60], hardest high; noise [0, 0.5], hardest high" in multi


def test_families_lists_each_family_with_its_parameters(capsys):
    assert main(["families"]) == 0
    text = capsys.readouterr().out
    for name in list_families():
        family = make_family(MetaCurriculumConfig(family=name))
        assert f"\n{name}: " in f"\n{text}"
        for parameter in family.describe():
            low, high = parameter["low"], parameter["high"]
            hardest = parameter["hardest"]
            assert f"    {parameter['name']} [{low:g}, {high:g}], hardest {hardest}" in text
    assert "omniglot-multi: ω = (classes, rotation, noise)" in text


def test_console_script_runs_a_parallel_benchmark(tmp_path):
    script = Path(sys.executable).with_name("metacurriculum")
    argv = [str(script), "bench", *TINY, "--teachers", "none,random", "--seeds", "1"]
    result = subprocess.run(
        [*argv, "--workers", "2", "--no-plots", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "| random | 1 |" in result.stdout
    assert "[2/2]" in result.stderr  # plain progress lines when not a terminal
    assert not (tmp_path / "plots").exists()


def test_data_root_and_download_become_env_settings():
    from metacurriculum.cli import _env_kwargs, build_parser

    args = build_parser().parse_args(
        ["bench", "--env-kwargs", "hidden=8", "--data-root", "/data", "--download"]
    )
    assert _env_kwargs(args) == {"hidden": 8, "data_root": "/data", "download": True}
    args = build_parser().parse_args(["bench"])
    assert _env_kwargs(args) == {}


def test_train_teacher_then_bench_it(tmp_path, capsys):
    pytest.importorskip("stable_baselines3")
    model = tmp_path / "ppo.zip"
    argv = ["--env", "MetaCurriculum-Analytic-v0", "--env-kwargs", "budget=64"]
    assert (
        main(
            [
                "train-teacher",
                "--algo",
                "ppo",
                *argv,
                "--timesteps",
                "32",
                "--out",
                str(model),
                "--no-progress",
            ]
        )
        == 0
    )
    assert model.exists() and "--teachers sb3" in capsys.readouterr().out
    out = tmp_path / "runs"
    bench = ["bench", *argv, "--teachers", "sb3,none", "--seeds", "1", "--workers", "1"]
    bench += [
        "--teacher-kwargs",
        f"sb3:path={model},algo=ppo",
        "--out",
        str(out),
        "--eval-tasks",
        "5",
        "--no-plots",
    ]
    assert main(bench) == 0
    assert (out / "MetaCurriculum-Analytic-v0" / "sb3" / "seed_0" / "done.json").exists()


def test_train_teacher_rejects_a_mismatched_algorithm(tmp_path, capsys):
    pytest.importorskip("stable_baselines3")
    argv = ["train-teacher", "--algo", "sac", "--env", "MetaCurriculum-Analytic-v0"]
    argv += ["--env-kwargs", "action_type=discrete", "--out", str(tmp_path / "m.zip")]
    assert main(argv) == 1
    assert "action_type='continuous'" in capsys.readouterr().err
