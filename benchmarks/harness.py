"""The benchmark harness: teacher x env x seed runs, one folder each, finished runs kept.

One run trains a fresh student for one episode under one teacher, then adapts it to
unseen tasks of the hardest distribution (``evaluate_test``). Its folder,
``<out>/<env_id>/<teacher>/seed_<s>/``, holds:

| file              | written                            | what it holds                          |
|-------------------|------------------------------------|----------------------------------------|
| ``config.json``   | first (atomically)                 | the resolved run: env id and settings, teacher and kwargs, seed, evaluation, versions |
| ``steps.jsonl``   | one line per env step, as it runs  | step, meta_step, omega, n_way, losses, accuracies, reward, wall time |
| ``student.pt``    | after training (atomically)        | the student's final state (``save_student``) |
| ``evaluation.json`` | after training (atomically)      | per inner step mean loss/accuracy, per-task arrays |
| ``done.json``     | last (atomically)                  | summary and its config's digest: marks the run finished |

``omega`` (and ``final_omega``) is a number for a one-parameter family (every paper id);
for a family of several parameters it is the list of ω's coordinates, and each also
appears by name (``omega/<name>``, ``final_omega/<name>``).

A finished run is never recomputed (its ``config.json`` must match the requested run,
else :class:`ConfigMismatchError`, or it is recomputed under ``overwrite=True``). A run
is finished only when ``done.json`` and the other files read back whole and
``done.json`` matches the ``config.json`` beside it
(:mod:`~metacurriculum.benchmarks.run_folders`). Any other folder was interrupted or
damaged: it is cleared and the run is redone from its seed, which gives the same
numbers on the same device and thread count (``config.json`` records the threads).
Execution lives in :mod:`metacurriculum.benchmarks.execution`.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import metacurriculum
from metacurriculum.benchmarks.run_folders import (
    CONFIG,
    DONE,
    EVALUATION,
    RUN_FILES,
    STEPS,
    STUDENT,
    BenchmarkError,
    DamagedRunError,
    clear_run,
    config_digest,
    evaluation_record,
    jsonable,
    omega_fields,
    step_record,
    target_loss_auc,
    unfinished_reason,
    write_json,
)
from metacurriculum.envs.config import MetaCurriculumConfig, upgrade_settings
from metacurriculum.envs.meta_env import make_env

logger = logging.getLogger("metacurriculum.benchmarks")

__all__ = [
    "CONFIG",
    "DONE",
    "EVALUATION",
    "RUN_FILES",
    "STEPS",
    "STUDENT",
    "BenchmarkError",
    "ConfigMismatchError",
    "DamagedRunError",
    "RunRecord",
    "RunSpec",
    "execute_run",
    "expand",
    "plan",
    "validate",
]


class ConfigMismatchError(BenchmarkError):
    """A finished run's stored config differs from the run requested in the same folder."""


@dataclass(frozen=True)
class RunSpec:
    """One run: a teacher trains a fresh student on one env from one seed.

    Attributes:
        env_id: a registered MetaCurriculum id, e.g. ``"MetaCurriculum-Omniglot20-v0"``.
        teacher: a registered teacher name (``metacurriculum.teachers.list_teachers()``).
        seed: seeds the env (student, tasks) and the teacher.
        env_kwargs: settings overriding the id's registered ones (``MetaCurriculumConfig`` fields).
        teacher_kwargs: keyword arguments of the teacher's factory.
        eval_tasks: unseen tasks of the final evaluation.
        eval_seed: seed of the final evaluation's tasks (the same for every run).
    """

    env_id: str
    teacher: str
    seed: int
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    teacher_kwargs: Mapping[str, Any] = field(default_factory=dict)
    eval_tasks: int = 200
    eval_seed: int = 0

    @property
    def name(self) -> str:
        """``<env_id>/<teacher>/seed_<s>``: the folder relative to the output root."""
        return f"{self.env_id.replace('/', '--')}/{self.teacher}/seed_{self.seed}"

    def folder(self, out: str | os.PathLike) -> Path:
        """The run's folder under the output root ``out``."""
        return Path(out) / self.name

    def env_settings(self) -> MetaCurriculumConfig:
        """The env's settings: the registered ones with :attr:`env_kwargs` applied."""
        registered = dict(gym.spec(self.env_id).kwargs)
        return MetaCurriculumConfig.from_overrides(**{**registered, **self.env_kwargs})

    def make_env(self) -> gym.Env:
        """The env of this run, with a time limit that matches the (overridden) budget."""
        return make_env(self.env_id, **dict(self.env_kwargs))

    def identity(self) -> dict[str, Any]:
        """What defines the run's numbers, as stored in ``config.json`` and compared on resume."""
        identity = {
            "env_id": self.env_id,
            "env_kwargs": dict(self.env_kwargs),
            "env_settings": self.env_settings().to_dict(),
            "teacher": self.teacher,
            "teacher_kwargs": dict(self.teacher_kwargs),
            "seed": self.seed,
            "eval_tasks": self.eval_tasks,
            "eval_seed": self.eval_seed,
        }
        return json.loads(json.dumps(identity))  # tuples -> lists, as read back from disk


