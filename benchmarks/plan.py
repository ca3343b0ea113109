"""A benchmark's plan: its runs (teacher x env x seed), checked before any starts, and which
are still to do (a folder each; finished runs are kept).

One run trains a fresh student for one episode under one teacher, then adapts it to
unseen tasks of the hardest distribution (``evaluate_test``). Its folder,
``<out>/<env_id>/<teacher>/seed_<s>/``, holds:

| file              | written                            | what it holds                          |
|-------------------|------------------------------------|----------------------------------------|
| ``config.json``   | first (atomically)                 | the resolved run: env id and settings, teacher and kwargs, seed, evaluation, versions |
| ``steps.jsonl``   | one line per env step, as it runs  | step, meta_step, omega, n_way, losses, accuracies, reward, wall time, compute so far (FLOPs of meta-training and of measurements) |
| ``student.pt``    | after training (atomically)        | the student's final state (``save_student``) |
| ``evaluation.json`` | after training (atomically)      | per inner step mean loss/accuracy, per-task arrays |
| ``done.json``     | last (atomically)                  | summary (final scores, seconds and FLOPs of training, measurements and evaluation), the digests of its config and student: marks the run finished |

Every file gets the mode ``open()`` gives (``0o666`` less the umask). A finished run
moved without its student (:mod:`~metacurriculum.benchmarks.archive`) holds
``student.dropped.json``, the student's digest, in place of ``student.pt``, and stays
finished.

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
One run's episode is :mod:`metacurriculum.benchmarks.episode`; executing a benchmark
lives in :mod:`metacurriculum.benchmarks.benchmark`.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
from collections.abc import Mapping, Sequence
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
    unfinished_reason,
)
from metacurriculum.benchmarks.tracking import Tracking
from metacurriculum.envs.config import MetaCurriculumConfig, upgrade_settings
from metacurriculum.envs.meta_env import make_env
from metacurriculum.registry import VariantError, parse_variant, variant_name

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
    "RunSpec",
    "check_env_id",
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
        env_id: a registered MetaCurriculum id, e.g. ``"MetaCurriculum-Omniglot20-v0"``, or
            a variant of one, ``"MetaCurriculum-Omniglot5-v0@learner=anil"`` (its settings,
            already in :attr:`env_kwargs`, name its folder).
        teacher: a registered teacher name (``metacurriculum.teachers.list_teachers()``), or
            a variant of one, ``"adaptive@step=4"`` (its settings, already in
            :attr:`teacher_kwargs`, name its folder and its rows in the tables).
        seed: seeds the env (student, tasks) and the teacher.
        env_kwargs: settings overriding the id's registered ones (``MetaCurriculumConfig`` fields).
        teacher_kwargs: keyword arguments of the teacher's factory.
        eval_tasks: unseen tasks of the final evaluation.
        eval_seed: seed of the final evaluation's tasks (the same for every run).
        tracking: where the run is watched as it trains (TensorBoard, W&B:
            :class:`~metacurriculum.benchmarks.tracking.Tracking`); not part of what the run
            is (:meth:`identity`), nor of its equality: it changes no number and no file of
            its folder.
    """

    env_id: str
    teacher: str
    seed: int
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    teacher_kwargs: Mapping[str, Any] = field(default_factory=dict)
    eval_tasks: int = 200
    eval_seed: int = 0
    tracking: Tracking | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        """``<env_id>/<teacher>/seed_<s>``: the folder relative to the output root (a ``/``
        in a variant's value, such as a path, is ``--`` there)."""
        return (
            f"{self.env_id.replace('/', '--')}/{self.teacher.replace('/', '--')}/seed_{self.seed}"
        )

    def folder(self, out: str | os.PathLike) -> Path:
        """The run's folder under the output root ``out``."""
        return Path(out) / self.name

    @property
    def registered_id(self) -> str:
        """The registered id :attr:`env_id` is (or is a variant of)."""
        return parse_variant(self.env_id)[0]

    @property
    def registered_teacher(self) -> str:
        """The registered teacher :attr:`teacher` is (or is a variant of)."""
        return parse_variant(self.teacher)[0]

    def env_settings(self) -> MetaCurriculumConfig:
        """The env's settings: the registered ones with :attr:`env_kwargs` applied."""
        registered = dict(gym.spec(self.registered_id).kwargs)
        return MetaCurriculumConfig.from_overrides(**{**registered, **self.env_kwargs})

    def make_env(self) -> gym.Env:
        """The env of this run, with a time limit that matches the (overridden) budget."""
        return make_env(self.registered_id, **dict(self.env_kwargs))

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
    tracking: Tracking | None = None,
) -> list[RunSpec]:
    """Every (env, seed, teacher) combination as a :class:`RunSpec`.

    Seeds vary slower than teachers, so an interrupted benchmark holds whole seeds of
    every teacher rather than every seed of the first teachers.

    Args:
        envs: env ids, or variants of them (``ID@key=value...``, :func:`parse_variant`):
            a variant's settings join ``env_kwargs`` (and win over them).
        teachers: teacher names, or variants of them (``adaptive@step=4``): a variant's
            settings join the kwargs its teacher gets from ``teacher_kwargs`` (and win
            over them), so ``["adaptive@step=1", "adaptive@step=4"]`` sweeps a setting
            in one benchmark, each variant with its own folders and rows.
        seeds: env and teacher seeds.
        env_kwargs: settings applied to every env.
        teacher_kwargs: per teacher name (a registered name applies to its variants too),
            the kwargs of its factory.
        eval_tasks: unseen tasks of each final evaluation.
        eval_seed: seed of the final evaluation's tasks.
        tracking: where every run is watched as it trains (``None``: nowhere).
    """
    teacher_kwargs = teacher_kwargs or {}
    try:
        variants = {env: parse_variant(env) for env in envs}
        teacher_variants = {teacher: parse_variant(teacher) for teacher in teachers}
    except VariantError as error:
        raise BenchmarkError(str(error)) from None

    def kwargs_of(teacher: str) -> dict[str, Any]:
        base, settings = teacher_variants[teacher]
        return {**teacher_kwargs.get(base, {}), **teacher_kwargs.get(teacher, {}), **settings}

    return [
        RunSpec(
            env_id=variant_name(*variants[env_id]),
            teacher=variant_name(*teacher_variants[teacher]),
            seed=int(seed),
            env_kwargs={**(env_kwargs or {}), **variants[env_id][1]},
            teacher_kwargs=kwargs_of(teacher),
            eval_tasks=eval_tasks,
            eval_seed=eval_seed,
            tracking=tracking or None,
        )
        for env_id in envs
        for seed in seeds
        for teacher in teachers
    ]


