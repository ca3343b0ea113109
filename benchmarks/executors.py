"""Executors: how a benchmark's pending runs are executed, behind one small protocol.

The harness (:func:`~metacurriculum.benchmarks.benchmark.run_benchmark`) decides which
runs are pending, then hands them to an :class:`Executor` with a :class:`Job` (where
results go, threads per run) and a :class:`RunEvents` it reports to: meta-steps as
they happen, and each run as finished or failed. The events record failures
(``error.txt``) and draw the progress, so every executor reports the same way.

| name          | runs                                                         |
|---------------|--------------------------------------------------------------|
| ``inline``    | one after another in this process                            |
| ``processes`` | in spawned local worker processes; one worker runs in this process (the default on the CPU) |
| ``ray``       | as Ray tasks on a Ray cluster (:mod:`~metacurriculum.benchmarks.ray_executor`) |
| ``population``| an env's runs stepped together as one population of students, in this process (:mod:`~metacurriculum.benchmarks.population_executor`); the default on CUDA |

A new backend is a class with ``run(pending, job, events)``, registered with
:func:`register_executor`. An executor whose workers cannot reach the driver's disk
runs each run in a temporary folder of its own, ships :func:`run_contents` back, and
the driver writes them with :func:`write_run` (``done.json`` last), so resume and
``--overwrite`` work as they do locally.
"""

from __future__ import annotations

import contextlib
import os
import re
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from metacurriculum.benchmarks.episode import execute_run
from metacurriculum.benchmarks.filesystem import describe_os_error
from metacurriculum.benchmarks.plan import RunSpec
from metacurriculum.benchmarks.run_folders import DONE, RUN_FILES, BenchmarkError, clear_run
from metacurriculum.benchmarks.workers import run_pool
from metacurriculum.registry import PLUGIN_GROUPS, Registry

if TYPE_CHECKING:
    from metacurriculum.benchmarks.benchmark import BenchConfig, Progress

__all__ = [
    "EXECUTORS",
    "Executor",
    "InlineExecutor",
    "Job",
    "ProcessExecutor",
    "RunEvents",
    "make_executor",
    "register_executor",
    "run_contents",
    "write_run",
]

#: The file a failed run's traceback is written to, in its folder.
ERROR = "error.txt"


@dataclass(frozen=True)
class Job:
    """What an executor needs besides the runs.

    Attributes:
        out: the output root; run folders go to ``<out>/<run name>/``.
        imports: modules each worker imports before its first run (they register env
            ids or teachers), as :func:`~metacurriculum.benchmarks.workers.import_modules`.
        workers: parallel workers (local executors); ``1`` runs in this process.
        threads: torch threads of each run.
        config: the whole benchmark config, for an executor's own options (e.g.
            ``ray_address``).
    """

    out: str
    imports: tuple[str, ...]
    workers: int
    threads: int
    config: BenchConfig


class RunEvents:
    """What an executor reports: steps and long phases as they happen, then each run
    finished or failed.

    It records a failure's traceback in the run's ``error.txt`` (and removes a stale one
    when the run finishes) and advances the progress display. A folder where
    ``error.txt`` cannot be written (read-only, a full disk) does not stop the
    benchmark: the failure's line says so instead.

    Args:
        out: the output root.
        progress: the bars or log lines.
    """

    def __init__(self, out: str, progress: Progress) -> None:
        self.out = out
        self.progress = progress
        #: ``(spec, last line of the error)`` of every failed run so far.
        self.failures: list[tuple[RunSpec, str]] = []

    def step(self, spec: RunSpec, meta_step: int, budget: int) -> None:
        """``spec`` reached ``meta_step`` of ``budget``."""
        self.progress.step(spec, meta_step, budget)

    def phase(self, spec: RunSpec, text: str) -> None:
        """``spec`` entered a long phase without steps (``text`` says which)."""
        self.progress.phase(spec, text)

    def finished(self, spec: RunSpec, summary: dict[str, Any]) -> None:
        """``spec`` finished; ``summary`` is its ``done.json``."""
        with contextlib.suppress(OSError):  # a stale error.txt in a read-only folder stays
            (spec.folder(self.out) / ERROR).unlink(missing_ok=True)
        self.progress.finish(spec, summary)

    def failed(self, spec: RunSpec, error: BaseException | str) -> None:
        """``spec`` failed with ``error`` (an exception or its traceback text)."""
        text = error if isinstance(error, str) else "".join(traceback.format_exception(error))
        lines = text.strip().splitlines()  # the last: the error's, without its module
        last = re.sub(r"^(?:\w+\.)+(\w+: )", r"\1", lines[-1]) if lines else "failed"
        folder = spec.folder(self.out)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / ERROR
            path.write_text(text)
        except OSError as unwritten:
            last += f" (its traceback is not saved: {describe_os_error(unwritten)})"
        self.failures.append((spec, last))
        self.progress.finish(spec, None)


