"""The ``ray`` executor: each run is a Ray task; the driver writes every run folder.

``metacurriculum bench --executor ray [--ray-address ADDRESS]`` connects to
``ADDRESS`` (else ``$RAY_ADDRESS``, else a local Ray started for the command and shut
down after it; a Ray already initialised in this process is used and left running).

- **Resources.** A task asks for ``num_cpus`` = the run's torch threads and
  ``num_gpus`` = ``gpus_per_run`` (whole or fractional; by default 1 when the cluster has
  GPUs and the run's device is not ``"cpu"``). Ray runs as many tasks at once as the
  cluster's resources allow (at most ``workers``, when given).
- **No shared disk.** A task runs :func:`~metacurriculum.benchmarks.episode.execute_run`
  into a temporary folder on its worker and returns the folder's files as bytes; the
  driver writes them (:func:`~metacurriculum.benchmarks.executors.write_run`,
  ``done.json`` last). Resume, ``--overwrite`` and the results are those of the local
  executors.
- **Progress.** Tasks post their meta-steps to a small actor that the driver drains
  while it waits, so the bars and per-run lines are those of a local benchmark.
- **Failures.** A run that raises is reported with its traceback; a task whose worker
  dies (killed, out of memory) is retried :attr:`RayExecutor.max_retries` times, then
  reported failed. The other runs go on.
- **Interrupts.** On SIGINT or SIGTERM every pending task is cancelled (a
  ``KeyboardInterrupt`` first, so it removes its temporary folder; killed after
  :attr:`RayExecutor.stop_grace` seconds), a local Ray started for the command is
  shut down without Ray's per-process grace, and what killed tasks left in this
  machine's temporary folder is removed, before
  :class:`~metacurriculum.benchmarks.workers.Interrupted` is raised: about a second,
  also when the signal reached Ray's own processes (a SIGTERM to the process group, as
  Slurm sends it). A signal during the second or two of ``ray.init`` meets Ray's own
  handler instead, which aborts. After ``kill -9`` of the command, Ray's processes
  die with it, except two agents that wait about 60 s for Ray's (dead) control store
  before they exit; nothing of them is needed.

Ray is an optional dependency (``pip install "metacurriculum[ray]"``), imported only
when this executor runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import traceback
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from metacurriculum.benchmarks.benchmark import available_cores
from metacurriculum.benchmarks.episode import execute_run
from metacurriculum.benchmarks.executors import Job, RunEvents, run_contents, write_run
from metacurriculum.benchmarks.plan import BenchmarkError, RunSpec
from metacurriculum.benchmarks.workers import Interrupted, _signals, import_modules

__all__ = ["RayExecutor", "check_reachable", "import_ray"]

#: Seconds between a task's progress reports.
REPORT_EVERY = 0.25


def import_ray() -> Any:
    """The ``ray`` module.

    Raises:
        BenchmarkError: when Ray is not installed, naming the extra to install.
    """
    try:
        import ray
    except ImportError:
        raise BenchmarkError(
            'the ray executor needs Ray: pip install "metacurriculum[ray]" '
            '(or pip install "ray>=2.60").'
        ) from None
    return ray


class _Inbox:
    """An actor holding what tasks post (meta-steps, phases), until the driver takes it."""

    def __init__(self) -> None:
        self.messages: list[tuple[Any, ...]] = []

    def post(self, *message: Any) -> None:
        self.messages.append(message)

    def take(self) -> list[tuple[Any, ...]]:
        messages, self.messages = self.messages, []
        return messages


def temporary_prefix(token: str) -> str:
    """The prefix of the temporary run folders of the benchmark ``token``."""
    return f"metacurriculum-{token}-"


def run_task(
    spec: RunSpec, threads: int, imports: Sequence[str], inbox: Any, token: str = "run"
) -> dict[str, Any]:
    """One run on a Ray worker, in a temporary folder: ``{"summary", "files", "last_step"}``
    on success, ``{"error": traceback}`` when the run raised.

    Meta-steps are posted to ``inbox`` at most every :data:`REPORT_EVERY` seconds (phases
    always); the last one comes back with the result, so the bar ends exact however late
    posts land. The folder's name carries the benchmark's ``token``, so that the driver
    can remove what a killed task left on its machine.
    """
    import torch

    import metacurriculum  # noqa: F401 - registers the env ids in this worker

    torch.set_num_threads(threads)
    posted, latest = 0.0, (0, 0)

    def report(spec: RunSpec, meta_step: int, budget: int) -> None:
        nonlocal posted, latest
        latest = (meta_step, budget)
        if time.monotonic() - posted >= REPORT_EVERY:
            posted = time.monotonic()
            inbox.post.remote("step", spec.name, meta_step, budget)

    def phase(spec: RunSpec, text: str) -> None:
        inbox.post.remote("phase", spec.name, text)

    try:
        import_modules(imports)
        with tempfile.TemporaryDirectory(prefix=temporary_prefix(token)) as tmp:
            summary = execute_run(spec, tmp, report, phase)
            files = run_contents(spec.folder(tmp))
        return {"summary": summary, "files": files, "last_step": latest}
    except Exception:  # the driver reports it; the other runs go on
        return {"error": traceback.format_exc()}


class RayExecutor:
    """Runs each pending run as a Ray task (see the module's description).

    Attributes:
        max_retries: times a task whose worker died is retried before it is reported
            failed (a run that raises is not retried: it would raise again).
        poll: seconds between the driver's looks at progress and finished tasks.
        stop_grace: seconds cancelled tasks get to unwind before they are killed.
    """

    max_retries: int = 2
    poll: float = 0.5
    #: Seconds cancelled tasks get to unwind (their temporary folders removed) before
    #: they are killed.
    stop_grace: float = 0.5

    def run(self, pending: Sequence[RunSpec], job: Job, events: RunEvents) -> None:
        """See :meth:`~metacurriculum.benchmarks.executors.Executor.run`."""
        ray = import_ray()
        started = _connect(ray, job.config.ray_address)
        received: list[int] = []
        self.token = uuid.uuid4().hex[:12]

        def interrupt(signum: int, frame: Any) -> None:
            received.append(signum)
            raise Interrupted(signum)

        try:
            with _signals(interrupt):  # ray.init installs its own SIGTERM handler
                self._run(ray, pending, job, events)
        except KeyboardInterrupt as error:
            if received and not isinstance(error, Interrupted):  # Ray's wait re-raised it
                raise Interrupted(received[0]) from None
            raise
        finally:
            with _signals(_ignore):
                if started:
                    _shutdown(ray, fast=bool(received))
                _remove_leftovers(self.token)

    def _run(self, ray: Any, pending: Sequence[RunSpec], job: Job, events: RunEvents) -> None:
        available = ray.cluster_resources().get("GPU", 0)
        gpus = {spec.name: _gpus(spec, job.config.gpus_per_run, available) for spec in pending}
        inbox = ray.remote(num_cpus=0)(_Inbox).remote()
        task = ray.remote(run_task)
        limit = job.config.workers or len(pending)
        todo, running = list(pending), {}
        try:
            while todo or running:
                while todo and len(running) < limit:
                    spec = todo.pop(0)
                    options = dict(num_cpus=job.threads, num_gpus=gpus[spec.name])
                    ref = task.options(max_retries=self.max_retries, **options).remote(
                        spec, job.threads, job.imports, inbox, self.token
                    )
                    running[ref] = spec
                ready, _ = ray.wait(list(running), num_returns=1, timeout=self.poll)
                _show_steps(ray, inbox, running, events)
                for ref in ready:
                    self._collect(ray, ref, running.pop(ref), job, events)
        finally:
            if running:  # an interrupt or an error of the driver: stop every task
                with _signals(_ignore):
                    _cancel(ray, list(running), self.stop_grace)
            ray.kill(inbox)

    def _collect(self, ray: Any, ref: Any, spec: RunSpec, job: Job, events: RunEvents) -> None:
        """Write the finished task's run folder, or report its failure."""
        try:
            result = ray.get(ref)
        except ray.exceptions.RayError as error:  # the worker died max_retries + 1 times
            events.failed(spec, f"{type(error).__name__}: {error}")
            return
        if "error" in result:
            events.failed(spec, result["error"])
            return
        try:
            write_run(spec.folder(job.out), result["files"])
        except (OSError, BenchmarkError) as error:
            events.failed(spec, error)
        else:
            events.step(spec, *result["last_step"])
            events.finished(spec, result["summary"])


def _show_steps(ray: Any, inbox: Any, running: dict[Any, RunSpec], events: RunEvents) -> None:
    """Report the meta-steps and phases posted so far (late ones of runs already finished
    are dropped)."""
    by_name = {spec.name: spec for spec in running.values()}
    for kind, name, *rest in ray.get(inbox.take.remote()):
        if name in by_name:
            (events.step if kind == "step" else events.phase)(by_name[name], *rest)


def _ignore(signum: int, frame: Any) -> None:
    """A signal handler that does nothing: cleanup must not be cut short."""


def _cancel(ray: Any, refs: list[Any], grace: float) -> None:
    """Cancel the tasks of ``refs``: a ``KeyboardInterrupt`` in each first, so that it
    removes its temporary folder on the way out, then a kill for those still running
    after ``grace`` seconds."""
    for ref in refs:
        ray.cancel(ref)
    _, left = ray.wait(refs, num_returns=len(refs), timeout=grace)
    for ref in left:
        ray.cancel(ref, force=True)


def _shutdown(ray: Any, fast: bool, grace: float = 1.0) -> None:
    """Shut down the local Ray this executor started.

    After an interrupt (``fast``) Ray's processes, and the agents and workers the raylet
    started, get SIGTERM all at once and ``grace`` seconds in all, then SIGKILL, instead
    of Ray's SIGTERM-and-wait one process after the other: a SIGTERM to the process group
    (as Slurm sends it) reaches them too, and the sequential waits then add up to seconds.
    Nothing of the interrupted runs is kept, so nothing is lost.
    """
    worker = getattr(getattr(ray, "_private", None), "worker", None)
    node = getattr(worker, "_global_node", None)
    kill = getattr(node, "kill_all_processes", None)
    if fast and isinstance(getattr(node, "all_processes", None), dict) and callable(kill):

        def kill_at_once(**kwargs: Any) -> None:  # ray.shutdown calls it after disconnecting
            import psutil  # a dependency of Ray

            popens = [info.process for infos in node.all_processes.values() for info in infos]
            # The raylet's agents and workers too: left alone, the agents wait a minute
            # for the control store (stopped at the same time) before they exit.
            children = []
            for process in popens:
                with contextlib.suppress(psutil.Error):
                    children += psutil.Process(process.pid).children(recursive=True)
            for process in [*popens, *children]:
                with contextlib.suppress(OSError, psutil.Error):
                    process.terminate()
            deadline = time.monotonic() + grace
            for process in popens:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(max(0.0, deadline - time.monotonic()))
            _, alive = psutil.wait_procs(children, timeout=max(0.0, deadline - time.monotonic()))
            for process in alive:
                with contextlib.suppress(psutil.Error):
                    process.kill()
            kill(**{**kwargs, "allow_graceful": False})  # what lingers: SIGKILL

        node.kill_all_processes = kill_at_once
    ray.shutdown()


def _remove_leftovers(token: str) -> None:
    """Remove the temporary run folders that killed tasks of the benchmark ``token`` left
    on this machine (a task on another node removes its own unless it is killed)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{temporary_prefix(token)}*"):
        shutil.rmtree(folder, ignore_errors=True)


def _connect(ray: Any, address: str | None) -> bool:
    """Connect to the Ray cluster at ``address`` (or start a local one); whether this
    call did, so that the caller shuts it down (or disconnects) after the benchmark.

    A Ray already initialised in this process (by a script or a test) is used as it is.
    """
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    check_reachable(address)
    # A local Ray gets the cores this process may use (Ray's default: every core).
    cores = {"num_cpus": available_cores()} if address == "local" else {}
    # Ray's driver waits up to 5 s at shutdown to flush task events (for a dashboard
    # that is off) to a GCS that a SIGTERM to the process group has already stopped.
    system = {"_system_config": {"task_events_shutdown_flush_timeout_ms": 500}}
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            **cores,
            **(system if address == "local" else {}),
        )
    except ConnectionError as error:
        raise BenchmarkError(
            f"cannot connect to the Ray cluster at {address!r} ({error}); start one with "
            "`ray start --head`, or leave out --ray-address to run a local Ray."
        ) from None
    return True


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds where ``ray.init`` would retry for minutes, deaf to SIGTERM: when
    nothing listens at a ``HOST:PORT`` address (other forms are left to Ray).

    Raises:
        BenchmarkError: naming the address, the system's reason and the fix.
    """
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit() or "://" in address:
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise BenchmarkError(
            f"nothing answers at the Ray address {address!r} ({error.strerror or error}); "
            "check the head node's address (`ray status` on it), or pass --ray-address auto "
            "on a node of the cluster."
        ) from None


def _gpus(spec: RunSpec, requested: float | None, available: float) -> float:
    """GPUs of ``spec``'s task: ``requested``, or 1 when it may use CUDA and the cluster has
    GPUs (``available`` in all), else 0.

    Raises:
        BenchmarkError: when GPUs are asked for (or the device is CUDA) and the cluster
            has none: Ray would wait for them forever.
    """
    device = str(spec.env_settings().device)
    if requested is None:
        requested = 1.0 if available and device != "cpu" else 0.0
    if available == 0 and (requested > 0 or device.startswith("cuda")):
        raise BenchmarkError(
            f"{spec.name} asks for {requested} GPU(s) on device {device!r}, but the Ray "
            "cluster has no GPU; pass --device cpu (and --gpus-per-run 0), or start Ray "
            "on nodes with GPUs."
        )
    return float(requested)
