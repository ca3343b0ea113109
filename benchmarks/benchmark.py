"""Executing a benchmark: its one config, the executor that runs it, progress.

``run_benchmark(BenchConfig(...))`` expands the config into runs
(:func:`~metacurriculum.benchmarks.plan.expand`), checks names, settings and that
the output folder is writable, skips finished runs, and hands the rest to the
config's executor (:mod:`~metacurriculum.benchmarks.executors`): ``processes`` (the
default on the CPU: in this process when one process suffices, else in spawned worker
processes), ``population`` (an env's runs as one population of students: the default
on CUDA), ``inline`` or ``ray``. Each run gets ``cores // workers`` torch threads (``workers`` as
requested, not as many as runs are left, so that a resumed benchmark computes the same
numbers), or ``threads``. A tqdm bar shows runs done and meta-steps, and what a run does
between steps (loading its data, its final evaluation); when stderr is not a terminal,
plain log lines say the same. One ``bench`` at a time writes to an output folder
(:func:`~metacurriculum.benchmarks.filesystem.hold_output`): a second one fails at once.

Interrupts: SIGINT (Ctrl-C) and SIGTERM raise
:class:`~metacurriculum.benchmarks.workers.Interrupted`, after every worker has
stopped (within seconds). Finished runs are kept; the runs cut short have no
``done.json`` and are redone next time.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from metacurriculum.benchmarks.episode import execute_run
from metacurriculum.benchmarks.executors import Executor, Job, RunEvents, make_executor
from metacurriculum.benchmarks.filesystem import hold_output
from metacurriculum.benchmarks.plan import (
    BenchmarkError,
    RunSpec,
    check_students,
    expand,
    plan,
    registered_name,
    validate,
)
from metacurriculum.benchmarks.run_folders import check_writable
from metacurriculum.benchmarks.tracking import Tracking
from metacurriculum.benchmarks.workers import Interrupted, import_modules, interruptible

__all__ = [
    "BenchConfig",
    "Interrupted",
    "Progress",
    "available_cores",
    "default_executor",
    "execute_run",
    "import_modules",
    "interruptible",
    "run_benchmark",
    "schedule",
]

logger = logging.getLogger("metacurriculum.benchmarks")


@dataclass
class BenchConfig:
    """Everything a benchmark needs; the command line and the presets both fill it in.

    Attributes:
        envs: env ids to run.
        teachers: teacher names (``"none"`` is the baseline of the statistics), or variants
            of them with settings of their own (``"adaptive@step=4"``, see
            :func:`~metacurriculum.benchmarks.plan.expand`).
        seeds: seeds, each run once per env and teacher.
        env_kwargs: settings applied to every env (``MetaCurriculumConfig`` fields).
        teacher_kwargs: per teacher name, the kwargs of its factory (a registered name's
            apply to its variants too).
        eval_tasks: unseen tasks of each final evaluation (the paper: 10).
        eval_seed: seed of the final evaluation's tasks, shared by every run.
        device: the student's device (``"cpu"``, ``"cuda"``...); ``None`` keeps the env's.
        out: output root; runs go to ``<out>/<env_id>/<teacher>/seed_<s>/``.
        workers: parallel processes; 1 runs in this process; ``None`` one per core
            (at most one per pending run; a single pending run runs in this process).
            With the ``ray`` executor: at most this many runs at once (``None``: as many
            as the cluster's resources allow).
        threads: torch threads per run; ``None``: ``cores // workers``, at least 1, from
            the requested ``workers`` (not the runs left, so a resume computes the same
            numbers). Small CPU students run fastest on one thread each (and far slower
            when threads outnumber free cores); the thread count can change CPU results in
            the last bits, so resume with the same ``workers`` and ``threads``.
        overwrite: recompute finished runs whose stored config differs, instead of failing.
        plots: draw the plots at the end.
        imports: modules imported here and in every worker before anything runs, e.g.
            ones that register your own env ids or teachers.
        executor: how the runs are executed: ``"processes"`` (local processes, as
            ``workers`` says), ``"population"`` (an env's runs stepped together as one
            population of students, in this process), ``"inline"`` (in this process) or
            ``"ray"`` (Ray tasks); any name registered with
            :func:`~metacurriculum.benchmarks.executors.register_executor`. ``None``:
            ``"population"`` when the runs' device is CUDA, else ``"processes"`` (on the
            CPU a population is no faster than separate students, and processes run in
            parallel).
        population: with the ``population`` executor, the most runs in one population
            (they share an env id, its settings and the evaluation); ``None``: all
            pending runs of an env.
        ray_address: the Ray cluster of the ``ray`` executor (``"auto"``, ``"ray://..."``);
            ``None``: ``$RAY_ADDRESS``, else a local Ray started for the benchmark and
            shut down after it.
        gpus_per_run: GPUs each Ray task asks for, whole or a fraction (``0.25``: four
            runs share a GPU); ``None``: 1 when the cluster has GPUs and the runs' device
            is not ``"cpu"``, else 0.
        tracking: where the runs are watched as they train: TensorBoard event files, a
            Weights & Biases project (:class:`~metacurriculum.benchmarks.tracking.Tracking`);
            ``None``: nowhere. The run folders are the same either way.
    """

    envs: Sequence[str] = ("MetaCurriculum-Analytic-v0",)
    teachers: Sequence[str] = ("adaptive", "static", "none", "random", "tscl-window")
    seeds: Sequence[int] = (0, 1, 2, 3, 4)
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    teacher_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    eval_tasks: int = 200
    eval_seed: int = 0
    device: str | None = None
    out: str = "runs"
    workers: int | None = None
    threads: int | None = None
    overwrite: bool = False
    plots: bool = True
    imports: Sequence[str] = ()
    executor: str | None = None
    population: int | None = None
    ray_address: str | None = None
    gpus_per_run: float | None = None
    tracking: Tracking | None = None

    def specs(self) -> list[RunSpec]:
        """The runs of this benchmark (see :func:`~metacurriculum.benchmarks.plan.expand`)."""
        named = set(self.teachers) | {registered_name(t) for t in self.teachers}
        unknown = sorted(set(self.teacher_kwargs) - named)
        if unknown:
            raise BenchmarkError(
                f"teacher kwargs given for {unknown}, which are not among the teachers "
                f"{list(self.teachers)}; add them to --teachers or drop their kwargs."
            )
        env_kwargs = dict(self.env_kwargs)
        if self.device is not None:
            env_kwargs["device"] = self.device
        return expand(
            self.envs,
            self.teachers,
            self.seeds,
            env_kwargs=env_kwargs,
            teacher_kwargs=self.teacher_kwargs,
            eval_tasks=self.eval_tasks,
            eval_seed=self.eval_seed,
            tracking=self.tracking,
        )


def available_cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def run_benchmark(
    config: BenchConfig,
    *,
    progress: bool | None = None,
    then: Callable[[], None] | None = None,
) -> list[RunSpec]:
    """Run every unfinished run of ``config`` and return all its runs (done and new).

    Every check comes before the first run: names, settings, options, each env's
    student and data, that the output folder is writable and that no other command
    holds it (:func:`~metacurriculum.benchmarks.filesystem.hold_output`). The lock is
    held until the runs and ``then`` are done.

    Args:
        config: the benchmark.
        progress: show tqdm bars; ``None`` shows them when stderr is a terminal.
        then: called after the runs, when none failed, with the output folder still
            locked (the command line writes the results and plots there).

    Raises:
        BenchmarkError: bad names or settings, missing data, or an output folder that
            cannot be written or that another command is writing to (before anything
            runs), finished runs with other settings
            (:class:`~metacurriculum.benchmarks.plan.ConfigMismatchError`), or runs
            that failed (after the others finished; tracebacks in ``error.txt``).
        Interrupted: on SIGINT (Ctrl-C) or SIGTERM, after every worker has stopped
            (within seconds); finished runs are kept, unfinished ones redone next time.
    """
    import_modules(config.imports)
    specs = config.specs()
    validate(specs, students=False)
    name = config.executor or default_executor(specs)
    executor = make_executor(name)
    check_options(config, name)
    if config.tracking:
        config.tracking.check()  # the package and the folder, before the data loads
    if not _remote(config, name):
        check_students(specs)  # the data loads here: after the cheap checks
    check_writable(config.out)
    with hold_output(config.out):
        pending = plan(specs, config.out, overwrite=config.overwrite)
        logger.info(
            "%d runs, %d finished before, %d to do",
            len(specs),
            len(specs) - len(pending),
            len(pending),
        )
        if pending:
            _execute(config, executor, pending, progress)
        if then is not None:
            then()
    return specs


def _execute(
    config: BenchConfig, executor: Executor, pending: list[RunSpec], progress: bool | None
) -> None:
    """Hand ``pending`` to ``executor``; raise after it for the runs that failed."""
    workers, threads = schedule(config, len(pending))
    job = Job(config.out, tuple(config.imports), workers, threads, config)
    bar = Progress(pending, enabled=sys.stderr.isatty() if progress is None else progress)
    events = RunEvents(config.out, bar)
    try:
        with interruptible():
            executor.run(pending, job, events)
    finally:
        bar.close()
    failures = events.failures
    if failures:
        lines = [f"  {spec.folder(config.out)}: {message}" for spec, message in failures]
        raise BenchmarkError(
            f"{len(failures)} of {len(pending)} runs failed (traceback in each error.txt):\n"
            + "\n".join(lines)
            + "\nFix the cause and rerun the same command; finished runs are kept."
        )


def check_options(config: BenchConfig, executor: str) -> None:
    """Raise :class:`BenchmarkError` for options no benchmark can run with, before any run.

    Local executors run at most as many torch threads per run as this process has cores
    (more only slows every run down; far more crashes the BLAS libraries); Ray's tasks run
    on other machines, so there the bound is Ray's to enforce.
    """
    if not str(config.out):
        raise BenchmarkError(
            "the output folder is empty (--out ''); pass a folder, e.g. --out runs "
            "(or --out . for the current folder)."
        )
    for option, value in (("workers", config.workers), ("threads", config.threads)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise BenchmarkError(f"--{option} {value!r} must be an integer >= 1.")
        if value is not None and value < 1:
            raise BenchmarkError(f"--{option} {value} must be >= 1 (leave it out for the default).")
    cores = available_cores()
    if config.threads is not None and config.threads > cores and executor != "ray":
        raise BenchmarkError(
            f"--threads {config.threads} is more than the {cores} cores this process may use; "
            f"pass at most --threads {cores} (more threads than cores slow every run down)."
        )
    if config.population is not None and config.population < 1:
        raise BenchmarkError(f"population={config.population} must be >= 1 (or None).")
    if config.gpus_per_run is not None and config.gpus_per_run < 0:
        raise BenchmarkError(f"gpus_per_run={config.gpus_per_run} must be >= 0 (or None).")


def _remote(config: BenchConfig, executor: str) -> bool:
    """Whether the runs may execute on other machines (a Ray cluster), where the data and
    devices are not this machine's: their students are not checked here."""
    if executor != "ray":
        return False
    address = config.ray_address or os.environ.get("RAY_ADDRESS") or "local"
    return address != "local"