class Executor(Protocol):
    """Runs a benchmark's pending runs; the harness above it is the same for all."""

    def run(self, pending: Sequence[RunSpec], job: Job, events: RunEvents) -> None:
        """Execute every run of ``pending``, reporting to ``events``.

        A failed run is reported (``events.failed``) and the others go on. The run
        folders must end up as :func:`~metacurriculum.benchmarks.episode.execute_run`
        writes them, ``done.json`` last.

        Raises:
            Interrupted: on SIGINT or SIGTERM, after every worker has stopped.
            BenchmarkError: when the executor itself cannot go on (a worker process
                died, no cluster to connect to).
        """
        raise NotImplementedError


class InlineExecutor:
    """Runs one after another in this process, on ``job.threads`` torch threads."""

    def run(self, pending: Sequence[RunSpec], job: Job, events: RunEvents) -> None:
        """See :meth:`Executor.run`."""
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(job.threads)
        try:
            for spec in pending:
                try:
                    summary = execute_run(spec, job.out, events.step, events.phase)
                except Exception as error:  # one failed run must not stop the others
                    events.failed(spec, error)
                else:
                    events.finished(spec, summary)
        finally:
            torch.set_num_threads(before)


class ProcessExecutor:
    """Spawned local worker processes (:func:`~metacurriculum.benchmarks.workers.run_pool`),
    fed one run at a time; a single worker runs in this process instead."""

    def run(self, pending: Sequence[RunSpec], job: Job, events: RunEvents) -> None:
        """See :meth:`Executor.run`."""
        if job.workers == 1:
            InlineExecutor().run(pending, job, events)
            return

        def done(spec: RunSpec, summary: dict[str, Any] | None, error: str | None) -> None:
            if error is None:
                events.finished(spec, summary)
            else:
                events.failed(spec, error)

        run_pool(
            pending, job.out, job.imports, job.workers, job.threads, events.step, done, events.phase
        )


#: Executor names -> a class or ``"module:Class"`` (imported when first used, so that
#: an optional backend's dependencies load only when it is chosen).
EXECUTORS: Registry[Callable[[], Executor]] = Registry(
    "executor",
    hint="add yours with register_executor(name, factory) (and --import MODULE), or an "
    f"entry point in the group {PLUGIN_GROUPS['executor']!r} of an installed package",
    group=PLUGIN_GROUPS["executor"],
)
EXECUTORS.register("inline", InlineExecutor)
EXECUTORS.register("processes", ProcessExecutor)
EXECUTORS.register("ray", "metacurriculum.benchmarks.ray_executor:RayExecutor")
EXECUTORS.register("population", "metacurriculum.benchmarks.population_executor:PopulationExecutor")


def register_executor(name: str, factory: str | Callable[[], Executor]) -> None:
    """Make ``factory`` (a class, a function, or ``"module:attr"``) the executor ``name``.

    Raises:
        ValueError: when ``name`` is already registered to another factory.
    """
    EXECUTORS.register(name, factory)


def make_executor(name: str) -> Executor:
    """A new executor of the registered ``name``.

    Raises:
        BenchmarkError: for an unknown name (the message lists the registered ones).
    """
    if name not in EXECUTORS:
        raise BenchmarkError(EXECUTORS.unknown(name))
    return EXECUTORS.lookup(name)()


# -- run folders through bytes, for workers without the driver's disk ----------------


def run_contents(folder: Path) -> dict[str, bytes]:
    """The files of the finished run in ``folder``, by name, as bytes."""
    return {name: (folder / name).read_bytes() for name in RUN_FILES}


def write_run(folder: Path, contents: dict[str, bytes]) -> None:
    """Write a run's files (from :func:`run_contents`) into ``folder``.

    Earlier run files are removed first; each file is written atomically (temporary
    file, fsync, ``os.replace``) and ``done.json`` last, so an interrupted write leaves
    an unfinished run that is redone, never a finished one with missing files.

    Raises:
        BenchmarkError: when ``contents`` lacks one of the run's files.
    """
    missing = [name for name in RUN_FILES if name not in contents]
    if missing:
        raise BenchmarkError(f"the results of {folder} lack {missing}; the run is redone.")
    folder.mkdir(parents=True, exist_ok=True)
    clear_run(folder)
    for name in [*(n for n in RUN_FILES if n != DONE), DONE]:
        tmp = folder / f"{name}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(contents[name])
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, folder / name)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a full disk must not keep a half-written file
            raise
