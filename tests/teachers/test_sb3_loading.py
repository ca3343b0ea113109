"""Loading a saved SB3 model as a teacher: only what acting needs, clear errors, a warning.

A saved model is a zip whose ``data`` holds cloudpickled objects; unpickling one runs
whatever code it names. These tests build real zips (a PPO saved by SB3, then edited)
and load them through the teacher registry and the command line.
"""

from __future__ import annotations

import base64
import json
import pickle
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import metacurriculum  # noqa: F401 - registers the envs
from metacurriculum.cli import build_parser, main
from metacurriculum.teachers import make_teacher

pytest.importorskip("stable_baselines3")

ANALYTIC = "MetaCurriculum-Analytic-v0"
SETTINGS = {"budget": 40, "n_max": 5}


class _Marker:
    """Unpickled, it creates the file ``path``: a stand-in for any code in a pickle."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """An untrained PPO of the analytic env, saved by SB3."""
    from stable_baselines3 import PPO

    path = tmp_path_factory.mktemp("sb3") / "ppo.zip"
    env = gym.make(ANALYTIC, **SETTINGS)
    PPO("MlpPolicy", env, n_steps=8, batch_size=8, device="cpu", seed=0).save(path)
    return path


def rezip(source: Path, target: Path, *, drop=(), data=None) -> Path:
    """``source``'s members into ``target``, without ``drop``, with ``data`` as given."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            if name in drop:
                continue
            new.writestr(name, data if name == "data" and data is not None else old.read(name))
    return target


def with_payload(saved: Path, target: Path, key: str, marker: Path) -> Path:
    """``saved`` with ``data[key]`` replaced by a pickle that creates ``marker``."""
    with zipfile.ZipFile(saved) as archive:
        data = json.loads(archive.read("data"))
    payload = base64.b64encode(pickle.dumps(_Marker(str(marker)))).decode()
    data[key] = {":type:": "<class 'function'>", ":serialized:": payload}
    return rezip(saved, target, data=json.dumps(data))


@pytest.mark.parametrize("key", ["lr_schedule", "clip_range", "rollout_buffer_class"])
def test_what_acting_does_not_need_is_never_unpickled(saved, tmp_path, key):
    """A payload in a training-only entry does not run; the teacher still acts."""
    marker = tmp_path / "ran"
    path = with_payload(saved, tmp_path / "model.zip", key, marker)
    teacher = make_teacher("sb3", path=path, algo="ppo")
    assert not marker.exists(), f"loading unpickled {key!r}"
    env = gym.make(ANALYTIC, **SETTINGS)
    obs, info = env.reset(seed=0)
    teacher.reset(env.observation_space, env.action_space, seed=0)
    assert env.action_space.contains(np.asarray(teacher.act(obs, info), dtype=np.float32))


def _bytes(data: bytes | None = None):
    """Write ``data`` (``None``: the first half of the saved model) to the target."""

    def make(saved: Path, target: Path) -> Path:
        target.write_bytes(
            saved.read_bytes()[: saved.stat().st_size // 2] if data is None else data
        )
        return target

    return make


#: A malformed file -> how it is made, and what the error says.
MALFORMED = {
    "empty": (_bytes(b""), "not a whole zip"),
    "garbage": (_bytes(b"\xffnot a zip"), "not a whole zip"),
    "truncated": (_bytes(None), "not a saved SB3 model"),  # may hold an inner zip's end
    "no-data": (lambda s, t: rezip(s, t, drop=("data",)), "zip without ['data']"),
    "no-policy": (lambda s, t: rezip(s, t, drop=("policy.pth",)), "zip without ['policy.pth']"),
    "empty-data": (lambda s, t: rezip(s, t, data="{}"), "its 'data' lacks the policy class"),
    "garbage-data": (lambda s, t: rezip(s, t, data="{"), "holds damaged settings"),
    "binary-data": (lambda s, t: rezip(s, t, data=b"\xff\xfe"), "holds damaged settings"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_file_is_a_clear_error_naming_it(saved, tmp_path, case):
    make, says = MALFORMED[case]
    path = make(saved, tmp_path / "model.zip")
    with pytest.raises(ValueError, match=r"not a saved SB3 model|damaged settings") as error:
        make_teacher("sb3", path=path, algo="ppo")
    assert str(path) in str(error.value) and says in str(error.value)


def test_a_model_of_another_algorithm_is_a_clear_error(saved):
    with pytest.raises(ValueError, match=r"could not be loaded as an SB3 DQN model.*algo="):
        make_teacher("sb3", path=saved, algo="dqn")


def test_the_command_line_says_which_file_and_runs_nothing(saved, tmp_path, capsys):
    bad = rezip(saved, tmp_path / "model.zip", data="{}")
    out = tmp_path / "runs"
    argv = ["bench", "--env", ANALYTIC, "--teachers", "sb3,none", "--seeds", "1", "--no-plots"]
    argv += ["--teacher-kwargs", f"sb3:path={bad},algo=ppo", "--out", str(out)]
    argv += ["--env-kwargs", "budget=40,n_max=5"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "teacher 'sb3' rejects kwargs" in err[0], err
    assert f"{bad}: its 'data' lacks the policy class" in err[0]
    assert not list(out.glob("*/*/seed_*"))


def test_the_help_says_that_loading_a_model_runs_its_code():
    parser = build_parser()
    actions = {a.dest: a for a in parser._subparsers._group_actions}
    commands = actions["command"].choices
    bench = commands["bench"].format_help()
    train = commands["train-teacher"].format_help()
    assert "runs code stored in the file" in " ".join(bench.split())
    assert "runs code stored in it" in " ".join(train.split())