def registered_name(name: str) -> str:
    """The registered name ``name`` is (or is a variant of, ``adaptive@step=4``).

    Raises:
        BenchmarkError: for a variant that does not parse.
    """
    try:
        return parse_variant(name)[0]
    except VariantError as error:
        raise BenchmarkError(str(error)) from None


def check_env_id(env_id: str) -> None:
    """Raise :class:`BenchmarkError` unless ``env_id`` (or the id it is a variant of) is
    registered, naming the closest."""
    env_id = parse_variant(env_id)[0]
    if env_id in gym.registry:
        return
    ids = sorted(i for i in gym.registry if "MetaCurriculum" in i)
    close = difflib.get_close_matches(env_id, ids, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise BenchmarkError(
        f"unknown env id {env_id!r}.{hint} Registered: {', '.join(ids)}. "
        "An id registered by your own module needs --import MODULE."
    )


def validate(specs: Sequence[RunSpec], *, students: bool = True) -> None:
    """Check names and settings before anything runs, so a typo fails in seconds.

    Args:
        specs: the runs.
        students: also build each env's student settings, check its device and load its
            data (:func:`~metacurriculum.envs.students.check_student`), once per env and
            settings. Off for executors whose runs execute on other machines.

    Raises:
        BenchmarkError: for no runs, a negative seed or evaluation seed, an unknown env id
            or teacher, bad env settings (naming the env id and the setting), missing data,
            bad teacher kwargs, duplicate runs, or a non-positive number of evaluation
            tasks.
    """
    from metacurriculum.envs.families import make_family
    from metacurriculum.teachers import TEACHERS, make_teacher
    from metacurriculum.teachers.base import vector_hint

    if not specs:
        raise BenchmarkError("no runs requested: give at least one env, one teacher and one seed.")
    for seed in dict.fromkeys(spec.seed for spec in specs):
        if not _natural(seed):
            raise BenchmarkError(f"seed {seed!r} must be an integer >= 0.")
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise BenchmarkError("the same run is requested twice; list each env, teacher, seed once.")
    for env_id in dict.fromkeys(spec.env_id for spec in specs):
        check_env_id(env_id)
    checked: set[str] = set()
    teachers: dict[str, Any] = {}
    for spec in specs:
        if not _natural(spec.eval_tasks) or spec.eval_tasks < 1:
            raise BenchmarkError(f"eval_tasks={spec.eval_tasks!r} must be an integer >= 1.")
        if not _natural(spec.eval_seed):
            raise BenchmarkError(
                f"eval_seed={spec.eval_seed!r} (--eval-seed) must be an integer >= 0."
            )
        try:
            spec.env_settings()
        except (TypeError, ValueError) as error:
            raise BenchmarkError(f"bad env settings for {spec.env_id}: {error}") from None
        key = json.dumps([spec.teacher, dict(spec.teacher_kwargs)], sort_keys=True, default=str)
        if key in checked:
            continue
        checked.add(key)
        if spec.registered_teacher not in TEACHERS:
            raise BenchmarkError(TEACHERS.unknown(spec.registered_teacher))
        try:
            teachers[key] = make_teacher(spec.registered_teacher, **spec.teacher_kwargs)
        except (TypeError, ValueError, OSError) as error:
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
                f"{list(family.names)}; drop it or pick one of the {vector_hint()}."
            )
    if students:
        check_students(specs)