def expand(
    envs: Sequence[str],
    teachers: Sequence[str],
    seeds: Sequence[int],
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    teacher_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    eval_tasks: int = 200,
    eval_seed: int = 0,
) -> list[RunSpec]:
    """Every (env, seed, teacher) combination as a :class:`RunSpec`.

    Seeds vary slower than teachers, so an interrupted benchmark holds whole seeds of
    every teacher rather than every seed of the first teachers.

    Args:
        envs: env ids.
        teachers: teacher names.
        seeds: env and teacher seeds.
        env_kwargs: settings applied to every env.
        teacher_kwargs: per teacher name, the kwargs of its factory.
        eval_tasks: unseen tasks of each final evaluation.
        eval_seed: seed of the final evaluation's tasks.
    """
    teacher_kwargs = teacher_kwargs or {}
    return [
        RunSpec(
            env_id=env_id,
            teacher=teacher,
            seed=int(seed),
            env_kwargs=dict(env_kwargs or {}),
            teacher_kwargs=dict(teacher_kwargs.get(teacher, {})),
            eval_tasks=eval_tasks,
            eval_seed=eval_seed,
        )
        for env_id in envs
        for seed in seeds
        for teacher in teachers
    ]


def validate(specs: Sequence[RunSpec]) -> None:
    """Check names and settings before anything runs, so a typo fails in seconds.

    Raises:
        BenchmarkError: for no runs, a negative seed, an unknown env id or teacher, bad env
            settings or teacher kwargs, duplicate runs, or a non-positive number of
            evaluation tasks.
    """
    from metacurriculum.envs.families import make_family
    from metacurriculum.teachers import list_teachers, make_teacher
    from metacurriculum.teachers.base import VECTOR_HINT

    if not specs:
        raise BenchmarkError("no runs requested: give at least one env, one teacher and one seed.")
    for seed in dict.fromkeys(spec.seed for spec in specs):
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise BenchmarkError(f"seed {seed!r} must be an integer >= 0.")
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise BenchmarkError("the same run is requested twice; list each env, teacher, seed once.")
    for env_id in dict.fromkeys(spec.env_id for spec in specs):
        if env_id not in gym.registry:
            ids = sorted(i for i in gym.registry if "MetaCurriculum" in i)
            close = difflib.get_close_matches(env_id, ids, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise BenchmarkError(
                f"unknown env id {env_id!r}.{hint} Registered: {', '.join(ids)}. "
                "An id registered by your own module needs --import MODULE."
            )
    checked: set[str] = set()
    teachers: dict[str, Any] = {}
    for spec in specs:
        if spec.eval_tasks < 1:
            raise BenchmarkError(f"eval_tasks={spec.eval_tasks} must be >= 1.")
        try:
            spec.env_settings()
        except (TypeError, ValueError) as error:
            raise BenchmarkError(f"bad env settings for {spec.env_id}: {error}") from None
        key = json.dumps([spec.teacher, dict(spec.teacher_kwargs)], sort_keys=True, default=str)
        if key in checked:
            continue
        checked.add(key)
        if spec.teacher not in list_teachers():
            close = difflib.get_close_matches(spec.teacher, list_teachers(), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise BenchmarkError(
                f"unknown teacher {spec.teacher!r}.{hint} Registered: {', '.join(list_teachers())}."
            )
        try:
            teachers[key] = make_teacher(spec.teacher, **spec.teacher_kwargs)
        except (TypeError, ValueError) as error:
            raise BenchmarkError(
                f"teacher {spec.teacher!r} rejects kwargs {dict(spec.teacher_kwargs)}: {error}"
            ) from None
    for spec in specs:  # a teacher for one coordinate on a vector ω: say so before any run
        family = make_family(spec.env_settings())
        key = json.dumps([spec.teacher, dict(spec.teacher_kwargs)], sort_keys=True, default=str)
        if family.dim > 1 and not getattr(teachers[key], "vector", False):
            raise BenchmarkError(
                f"teacher {spec.teacher!r} steers a one-parameter ω, but {spec.env_id}'s family "
                f"{spec.env_settings().family!r} has {family.dim} parameters "
                f"{list(family.names)}; drop it or pick one of the {VECTOR_HINT}."
            )


# -- run folders ---------------------------------------------------------------------


#: Settings that say where the data comes from, not what a run computes: a finished run
#: made with ``--download`` or another ``--data-root`` is still the same run.
NOT_IDENTITY = frozenset({"env_settings.download", "env_settings.data_root"})
#: Settings added after runs were made whose default computes what the older code did: a
#: stored config without them matches a request for that default (runs from before task
#: families, ``family="classes"``, are still finished runs).
LATER_DEFAULTS = {"env_settings.family": "classes"}


def stored_mismatch(spec: RunSpec, folder: Path) -> dict[str, tuple[Any, Any]]:
    """Where ``folder``'s ``config.json`` differs from ``spec``: ``{key: (stored, requested)}``,
    with nested keys dotted (``"env_settings.budget"``)."""
    try:
        stored = json.loads((folder / CONFIG).read_text())
    except (OSError, ValueError):
        return {"config.json": ("missing or unreadable", "present")}
    if isinstance(stored.get("env_settings"), dict):  # runs from before learners: MAML's
        stored["env_settings"] = upgrade_settings(stored["env_settings"])
    wanted = spec.identity()
    del wanted["env_kwargs"]  # the resolved env_settings decide; budget=1000 twice is no clash
    diffs = {}
    for key, value in wanted.items():
        old = stored.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            for sub in sorted(set(old) | set(value)):
                name = f"{key}.{sub}"
                before = old.get(sub, LATER_DEFAULTS.get(name))
                if before != value.get(sub) and name not in NOT_IDENTITY:
                    diffs[name] = (old.get(sub), value.get(sub))
        elif old != value:
            diffs[key] = (old, value)
    return diffs


def plan(
    specs: Sequence[RunSpec], out: str | os.PathLike, overwrite: bool = False
) -> list[RunSpec]:
    """The runs still to do: those without a finished folder (or mismatched, with ``overwrite``).

    A folder whose ``done.json`` or other files are damaged is unfinished (see
    :mod:`~metacurriculum.benchmarks.run_folders`); a warning names it and why.

    Raises:
        ConfigMismatchError: when finished runs were made with other settings and
            ``overwrite`` is False; the message lists them and what differs.
    """
    pending, clashes = [], []
    for spec in specs:
        folder = spec.folder(out)
        reason = unfinished_reason(folder)
        if reason is not None:
            if (folder / DONE).exists():  # an interrupted run has none: nothing to say
                logger.warning("%s is unfinished and will be redone: %s", folder, reason)
            pending.append(spec)
            continue
        mismatch = stored_mismatch(spec, folder)
        if mismatch and overwrite:
            pending.append(spec)
        elif mismatch:
            diffs = "; ".join(
                f"{k}: stored {a!r}, requested {b!r}" for k, (a, b) in mismatch.items()
            )
            clashes.append(f"  {folder}: {diffs}")
    if clashes:
        raise ConfigMismatchError(
            f"{len(clashes)} finished run(s) in {out} were made with other settings:\n"
            + "\n".join(clashes[:10])
            + ("\n  ..." if len(clashes) > 10 else "")
            + "\nUse another --out, or pass --overwrite to recompute them."
        )
    return pending


def versions() -> dict[str, str]:
    """Versions of the packages that shape a run's numbers."""
    import torch

    return {
        "metacurriculum": metacurriculum.__version__,
        "torch": torch.__version__,
        "gymnasium": gym.__version__,
        "numpy": np.__version__,
    }


# -- one run -------------------------------------------------------------------------

#: Called after every env step with (spec, meta_step, budget).
StepCallback = Callable[[RunSpec, int, int], None]


def execute_run(
    spec: RunSpec, out: str | os.PathLike, on_step: StepCallback | None = None
) -> dict[str, Any]:
    """Run one teacher-student episode, evaluate the student, and write the run's folder.

    Any earlier, unfinished content of the folder is cleared first, so a rerun after
    an interruption starts from the same seed and reproduces the same numbers.

    Returns:
        The summary written to ``done.json``.
    """
    from metacurriculum.teachers import make_teacher

    with RunRecord(spec, out) as record:
        env = spec.make_env()
        teacher = make_teacher(spec.teacher, **spec.teacher_kwargs)
        record.start()
        obs, info = env.reset(seed=spec.seed)
        teacher.reset(env.observation_space, env.action_space, seed=spec.seed)
        record.reset(info)
        budget = int(info["budget"])
        while True:
            action = teacher.act(obs, info)
            obs, reward, terminated, truncated, info = env.step(action)
            record.step(info, action, reward)
            if on_step is not None:
                on_step(spec, int(info["meta_step"]), budget)
            if terminated or truncated:
                break
        record.end_training()
        record.evaluate(env.unwrapped)
        summary = record.finish(info, terminated, teacher)
        env.close()
    return summary


class RunRecord:
    """One run's folder as the run goes: ``config.json`` first, a ``steps.jsonl`` line
    per env step, then the student, its evaluation and ``done.json``.

    Every executor writes its runs through it, so a run's files are the same however
    it was executed. Use it as a context manager (the step log is closed on exit).

    Args:
        spec: the run.
        out: the output root; the run's folder is cleared of earlier run files.
    """

    def __init__(self, spec: RunSpec, out: str | os.PathLike) -> None:
        import torch

        self.spec = spec
        self.folder = spec.folder(out)
        self.folder.mkdir(parents=True, exist_ok=True)
        clear_run(self.folder)
        # The thread count is recorded: on the CPU it can change the last bits of the numbers.
        self.config = {
            **spec.identity(),
            "versions": versions(),
            "threads": torch.get_num_threads(),
        }
        write_json(self.folder / CONFIG, self.config)
        self.log = open(self.folder / STEPS, "w")  # closed by finish or __exit__
        self.steps = 0
        self.curve: list[tuple[int, float]] = []  # (meta-step, target loss): sample efficiency
        self.started = self.train_seconds = self.eval_seconds = 0.0
        self.evaluation: dict[str, Any] = {}

    def __enter__(self) -> RunRecord:
        return self

    def __exit__(self, *exc: object) -> None:
        self.log.close()

    def start(self) -> None:
        """Start the clock of the step log's wall times and of ``train_seconds``."""
        self.started = time.perf_counter()

    def reset(self, info: Mapping[str, Any]) -> None:
        """Log the reset's ``info`` (step 0)."""
        self.log.write(json.dumps(step_record(0, info, None, None, 0.0)) + "\n")
        self.curve = [(0, info["target_loss"])]

    def step(
        self, info: Mapping[str, Any], action: Any, reward: float, wall_s: float | None = None
    ) -> None:
        """Log one env step: the teacher's ``action``, the env's ``info`` and ``reward``,
        at ``wall_s`` seconds since :meth:`start` (``None``: now)."""
        self.steps += 1
        wall = time.perf_counter() - self.started if wall_s is None else wall_s
        self.log.write(json.dumps(step_record(self.steps, info, action, reward, wall)) + "\n")
        self.curve.append((int(info["meta_step"]), info["target_loss"]))

    def end_training(self) -> None:
        """The episode has ended: stop ``train_seconds``."""
        self.train_seconds = time.perf_counter() - self.started

    def evaluate(self, env: Any) -> None:
        """Save the trained student of ``env`` (an env with ``save_student`` and
        ``evaluate_test``, before any reset) and write its ``evaluation.json``."""
        spec, start = self.spec, time.perf_counter()
        env.save_student(str(self.folder / STUDENT))
        curves = env.evaluate_test(spec.eval_tasks, spec.eval_seed)
        self.evaluation = evaluation_record(curves, spec)
        write_json(self.folder / EVALUATION, self.evaluation)
        self.eval_seconds = time.perf_counter() - start

    def finish(self, info: Mapping[str, Any], terminated: bool, teacher: Any) -> dict[str, Any]:
        """Make the step log durable and write ``done.json`` (after :meth:`evaluate`);
        returns its summary.

        Args:
            info: the ``info`` of the episode's last step.
            terminated: whether the student diverged.
            teacher: the episode's teacher (its ``teacher_summary`` joins the summary).
        """
        from metacurriculum.teachers import teacher_summary

        self.log.flush()
        os.fsync(self.log.fileno())
        self.log.close()
        evaluation = self.evaluation
        summary = jsonable(
            {
                "final_loss": evaluation["loss_mean"][-1],
                "final_accuracy": evaluation["accuracy_mean"][-1],
                "initial_loss": evaluation["loss_mean"][0],
                "initial_accuracy": evaluation["accuracy_mean"][0],
                "final_target_loss": info["target_loss"],
                "target_loss_auc": target_loss_auc(self.curve),
                **omega_fields(info, "final_omega"),  # a vector ω also by name
                "env_steps": self.steps,
                "meta_steps": info["meta_step"],
                "diverged": bool(terminated),
                "train_seconds": round(self.train_seconds, 3),
                "eval_seconds": round(self.eval_seconds, 3),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "config_digest": config_digest(self.config),
                # The teacher's own statistics, e.g. how often its decision, not a floor, set ω.
                **teacher_summary(teacher),
            }
        )
        write_json(self.folder / DONE, summary)
        return summary
