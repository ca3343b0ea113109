"""Watching runs: TensorBoard (and W&B offline) logs of every env step, the same under every
executor, and run folders that are the same whether a run is watched or not."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from bench_helpers import run_numbers

from metacurriculum.benchmarks import BenchmarkError, RunSpec, execute_run, run_benchmark, tables
from metacurriculum.benchmarks.run_folders import RUN_FILES
from metacurriculum.benchmarks.tracking import TensorBoardTracker, Tracking
from metacurriculum.cli import main

pytest.importorskip("tensorboard")

MULTI = "MetaCurriculum-AnalyticMulti-v0"
#: ``done.json`` keys that are timings: the only bytes a watched run may change.
TIMINGS = ("train_seconds", "eval_seconds", "finished")


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the event files in ``folder``: tag -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def same(logged: list[tuple[int, float]], expected: list[tuple[int, float]]) -> bool:
    """The same steps, and values equal up to float32 (what an event file stores)."""
    return [step for step, _ in logged] == [step for step, _ in expected] and [
        value for _, value in logged
    ] == pytest.approx([value for _, value in expected], rel=1e-6, nan_ok=True)


def hparams(folder: Path) -> dict[str, object]:
    """The hyper-parameters of the run logged in ``folder``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    events = EventAccumulator(str(folder))
    events.Reload()
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    data = plugin_data_pb2.HParamsPluginData.FromString(content)
    values = data.session_start_info.hparams
    return {key: getattr(value, value.WhichOneof("kind")) for key, value in values.items()}


def test_every_env_step_is_logged_with_the_settings_as_hyperparameters(tiny_config, tmp_path):
    board = tmp_path / "tb"
    config = tiny_config(
        envs=(MULTI,),
        teachers=("adaptive@step=2",),
        seeds=(0,),
        tracking=Tracking(tensorboard=str(board)),
    )
    run_benchmark(config)
    (spec,) = config.specs()
    logged = scalars(board / spec.name)
    steps = [json.loads(line) for line in (spec.folder(config.out) / "steps.jsonl").open()]
    at = [step["meta_step"] for step in steps]  # the reset's measurement, then every env step
    for name in ("classes", "rotation", "noise"):
        expected = [(m, s[f"omega/{name}"]) for m, s in zip(at, steps, strict=True)]
        assert same(logged[f"omega/{name}"], expected)
    for tag, key in (
        ("loss/val", "val_loss"),
        ("loss/target_normalized", "target_loss_normalized"),
    ):
        assert same(logged[tag], [(m, s[key]) for m, s in zip(at, steps, strict=True)])
    assert same(logged["reward"], [(s["meta_step"], s["reward"]) for s in steps[1:]])
    assert {"teacher/own_decision_fraction", "accuracy/target", "loss/train"} <= set(logged)
    done = json.loads((spec.folder(config.out) / "done.json").read_text())
    assert same(logged["final/loss"], [(done["meta_steps"], done["final_loss"])])
    assert logged["teacher/up_fraction"][-1][1] == pytest.approx(done["teacher/up_fraction"])
    settings = hparams(board / spec.name)
    assert settings["teacher"] == "adaptive@step=2" and settings["env_id"] == MULTI
    assert settings["teacher_kwargs.step"] == 2 and settings["env_settings.budget"] == 40
    assert settings["seed"] == 0 and settings["env_settings.family"] == "omniglot-multi"


def test_a_watched_run_has_the_folder_bytes_of_one_that_is_not(tiny_config, tmp_path):
    plain = tiny_config(out=str(tmp_path / "plain"))
    watched = tiny_config(
        out=str(tmp_path / "watched"), tracking=Tracking(tensorboard=str(tmp_path / "tb"))
    )
    run_benchmark(plain)
    run_benchmark(watched)
    for spec in plain.specs():
        a, b = spec.folder(plain.out), spec.folder(watched.out)
        assert sorted(p.name for p in b.iterdir()) == sorted(RUN_FILES)
        for name in ("config.json", "evaluation.json", "student.pt"):
            assert (a / name).read_bytes() == (b / name).read_bytes()
        assert run_numbers(a) == run_numbers(b)  # steps.jsonl but its wall times
        done = [json.loads((f / "done.json").read_text()) for f in (a, b)]
        for summary in done:
            for key in TIMINGS:
                summary.pop(key)
        assert done[0] == done[1]
    for config in (plain, watched):
        tables.report(config.out)
    for name in ("runs.csv", "results.csv"):
        assert (Path(plain.out) / name).read_bytes() == (Path(watched.out) / name).read_bytes()