def _natural(value: Any) -> bool:
    """An integer >= 0, not a boolean."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


#: The data loader's words for its options -> the harness's (command line, then Python).
DATA_OPTIONS = {
    "(or pass root=)": "(or pass --data-root PATH; env_kwargs data_root=PATH from Python)",
    "pass download=True": "pass --download (env_kwargs download=True from Python)",
}


def check_students(specs: Sequence[RunSpec]) -> None:
    """Build each env's student settings, check its device and load its data, once per env
    id and settings (:func:`~metacurriculum.envs.students.check_student`).

    Raises:
        BenchmarkError: naming the env id and the setting, the missing data and where it
            was looked for, or the failed download; with the options that fix it.
    """
    from metacurriculum.envs.students import check_student

    seen: set[str] = set()
    for spec in specs:
        settings = spec.env_settings()
        key = json.dumps([spec.env_id, settings.to_dict()], sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        logger.info("checking the student and loading the data of %s", spec.env_id)
        try:
            check_student(settings)
        except FileNotFoundError as error:  # the data is missing
            text = str(error)
            for words, options in DATA_OPTIONS.items():
                text = text.replace(words, options)
            raise BenchmarkError(f"{spec.env_id}: {text}") from None
        except OSError as error:  # a download without a network, an unreadable file
            reason = getattr(error, "reason", None) or error.strerror or error
            if settings.download:
                fix = (
                    "Without internet, copy the data to a folder on this machine and pass "
                    "--data-root PATH (or set $METACURRICULUM_DATA) instead of --download."
                )
            else:
                fix = "Check the folder given by --data-root (or $METACURRICULUM_DATA)."
            what = "downloading" if settings.download else "reading"
            raise BenchmarkError(
                f"{spec.env_id}: {what} the {settings.dataset} data failed ({reason}). {fix}"
            ) from None
        except (TypeError, ValueError, RuntimeError) as error:
            raise BenchmarkError(f"bad env settings for {spec.env_id}: {error}") from None


# -- run folders ---------------------------------------------------------------------


#: Settings that say where the data comes from, not what a run computes: a finished run
#: made with ``--download`` or another ``--data-root`` is still the same run.
NOT_IDENTITY = frozenset({"env_settings.download", "env_settings.data_root"})
#: Settings added after runs were made whose default computes what the older code did: a
#: stored config without them matches a request for that default (runs from before task
#: families, ``family="classes"``, are still finished runs).
LATER_DEFAULTS = {"env_settings.family": "classes", "env_settings.compute_budget": None}


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