def default_executor(specs: Sequence[RunSpec]) -> str:
    """``"population"`` when the first run's student is on CUDA, else ``"processes"``."""
    import torch

    device = specs[0].env_settings().device if specs else "cpu"
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return "population" if device.startswith("cuda") else "processes"


def schedule(config: BenchConfig, pending: int) -> tuple[int, int]:
    """``(processes, threads per run)`` for ``pending`` runs of ``config``.

    The thread count follows from the requested workers, never from how many runs are
    left, so a resumed benchmark computes its runs as the first attempt did (on the CPU
    the thread count can change the last bits of the numbers).
    """
    cores = available_cores()
    requested = config.workers or cores
    threads = config.threads or max(1, cores // requested)
    return min(requested, pending), threads


class Progress:
    """Runs done and meta-steps trained, as tqdm bars on a terminal, else as log lines.

    Args:
        pending: the runs to do.
        enabled: draw bars; when False, log one line per finished run.
    """

    def __init__(self, pending: Sequence[RunSpec], enabled: bool) -> None:
        self.total = len(pending)
        self.count = 0
        self.seen: dict[str, int] = {}
        self.budgets: dict[str, int] = {}
        self.runs = self.steps = None
        if enabled:
            from tqdm.auto import tqdm

            budgets = sum(spec.env_settings().budget for spec in pending)
            self.runs = tqdm(total=self.total, desc="runs", unit="run", position=0)
            self.steps = tqdm(total=budgets, desc="meta-steps", unit="step", position=1)

    def phase(self, spec: RunSpec, text: str) -> None:
        """``spec`` entered a long phase without steps: loading data, the final evaluation."""
        if self.steps is not None:
            self.steps.set_postfix_str(f"{spec.name}: {text}", refresh=True)
        else:
            logger.info("%s: %s", spec.name, text)

    def step(self, spec: RunSpec, meta_step: int, budget: int) -> None:
        """A worker reached ``meta_step`` of ``budget`` in ``spec``."""
        if self.steps is not None:
            self.steps.update(meta_step - self.seen.get(spec.name, 0))
            self.steps.set_postfix_str(f"{spec.name} {meta_step}/{budget}", refresh=False)
        self.seen[spec.name] = meta_step
        self.budgets[spec.name] = budget

    def finish(self, spec: RunSpec, summary: dict[str, Any] | None) -> None:
        """``spec`` finished (``summary`` from ``done.json``) or failed (``None``)."""
        self.count += 1
        if self.steps is not None and spec.name in self.budgets:  # a diverged run ends early
            self.steps.update(self.budgets[spec.name] - self.seen[spec.name])
        if summary is None:
            line = f"[{self.count}/{self.total}] FAILED {spec.name}"
        else:
            evaluation = summary.get("eval_seconds")
            seconds = f"{summary['train_seconds']:.1f} s training" + (
                "" if evaluation is None else f", {evaluation:.1f} s evaluation"
            )
            line = (
                f"[{self.count}/{self.total}] {spec.name}: final loss "
                f"{_fmt(summary['final_loss'])}, accuracy {_fmt(summary['final_accuracy'])} "
                f"({seconds})"
            )
        if self.runs is None:
            logger.info(line)
            return
        self.runs.write(line)
        self.runs.update(1)

    def close(self) -> None:
        """Close the bars."""
        for bar in (self.runs, self.steps):
            if bar is not None:
                bar.close()


def _fmt(value: float | None) -> str:
    return "nan" if value is None else f"{value:.4f}"
