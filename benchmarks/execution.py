"""Executing a benchmark: its one config, runs in parallel spawned processes, progress.

``run_benchmark(BenchConfig(...))`` expands the config into runs
(:func:`~metacurriculum.benchmarks.harness.expand`), checks names, settings and that
the output folder is writable, skips finished runs, and executes the rest: in this
process when one process suffices, else in processes started with *spawn* (so CUDA is
initialised only inside workers). Each run gets ``cores // workers`` torch threads
(``workers`` as requested, not as many as runs are left, so that a resumed benchmark
computes the same numbers), or ``threads``. Workers report meta-steps through pipes;
a tqdm bar shows runs done and meta-steps (plain log lines when stderr is not a
terminal).

Interrupts: SIGINT (Ctrl-C) and SIGTERM raise :class:`Interrupted` in the parent, which
hands out no further run, stops every worker with SIGTERM (SIGKILL after
:data:`STOP_GRACE` seconds) while ignoring further signals, and re-raises. Finished
runs are kept; the runs cut short have no ``done.json`` and are redone next time.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from metacurriculum.benchmarks.harness import (
    BenchmarkError,
    RunSpec,
    execute_run,
    expand,
    plan,
    validate,
)
from metacurriculum.benchmarks.run_folders import check_writable

logger = logging.getLogger("metacurriculum.benchmarks")


@dataclass
class BenchConfig:
    """Everything a benchmark needs; the command line and the presets both fill it in.

    Attributes:
        envs: env ids to run.
        teachers: teacher names (``"none"`` is the baseline of the statistics).
        seeds: seeds, each run once per env and teacher.
        env_kwargs: settings applied to every env (``MetaCurriculumConfig`` fields).
        teacher_kwargs: per teacher name, the kwargs of its factory.
        eval_tasks: unseen tasks of each final evaluation (the paper: 10).
        eval_seed: seed of the final evaluation's tasks, shared by every run.
        device: the student's device (``"cpu"``, ``"cuda"``...); ``None`` keeps the env's.
        out: output root; runs go to ``<out>/<env_id>/<teacher>/seed_<s>/``.
        workers: parallel processes; 1 runs in this process; ``None`` one per core
            (at most one per pending run; a single pending run runs in this process).
        threads: torch threads per run; ``None``: ``cores // workers``, at least 1, from
            the requested ``workers`` (not the runs left, so a resume computes the same
            numbers). Small CPU students run fastest on one thread each (and far slower
            when threads outnumber free cores); the thread count can change CPU results in
            the last bits, so resume with the same ``workers`` and ``threads``.
        overwrite: recompute finished runs whose stored config differs, instead of failing.
        plots: draw the plots at the end.
        imports: modules imported here and in every worker before anything runs, e.g.
            ones that register your own env ids or teachers.
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

    def specs(self) -> list[RunSpec]:
        """The runs of this benchmark (see :func:`~metacurriculum.benchmarks.harness.expand`)."""
        unknown = sorted(set(self.teacher_kwargs) - set(self.teachers))
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
        )


def available_cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def import_modules(modules: Sequence[str]) -> None:
    """Import ``modules`` (they register env ids or teachers as a side effect)."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise BenchmarkError(f"--import {name!r} failed: {error}") from None


def run_benchmark(config: BenchConfig, *, progress: bool | None = None) -> list[RunSpec]:
    """Run every unfinished run of ``config`` and return all its runs (done and new).

    Args:
        config: the benchmark.
        progress: show tqdm bars; ``None`` shows them when stderr is a terminal.

    Raises:
        BenchmarkError: bad names or settings, or an output folder that cannot be
            written (before anything runs), finished runs with other settings
            (:class:`~metacurriculum.benchmarks.harness.ConfigMismatchError`), or runs
            that failed (after the others finished; tracebacks in ``error.txt``).
        Interrupted: on SIGINT (Ctrl-C) or SIGTERM, after every worker has stopped
            (within seconds); finished runs are kept, unfinished ones redone next time.
    """
    import_modules(config.imports)
    specs = config.specs()
    validate(specs)
    if (config.workers is not None and config.workers < 1) or (config.threads or 1) < 1:
        raise BenchmarkError(
            f"workers={config.workers} and threads={config.threads} must be >= 1 (or None)."
        )
    check_writable(config.out)
    pending = plan(specs, config.out, overwrite=config.overwrite)
    logger.info(
        "%d runs, %d finished before, %d to do", len(specs), len(specs) - len(pending), len(pending)
    )
    if not pending:
        return specs
    workers, threads = schedule(config, len(pending))
    bar = Progress(pending, enabled=sys.stderr.isatty() if progress is None else progress)
    try:
        with interruptible():
            if workers == 1:
                failures = _run_here(pending, config.out, bar, threads)
            else:
                failures = _run_pool(pending, config, workers, threads, bar)
    finally:
        bar.close()
    if failures:
        lines = [f"  {spec.folder(config.out)}: {message}" for spec, message in failures]
        raise BenchmarkError(
            f"{len(failures)} of {len(pending)} runs failed (traceback in each error.txt):\n"
            + "\n".join(lines)
            + "\nFix the cause and rerun the same command; finished runs are kept."
        )
    return specs


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


def _record_failure(spec: RunSpec, out: str, error: BaseException | str) -> str:
    text = error if isinstance(error, str) else "".join(traceback.format_exception(error))
    folder = spec.folder(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "error.txt").write_text(text)
    return text.strip().splitlines()[-1] if text.strip() else "failed"


def _run_here(
    pending: Sequence[RunSpec], out: str, bar: Progress, threads: int
) -> list[tuple[RunSpec, str]]:
    import torch

    failures, before = [], torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for spec in pending:
            try:
                summary = execute_run(spec, out, on_step=bar.step)
            except Exception as error:  # one failed run must not stop the others
                failures.append((spec, _record_failure(spec, out, error)))
                bar.finish(spec, None)
            else:
                (spec.folder(out) / "error.txt").unlink(missing_ok=True)
                bar.finish(spec, summary)
    finally:
        torch.set_num_threads(before)
    return failures


# -- worker processes ----------------------------------------------------------------

#: Seconds a stopped worker gets to exit after SIGTERM before it is killed.
STOP_GRACE = 2.0


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived during a benchmark; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def _signals(
    handler: Any, signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM)
) -> Iterator[None]:
    """Handle ``signals`` with ``handler`` inside the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {sig: signal.getsignal(sig) for sig in signals}
    for sig in before:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in before.items():
            signal.signal(sig, old)


