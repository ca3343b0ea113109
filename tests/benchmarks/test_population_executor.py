"""The population executor: an env's runs stepped as one population, written as one run each.

Its run folders must equal the inline executor's, run for run (on the CPU's loop path
the same bits, in float32), and resume, caps and failures must work per run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from bench_helpers import ANALYTIC, TINY_ANALYTIC, run_numbers

from metacurriculum import cli
from metacurriculum.benchmarks import BenchmarkError, RunSpec, expand, run_benchmark
from metacurriculum.benchmarks import population_executor as module
from metacurriculum.benchmarks.benchmark import default_executor
from metacurriculum.benchmarks.population_executor import populations
from metacurriculum.benchmarks.run_folders import RUN_FILES, unfinished_reason

TINY_MAML = "MetaCurriculum-Tiny-v0"
#: The tiny MAML env, 6 env steps a run.
TINY_MAML_KWARGS = {
    "hidden": 4,
    "depth": 2,
    "meta_batch": 2,
    "q_query": 1,
    "inner_steps": 1,
    "update_rate": 1,
    "budget": 6,
    "val_tasks": 2,
    "target_tasks": 2,
    "device": "cpu",
}
#: With these, the student of teacher "none" and seed 0 diverges at its fifth step; those
#: of seed 1 and of teacher "random" with seed 0 do not.
DIVERGING = {**TINY_MAML_KWARGS, "meta_lr": 0.5, "divergence_threshold": 10.0}
#: ``done.json`` keys that hold times, not results.
TIMES = ("train_seconds", "eval_seconds", "finished")


def done_numbers(folder: Path) -> dict:
    done = json.loads((folder / "done.json").read_text())
    return {key: value for key, value in done.items() if key not in TIMES}


def assert_same_runs(specs: list[RunSpec], got: str, expected: str) -> None:
    for spec in specs:
        a, b = spec.folder(got), spec.folder(expected)
        assert unfinished_reason(a) is None, spec.name
        assert run_numbers(a) == run_numbers(b), spec.name
        assert done_numbers(a) == done_numbers(b), spec.name
        assert json.loads((a / "config.json").read_text()) == json.loads(
            (b / "config.json").read_text()
        )


@pytest.fixture
def sizes(monkeypatch) -> list[int]:
    """The sizes of the populations built, in order."""
    built: list[int] = []
    original = module.MetaCurriculumVectorEnv

    def make(num_envs, *args, **kwargs):
        built.append(num_envs)
        return original(num_envs, *args, **kwargs)

    monkeypatch.setattr(module, "MetaCurriculumVectorEnv", make)
    return built


@pytest.mark.parametrize(
    ("env_id", "env_kwargs"),
    [(ANALYTIC, TINY_ANALYTIC), (TINY_MAML, TINY_MAML_KWARGS)],
    ids=["analytic", "tiny-maml"],
)
def test_population_runs_equal_inline_runs(env_id, env_kwargs, tiny_config, tmp_path, sizes):
    fields = {"envs": (env_id,), "teachers": ("random", "adaptive"), "env_kwargs": env_kwargs}
    inline = tiny_config(**fields, out=str(tmp_path / "inline"), executor="inline", threads=1)
    config = tiny_config(**fields, out=str(tmp_path / "pop"), executor="population", threads=1)
    run_benchmark(inline)
    run_benchmark(config)
    assert sizes == [4]
    assert_same_runs(config.specs(), config.out, inline.out)
    for spec in config.specs():
        assert sorted(p.name for p in spec.folder(config.out).iterdir()) == sorted(RUN_FILES)
        student = spec.folder(config.out) / "student.pt"
        assert student.read_bytes() == (spec.folder(inline.out) / "student.pt").read_bytes()


def test_a_diverged_run_is_recorded_and_the_others_finish(tiny_config, tmp_path, sizes):
    fields = {"envs": (TINY_MAML,), "teachers": ("none", "random"), "seeds": (0, 1)}
    fields["env_kwargs"] = DIVERGING
    inline = tiny_config(**fields, out=str(tmp_path / "inline"), executor="inline", threads=1)
    config = tiny_config(**fields, out=str(tmp_path / "pop"), executor="population", threads=1)
    run_benchmark(inline)
    run_benchmark(config)
    assert sizes == [4]
    assert_same_runs(config.specs(), config.out, inline.out)
    ended = {
        (spec.teacher, spec.seed): (done["diverged"], done["env_steps"])
        for spec in config.specs()
        for done in [done_numbers(spec.folder(config.out))]
    }
    assert ended == {
        ("none", 0): (True, 5),
        ("random", 0): (False, 6),
        ("none", 1): (False, 6),
        ("random", 1): (False, 6),
    }


def test_resume_makes_a_population_of_the_unfinished_runs(tiny_config, tmp_path, sizes):
    inline = tiny_config(out=str(tmp_path / "inline"), executor="inline")
    run_benchmark(inline)
    run_benchmark(tiny_config(seeds=(0,), executor="inline"))
    config = tiny_config(executor="population")
    done = [spec.folder(config.out) / "done.json" for spec in config.specs()[:3]]
    finished = [path.read_bytes() for path in done]
    run_benchmark(config)
    assert sizes == [3]  # seed 1's three teachers
    assert_same_runs(config.specs(), config.out, inline.out)
    assert [path.read_bytes() for path in done] == finished  # not recomputed
    run_benchmark(config)  # every run finished: no population
    assert sizes == [3]


@pytest.mark.parametrize(("cap", "expected"), [(1, [1] * 6), (4, [4, 2]), (None, [6])])
def test_the_cap_splits_populations(cap, expected, tiny_config, tmp_path, sizes):
    inline = tiny_config(out=str(tmp_path / "inline"), executor="inline")
    run_benchmark(inline)
    config = tiny_config(executor="population", population=cap)
    run_benchmark(config)
    assert sizes == expected
    assert_same_runs(config.specs(), config.out, inline.out)


def test_populations_group_by_env_settings_and_evaluation():
    runs = expand([ANALYTIC], ["none", "random"], [0, 1], env_kwargs=TINY_ANALYTIC)
    other = expand([ANALYTIC], ["none"], [0], env_kwargs={**TINY_ANALYTIC, "budget": 80})
    evaluation = expand([ANALYTIC], ["none"], [5], env_kwargs=TINY_ANALYTIC, eval_tasks=3)
    specs = [*runs[:2], *other, *runs[2:], *evaluation]
    assert populations(specs, None) == [runs, other, evaluation]
    assert populations(specs, 3) == [runs[:3], runs[3:], other, evaluation]


def test_a_failing_teacher_fails_its_run_alone(tiny_config, tmp_path, monkeypatch):
    from metacurriculum.teachers import RandomTeacher

    act = RandomTeacher.act

    def failing(self, observation, info):
        if self.failing_seed == 1 and info["meta_step"] >= 12:
            raise RuntimeError("injected failure")
        return act(self, observation, info)

    reset = RandomTeacher.reset

    def seeded(self, observation_space, action_space, *, seed=None):
        reset(self, observation_space, action_space, seed=seed)
        self.failing_seed = seed

    inline = tiny_config(out=str(tmp_path / "inline"), executor="inline")
    run_benchmark(inline)
    monkeypatch.setattr(RandomTeacher, "act", failing)
    monkeypatch.setattr(RandomTeacher, "reset", seeded)
    config = tiny_config(executor="population")
    with pytest.raises(BenchmarkError, match=r"1 of 6 runs failed(.|\n)*injected failure"):
        run_benchmark(config)
    for spec in config.specs():
        folder = spec.folder(config.out)
        if (spec.teacher, spec.seed) == ("random", 1):
            assert "injected failure" in (folder / "error.txt").read_text()
            assert unfinished_reason(folder) == "no done.json"
        else:
            assert run_numbers(folder) == run_numbers(spec.folder(inline.out))


def test_the_default_executor_is_population_on_cuda_only(monkeypatch):
    import torch

    def runs(device: str) -> list[RunSpec]:
        return expand([TINY_MAML], ["none"], [0], env_kwargs={"device": device})

    assert default_executor(runs("cuda")) == default_executor(runs("cuda:1")) == "population"
    assert default_executor(runs("cpu")) == "processes"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_executor(runs("auto")) == "population"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_executor(runs("auto")) == "processes"


def test_the_command_line_sets_the_population(tmp_path, sizes, capsys):
    argv = ["bench", "--env", ANALYTIC, "--teachers", "none,random", "--seeds", "3"]
    argv += ["--env-kwargs", ",".join(f"{k}={v}" for k, v in TINY_ANALYTIC.items())]
    argv += ["--eval-tasks", "4", "--out", str(tmp_path), "--no-plots"]
    assert cli.main([*argv, "--executor", "population", "--population", "4"]) == 0
    assert sizes == [4, 2]
    specs = expand([ANALYTIC], ["none", "random"], [0, 1, 2], env_kwargs=TINY_ANALYTIC)
    assert all(unfinished_reason(spec.folder(tmp_path)) is None for spec in specs)
    assert cli.main([*argv, "--population", "0"]) == 1
    assert "population=0 must be >= 1" in capsys.readouterr().err


#: A teacher of ``faulty_teacher`` -> what its run's failure says.
BAD_ACTIONS = {
    "nan-third": r"'nan-third' returned an action its env refuses at meta-step 8: action "
    r"array\(\[nan\]\) is not finite",
    "wrong-shape": r"'wrong-shape' returned an action its env refuses at meta-step 0: "
    r"continuous action must hold 1 value",
}


@pytest.mark.parametrize(
    ("executor", "bad"),
    [("population", "nan-third"), ("population", "wrong-shape"), ("processes", "nan-third")],
)
def test_a_bad_action_fails_its_own_run_alone(
    bad, executor, faulty_teachers, tiny_config, tmp_path, sizes
):
    """NaN from the third step, or two values for one ω: that run fails, in a population as
    in its own process, with the same message; the others finish with their own numbers."""
    fields = {"teachers": ("none", bad, "random"), "seeds": (0,), "imports": (faulty_teachers,)}
    inline = tiny_config(**{**fields, "teachers": ("none", "random")}, out=str(tmp_path / "a"))
    run_benchmark(inline)
    workers = {"workers": 2, "threads": 1} if executor == "processes" else {}
    config = tiny_config(**fields, executor=executor, **workers)
    with pytest.raises(BenchmarkError, match=r"1 of 3 runs failed") as failure:
        run_benchmark(config)
    message = BAD_ACTIONS[bad]
    failed_line = next(line for line in str(failure.value).splitlines() if bad in line)
    assert re.search(message, failed_line), failed_line
    assert sizes == ([3] if executor == "population" else [])
    for spec in config.specs():
        folder = spec.folder(config.out)
        if spec.teacher == bad:
            assert re.search(message, (folder / "error.txt").read_text())
            assert unfinished_reason(folder) == "no done.json"
        else:
            assert run_numbers(folder) == run_numbers(spec.folder(inline.out)), spec.name