@pytest.mark.parametrize(
    "fields",
    [{"executor": "processes", "workers": 2, "threads": 1}, {"executor": "population"}],
    ids=["processes", "population"],
)
def test_every_executor_logs_as_the_inline_one(fields, tiny_config, tmp_path):
    inline = tiny_config(
        out=str(tmp_path / "inline"), tracking=Tracking(tensorboard=str(tmp_path / "a"))
    )
    other = tiny_config(
        out=str(tmp_path / "other"), tracking=Tracking(tensorboard=str(tmp_path / "b")), **fields
    )
    run_benchmark(inline)
    run_benchmark(other)
    for spec in inline.specs():
        expected, logged = scalars(tmp_path / "a" / spec.name), scalars(tmp_path / "b" / spec.name)
        assert set(logged) == set(expected) and "omega/classes" in logged
        for tag, points in expected.items():
            assert same(logged[tag], points), tag


def test_a_redone_run_replaces_its_event_files(tmp_path):
    spec = RunSpec(
        "MetaCurriculum-Analytic-v0",
        "linear",
        0,
        env_kwargs={"budget": 16, "n_max": 5},
        eval_tasks=4,
        tracking=Tracking(tensorboard=str(tmp_path / "tb")),
    )
    execute_run(spec, tmp_path / "runs")
    execute_run(spec, tmp_path / "runs")  # as bench redoes an unfinished run
    (events,) = (tmp_path / "tb" / spec.name).glob("events.out.tfevents.*")
    assert len(scalars(events.parent)["omega/classes"]) == 16 // 4 + 1


def test_a_failing_tracker_warns_and_its_run_finishes(tiny_config, tmp_path, monkeypatch):
    def full_disk(self, meta_step, values):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(TensorBoardTracker, "log", full_disk)
    config = tiny_config(seeds=(0,), teachers=("none",), tracking=Tracking(str(tmp_path / "tb")))
    with pytest.warns(UserWarning, match="TensorBoardTracker failed .*No space left.*goes on"):
        run_benchmark(config)
    (spec,) = config.specs()
    assert (spec.folder(config.out) / "done.json").is_file()


def test_without_tensorboard_bench_names_the_extra_before_any_run(
    tiny_config, tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    config = tiny_config(tracking=Tracking(tensorboard=str(tmp_path / "tb")))
    with pytest.raises(BenchmarkError, match=r"pip install metacurriculum\[tensorboard\]"):
        run_benchmark(config)
    assert not Path(config.out).exists()


def test_the_command_line_writes_event_files(tmp_path, capsys):
    tiny = ["--env", "MetaCurriculum-Analytic-v0", "--env-kwargs", "budget=16,n_max=5"]
    tiny += ["--eval-tasks", "4", "--seeds", "1", "--workers", "1", "--no-plots"]
    out, board = tmp_path / "runs", tmp_path / "tb"
    argv = ["bench", *tiny, "--teachers", "none", "--out", str(out), "--tensorboard", str(board)]
    assert main(argv) == 0
    assert list(board.glob("MetaCurriculum-Analytic-v0/none/seed_0/events.out.tfevents.*"))
    assert main(["bench", *tiny, "--out", str(out), "--wandb-mode", "offline"]) == 1
    assert "--wandb-mode needs --wandb PROJECT" in capsys.readouterr().err


def test_weights_and_biases_offline_gets_the_same_scalars(tiny_config, tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    config = tiny_config(
        teachers=("none", "adaptive"),
        seeds=(0,),
        tracking=Tracking(wandb="metacurriculum-test", wandb_mode="offline"),
    )
    run_benchmark(config)
    wandb.teardown()  # its service writes the last records after run.finish() returns
    logs = sorted((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(logs) == 2  # a W&B run per benchmark run
    contents = b"".join(path.read_bytes() for path in logs)
    for spec in config.specs():
        assert spec.name.encode() in contents  # the run's name
    for tag in (b"omega/classes", b"loss/val_normalized", b"reward", b"final/loss"):
        assert tag in contents
    assert b"teacher/own_decision_fraction" in contents and b"env_settings.budget" in contents