def interruptible() -> contextlib.AbstractContextManager[None]:
    """Inside the block, SIGTERM (as schedulers and Ray send it) is a Ctrl-C:
    both raise :class:`Interrupted`."""
    return _signals(_raise_interrupted)


def _worker_main(conn: Connection, threads: int, imports: Sequence[str]) -> None:
    """A spawned worker: runs the specs the parent sends, one at a time, until ``None``.

    It ignores SIGINT (a terminal's Ctrl-C reaches the whole process group): the parent
    decides, and stops workers with SIGTERM, whose default action ends them at once.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    import metacurriculum  # noqa: F401 - registers the env ids in this process

    import_modules(imports)

    def report(spec: RunSpec, meta_step: int, budget: int) -> None:
        conn.send(("step", spec.name, meta_step, budget))

    try:
        while (task := conn.recv()) is not None:
            spec, out = task
            try:
                summary = execute_run(spec, out, on_step=report)
            except Exception:  # the parent records it; a traceback object does not pickle
                conn.send(("done", spec.name, None, traceback.format_exc()))
            else:
                (spec.folder(out) / "error.txt").unlink(missing_ok=True)
                conn.send(("done", spec.name, summary, None))
    except (EOFError, BrokenPipeError):  # the parent is gone: stop
        return


class _Worker:
    """A spawned worker process, its end of the pipe and the run it is on."""

    def __init__(self, context: Any, threads: int, imports: Sequence[str]) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=_worker_main, args=(child, threads, tuple(imports)), daemon=True
        )
        self.process.start()
        child.close()
        self.spec: RunSpec | None = None

    def send(self, spec: RunSpec | None, out: str) -> None:
        self.spec = spec
        self.conn.send(None if spec is None else (spec, out))


def _run_pool(
    pending: Sequence[RunSpec], config: BenchConfig, workers: int, threads: int, bar: Progress
) -> list[tuple[RunSpec, str]]:
    """Run ``pending`` on ``workers`` spawned processes; the parent hands out one run at a
    time, so after an interrupt no new run starts, and every worker is stopped on exit."""
    context = mp.get_context("spawn")
    by_name = {spec.name: spec for spec in pending}
    todo, failures = list(pending), []
    # Started ignoring SIGINT (inherited through exec): no Ctrl-C traceback while importing.
    with _signals(signal.SIG_IGN, [signal.SIGINT]):
        pool = [_Worker(context, threads, config.imports) for _ in range(workers)]
    finished = False
    try:
        for worker in pool:
            worker.send(todo.pop(0), config.out)
        while any(worker.spec is not None for worker in pool):
            busy = [w for w in pool if w.spec is not None]
            wait([obj for w in busy for obj in (w.conn, w.process.sentinel)], timeout=1.0)
            for worker in busy:
                for message in _messages(worker):
                    if message[0] == "step":
                        bar.step(by_name[message[1]], *message[2:])
                        continue
                    spec, (_, _, summary, error) = worker.spec, message
                    if error is not None:
                        failures.append((spec, _record_failure(spec, config.out, error)))
                    bar.finish(spec, summary)
                    worker.send(todo.pop(0) if todo else None, config.out)
        finished = True
    finally:
        _stop(pool, graceful=finished)
    return failures


def _messages(worker: _Worker) -> list[tuple[Any, ...]]:
    """What ``worker`` sent so far; a worker that died mid-run is a :class:`BenchmarkError`."""
    messages = []
    try:
        while worker.conn.poll():
            messages.append(worker.conn.recv())
            if messages[-1][0] == "done":
                return messages
    except (EOFError, OSError):
        pass
    if not worker.process.is_alive() and worker.spec is not None:
        raise BenchmarkError(
            f"a worker process died (exit code {worker.process.exitcode}) while running "
            f"{worker.spec.name} (out of memory?); finished runs are kept: rerun with fewer "
            "--workers to finish."
        )
    return messages


def _stop(pool: Sequence[_Worker], graceful: bool) -> None:
    """End every worker: ask idle ones to exit, SIGTERM the rest, SIGKILL what lingers.

    Signals are ignored meanwhile, so a second Ctrl-C cannot cut the cleanup short and
    leave workers behind; this takes at most about ``2 * STOP_GRACE`` seconds.
    """
    with _signals(signal.SIG_IGN):
        for worker in pool:
            if not graceful:
                worker.process.terminate()
            elif worker.process.is_alive():
                with contextlib.suppress(OSError):
                    worker.send(None, "")
        deadline = time.monotonic() + STOP_GRACE
        for worker in pool:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.terminate()
                worker.process.join(STOP_GRACE)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()


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
            line = (
                f"[{self.count}/{self.total}] {spec.name}: final loss "
                f"{_fmt(summary['final_loss'])}, accuracy {_fmt(summary['final_accuracy'])} "
                f"({summary['train_seconds']:.1f} s)"
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
