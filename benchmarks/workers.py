"""Worker processes and signals of a benchmark: spawned workers fed one run at a time.

:func:`run_pool` starts processes with *spawn* (so CUDA is initialised only inside
workers) and hands each one run at a time through a pipe; workers report meta-steps
and results back through it. Workers ignore SIGINT (a terminal's Ctrl-C reaches the
whole process group): the parent decides.

Interrupts: inside :func:`interruptible`, SIGINT (Ctrl-C) and SIGTERM (as schedulers
and Ray send it) raise :class:`Interrupted` in the parent, which hands out no further
run, stops every worker with SIGTERM (SIGKILL after :data:`STOP_GRACE` seconds) while
ignoring further signals, and re-raises. Finished runs are kept; the runs cut short
have no ``done.json`` and are redone next time. A worker whose parent is gone stops at
its next step (its pipe breaks).
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from metacurriculum.benchmarks.episode import execute_run
from metacurriculum.benchmarks.plan import BenchmarkError, RunSpec


def import_modules(modules: Sequence[str]) -> None:
    """Import ``modules`` (they register env ids or teachers as a side effect).

    A module in the current folder is found as ``python -m`` would find it, also from the
    ``metacurriculum`` console script (whose path starts at its own folder): the current
    folder joins the end of ``sys.path`` (spawned workers inherit it).

    Raises:
        BenchmarkError: naming the module, the reason and where it was looked for.
    """
    for name in modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as error:
            if not _in_current_folder(name, error):
                raise BenchmarkError(
                    f"--import {name!r} failed: {error}. Install it, put its folder on "
                    "PYTHONPATH, or run from the folder that holds it."
                ) from None
            sys.path.append(os.getcwd())
            importlib.invalidate_caches()
            try:
                importlib.import_module(name)
            except ImportError as again:
                raise BenchmarkError(f"--import {name!r} failed: {again}") from None
        except ImportError as error:
            raise BenchmarkError(f"--import {name!r} failed: {error}") from None


def _in_current_folder(name: str, error: ModuleNotFoundError) -> bool:
    """Whether ``name`` was not found only because the current folder is not on the path."""
    top = name.split(".")[0]
    cwd = os.getcwd()
    if error.name != top or cwd in sys.path or "" in sys.path:
        return False
    return os.path.isfile(os.path.join(cwd, f"{top}.py")) or os.path.isfile(
        os.path.join(cwd, top, "__init__.py")
    )


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

    def phase(spec: RunSpec, text: str) -> None:
        conn.send(("phase", spec.name, text))

    try:
        while (task := conn.recv()) is not None:
            spec, out = task
            try:
                summary = execute_run(spec, out, report, phase)
            except Exception:  # the parent records it; a traceback object does not pickle
                conn.send(("done", spec.name, None, traceback.format_exc()))
            else:
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


def run_pool(
    pending: Sequence[RunSpec],
    out: str,
    imports: Sequence[str],
    workers: int,
    threads: int,
    on_step: Callable[[RunSpec, int, int], None],
    on_done: Callable[[RunSpec, dict[str, Any] | None, str | None], None],
    on_phase: Callable[[RunSpec, str], None] | None = None,
) -> None:
    """Run ``pending`` on ``workers`` spawned processes of ``threads`` torch threads each.

    The parent hands out one run at a time, so after an interrupt no new run starts,
    and every worker is stopped on the way out, whatever the exit.

    Args:
        pending: the runs.
        out: the output root.
        imports: modules every worker imports first (:func:`import_modules`).
        workers: processes to start.
        threads: torch threads per process.
        on_step: called with ``(spec, meta_step, budget)`` as a worker reports a step.
        on_done: called with ``(spec, summary, None)`` for a finished run, ``(spec, None,
            traceback)`` for a failed one.
        on_phase: called with ``(spec, text)`` as a worker's run enters a long phase
            (loading data, the final evaluation).

    Raises:
        BenchmarkError: when a worker process dies (out of memory, killed).
        Interrupted: on SIGINT or SIGTERM (inside :func:`interruptible`), after the
            workers have stopped.
    """
    context = mp.get_context("spawn")
    by_name = {spec.name: spec for spec in pending}
    todo = list(pending)
    # Started ignoring SIGINT (inherited through exec): no Ctrl-C traceback while importing.
    with _signals(signal.SIG_IGN, [signal.SIGINT]):
        pool = [_Worker(context, threads, imports) for _ in range(workers)]
    finished = False
    try:
        for worker in pool:
            worker.send(todo.pop(0) if todo else None, out)
        while any(worker.spec is not None for worker in pool):
            busy = [w for w in pool if w.spec is not None]
            wait([obj for w in busy for obj in (w.conn, w.process.sentinel)], timeout=1.0)
            for worker in busy:
                for message in _messages(worker, threads):
                    if message[0] == "step":
                        on_step(by_name[message[1]], *message[2:])
                        continue
                    if message[0] == "phase":
                        if on_phase is not None:
                            on_phase(by_name[message[1]], message[2])
                        continue
                    spec, (_, _, summary, error) = worker.spec, message
                    on_done(spec, summary, error)
                    worker.send(todo.pop(0) if todo else None, out)
        finished = True
    finally:
        _stop(pool, graceful=finished)


def _messages(worker: _Worker, threads: int) -> list[tuple[Any, ...]]:
    """What ``worker`` sent so far; a worker that died mid-run is a :class:`BenchmarkError`
    (whose fix keeps the runs' ``threads``: fewer workers would otherwise mean more
    threads per run, and other last bits in the numbers)."""
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
            f"--workers and --threads {threads} to finish (the same threads per run keep "
            "the numbers those runs would have had)."
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
