"""The paper's scale in short GPU slices: one command per slice, resumable across slices.

A GPU here comes as the device tool lends it (``/work/.library/device/README.md``): one
GPU for at most 10 minutes a call, a fresh, bare machine each call (torch, no
gymnasium), the repository's working tree and the ignored folders named in ``carry``
sent along, and at most 8 files (16 MiB each, 64 MiB in all) brought back from ``$OUT``.
Three subcommands fit a benchmark into that:

``prepare`` (here, in the checkout the device tool sends): puts what the machine lacks
into ``.gpu-session/`` (ignored by git, named in ``carry``): gymnasium's wheels and the
data (``../shared/data`` does not travel).

``run`` (there, through ``benchmarks/experiments/gpu_session.sh``): restores the output
folder from the archive the last call left (``.gpu-session/previous/``), then

1. once per output folder, the CUDA tests (``pytest -m cuda`` and the tests whose path
   depends on CUDA) and the population speed table (``population_speed --device cuda``);
2. as many runs of ``--preset paper`` as fit the time left, as populations
   (``bench --executor population``), Omniglot 20-way first, then 5-way, then MNIST,
   seed by seed (a population is one seed's runs of every teacher, or of its first
   teachers when fewer fit). Before a population starts, its time is predicted from its
   FLOPs (:mod:`metacurriculum.student.compute`) at the throughput the earlier
   populations reached (3 TFLOP/s before any: one 20-way student's measured rate on an
   H100); one that would not finish is not started, and one that overruns is stopped
   (its runs are redone next time);
3. the tables and plots, and ``gpu-session.tar.gz``: the output folder without the
   students' ``student.pt`` (:mod:`metacurriculum.benchmarks.archive`), written to
   ``$OUT`` after every population, so a call cut short keeps what finished. Beside it
   in ``$OUT``: ``results.md``, ``session.log``, ``population_speed.md``, ``cuda_tests.txt``.

``collect`` (here, after a call): copies the call's files into ``.gpu-session/previous/``
(the next call carries them) and unpacks the archive into the local output folder
(``runs/paper-gpu``): run folders, ``results.md``, ``plots/``, the log, the test output
and the speed table, in one place.

The time model, the slice and every command can be shrunk for a test on the CPU
(``tests/benchmarks/test_gpu_session.py`` runs two slices of a tiny benchmark).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from metacurriculum.benchmarks.archive import pack, unpack
from metacurriculum.benchmarks.experiments.gpu_carry import (
    ARCHIVE,
    collect,
    joined,
    prepare,
    split,
)
from metacurriculum.benchmarks.presets import resolve
from metacurriculum.benchmarks.run_folders import read_json, unfinished_reason

logger = logging.getLogger("metacurriculum.gpu_session")

#: Where ``prepare`` puts what travels, and ``collect`` the last call's files.
CARRY = Path(".gpu-session")
STATE = "gpu_session.json"
LOG = "session.log"
#: The files of ``$OUT`` besides the archive (read there without unpacking it).
BESIDE = ("results.md", LOG, "population_speed.md", "cuda_tests.txt")
#: The paper's envs, Omniglot 20-way first.
PAPER_ORDER = (
    "MetaCurriculum-Omniglot20-v0",
    "MetaCurriculum-Omniglot5-v0",
    "MetaCurriculum-MNIST-v0",
)
#: The CUDA tests: those marked ``cuda`` (they skip without CUDA), then those whose path
#: depends on CUDA (the default batching and executor, the speed benchmark's smoke test).
CUDA_TESTS = (
    ("-m", "cuda", "tests"),
    (
        "-k",
        "auto_resolves or speed_benchmark or default_executor",
        "tests/student/test_meta_learner.py",
        "tests/benchmarks/test_population_executor.py",
    ),
)
SPEED = ("--device", "cuda", "--paths", "grouped", "--populations", "1,4,16,64")


@dataclass
class Session:
    """One call's settings (``run``'s options).

    Attributes:
        work: the output folder on this machine (restored, extended, packed).
        out: where the call's files go (``$OUT``).
        carried: the last call's files, carried in (its archive), or nothing.
        seconds: the slice: the call ends its last population, tables and archive by then.
        preset: the benchmark.
        envs: the envs in the order their runs are done.
        bench_options: more ``metacurriculum bench`` options (``--env-kwargs`` ...).
        max_population: the most runs stepped as one population.
        throughput: FLOP/s assumed before any population was timed.
        margin: predicted seconds are multiplied by this.
        startup: seconds a ``bench`` subprocess takes before its first step.
        reserve: seconds kept for the tables, plots and archive at the end.
        steps: what to run: ``tests``, ``speed``, ``bench``.
        tests: pytest's argument lists of the CUDA tests.
        speed: the population speed benchmark's arguments.
        step_timeout: the most seconds the tests or the speed table may take.
        clock: seconds, monotonic (a test's fake one moves as its populations run).
    """

    work: Path
    out: Path
    carried: Path | None = None
    seconds: float = 540.0
    preset: str = "paper"
    envs: Sequence[str] = PAPER_ORDER
    bench_options: Sequence[str] = ()
    max_population: int = 8
    throughput: float = 3e12
    margin: float = 1.25
    startup: float = 40.0
    reserve: float = 60.0
    steps: Sequence[str] = ("tests", "speed", "bench")
    tests: Sequence[Sequence[str]] = CUDA_TESTS
    speed: Sequence[str] = SPEED
    step_timeout: float = 240.0
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)


@dataclass(frozen=True)
class Population:
    """Runs of one env stepped together: ``seeds`` x ``teachers``, predicted ``flops``."""

    env: str
    seeds: tuple[int, ...]
    teachers: tuple[str, ...]
    flops: float

    @property
    def runs(self) -> int:
        return len(self.seeds) * len(self.teachers)


def run_flops(spec: Any) -> float:
    """An upper bound of a run's FLOPs: its meta-steps, the measurements of every env step
    and the final evaluation, every task at the hardest ω. Under a compute budget: the
    budget and one env step's overrun, and as many env steps as the easiest tasks allow."""
    from metacurriculum.envs.compute import student_compute

    settings = spec.env_settings()
    compute = student_compute(settings)
    n, batch = settings.n_max, settings.meta_batch
    train = settings.budget * compute.meta_step([n] * batch)
    steps = settings.budget // settings.update_rate + 1
    if settings.compute_budget is not None:
        step = settings.update_rate * compute.meta_step([n] * batch)
        budget = train if settings.compute_budget == "matched" else settings.compute_budget
        train = budget + step
        cheapest = settings.update_rate * compute.meta_step([settings.n_min] * batch)
        steps = int(train // cheapest) + 2
    measure = steps * compute.measurement([n] * (settings.val_tasks + settings.target_tasks))
    return float(train + measure + compute.evaluation([n] * spec.eval_tasks))


class GpuSession:
    """A call's work: restore, tests, speed table, populations, tables, archive."""

    def __init__(self, session: Session) -> None:
        self.s = session
        self.started = session.clock()
        self.state: dict[str, Any] = {"calls": [], "observations": []}
        self.failed: set[str] = set()  # runs whose population failed in this call

    def left(self) -> float:
        """Seconds left of the slice."""
        return self.s.seconds - (self.s.clock() - self.started)

    # -- the call ----------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """The whole call, logged into the output folder's ``session.log`` (which travels
        with it); returns the session's state."""
        s = self.s
        s.work.mkdir(parents=True, exist_ok=True)
        s.out.mkdir(parents=True, exist_ok=True)
        restored = self.restore()
        handler = logging.FileHandler(s.work / LOG)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            if restored:
                logger.info("restored %d run folders from %s", restored, s.carried)
            return self.call()
        finally:
            logger.removeHandler(handler)
            handler.close()

    def call(self) -> dict[str, Any]:
        s = self.s
        self.state["calls"].append({"started": time.strftime("%Y-%m-%dT%H:%M:%S"), **_device()})
        logger.info("call %d: %.0f s, %s", len(self.state["calls"]), s.seconds, _device())
        if "tests" in s.steps and "tests" not in self.state:
            self.state["tests"] = self.command_step("cuda_tests.txt", self.test_commands())
        if "speed" in s.steps and "speed" not in self.state:
            module = "metacurriculum.benchmarks.experiments.population_speed"
            command = [sys.executable, "-m", module, *s.speed]
            self.state["speed"] = self.command_step("population_speed.md", [command])
        if "bench" in s.steps:
            self.bench()
        self.finish()
        return self.state

    def restore(self) -> int:
        """The output folder as the last call left it (its archive, carried in); returns
        the number of run folders restored."""
        scratch = self.s.work.with_name(f".{self.s.work.name}.archive")
        archive = None if self.s.carried is None else joined(self.s.carried, scratch)
        runs = [] if archive is None else unpack(archive, self.s.work)
        shutil.rmtree(scratch, ignore_errors=True)
        state = self.s.work / STATE
        if state.is_file():
            self.state = json.loads(state.read_text())
        return len(runs)

    def test_commands(self) -> list[list[str]]:
        base = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs"]
        return [[*base, *args] for args in self.s.tests]

    def command_step(self, output: str, commands: list[list[str]]) -> dict[str, Any]:
        """Run ``commands`` one after another (within the step's timeout and the slice),
        their output into ``work/output``; returns their exit codes and seconds."""
        path, results = self.s.work / output, []
        with open(path, "a") as log:
            for command in commands:
                timeout = max(1.0, min(self.s.step_timeout, self.left() - self.s.reserve))
                log.write(f"$ {' '.join(command)}\n")
                log.flush()
                start = self.s.clock()
                code = _call(command, log, timeout)
                seconds = round(self.s.clock() - start, 1)
                results.append({"command": command[2:], "code": code, "seconds": seconds})
                logger.info("%s: exit %s after %.0f s", " ".join(command[2:])[:100], code, seconds)
        self.save()
        return {"results": results}

    # -- populations -------------------------------------------------------------------

    def bench(self) -> None:
        """Populations of the preset's pending runs, as many as fit the time left."""
        while True:
            population = self.next_population()
            if population is None:
                return
            self.run_population(population)
            self.save()

    def pending(self) -> list[Any]:
        """The preset's runs without a finished folder, in the order they are done."""
        config = resolve(self.s.preset, envs=list(self.s.envs), **_overrides(self.s))
        order = {env: i for i, env in enumerate(self.s.envs)}
        specs = sorted(config.specs(), key=lambda spec: order[spec.env_id])
        return [
            spec
            for spec in specs
            if spec.name not in self.failed and unfinished_reason(spec.folder(self.s.work))
        ]

    def next_population(self) -> Population | None:
        """The largest population of the first env with pending runs that fits the time
        left (a later env's, when none of the first's fits); ``None`` when none fits."""
        budget = self.left() - self.s.reserve
        pending = self.pending()
        if not pending:
            logger.info("every run of the preset is finished")
            return None
        for env in dict.fromkeys(spec.env_id for spec in pending):
            for candidate in _candidates([p for p in pending if p.env_id == env], self.s):
                seconds = self.predict(candidate)
                if seconds <= budget:
                    logger.info(
                        "%s seed(s) %s, %d runs: %.3g FLOPs, predicted %.0f s of %.0f left",
                        env, list(candidate.seeds), candidate.runs, candidate.flops, seconds,
                        budget,
                    )  # fmt: skip
                    return candidate
            logger.info("no population of %s fits the %.0f s left", env, budget)
        return None

    def predict(self, population: Population) -> float:
        """Seconds ``population`` would take: its FLOPs at the slowest throughput seen at
        its size or below (each population's FLOPs over its seconds after the startup; the
        prior before any), times the margin, plus the startup."""
        seen = [o for o in self.state["observations"] if o["runs"] <= population.runs]
        rates = [o["flops"] / max(o["seconds"] - self.s.startup, o["seconds"] / 2) for o in seen]
        rate = min(rates, default=self.s.throughput)
        return population.flops / rate * self.s.margin + self.s.startup

    def run_population(self, population: Population) -> None:
        """``metacurriculum bench`` for ``population``, stopped when the slice ends."""
        command = [  # the population's seeds and teachers after the options: they win
            *(sys.executable, "-m", "metacurriculum.cli", "bench", "--preset", self.s.preset),
            *self.s.bench_options,
            *("--env", population.env, "--out", str(self.s.work)),
            *("--seeds", "".join(f"{seed}," for seed in population.seeds)),  # a list
            *("--teachers", ",".join(population.teachers)),
            *("--executor", "population", "--no-plots"),
        ]
        timeout = max(1.0, self.left() - self.s.reserve)
        start = self.s.clock()
        with open(self.s.work / LOG, "a") as log:
            code = _call(command, log, timeout)
        seconds = self.s.clock() - start
        spent = _spent(population, self.s)
        record = json.loads(json.dumps(asdict(population)))  # as the state file holds it
        record.update(runs=population.runs, seconds=round(seconds, 1))
        record.update(code=code, flops=spent, predicted_flops=population.flops)
        if code == 0 and spent > 0:
            self.state["observations"].append(record)
        else:  # not retried in this call (a run that fails would fail again): the next call
            self.failed |= {spec.name for spec in self.pending() if _member(spec, population)}
            record["flops"] = population.flops
            self.state.setdefault("stopped", []).append(record)
            if code == "timeout":  # it did not finish its FLOPs in that time: take the
                # throughput as at most half of what finishing would have needed
                self.state["observations"].append({**record, "seconds": seconds * 2})
        logger.info("population done: exit %s, %.0f s, %.3g FLOPs", code, seconds, spent)
        self.pack()

    # -- the end -----------------------------------------------------------------------

    def finish(self) -> None:
        """Tables, plots, the archive and the files beside it in ``$OUT``."""
        from metacurriculum.benchmarks import plot_all, tables

        try:
            tables.report(self.s.work)
            plot_all(self.s.work)
        except (FileNotFoundError, ImportError, ValueError) as error:
            logger.warning("no tables or plots yet: %s", error)
        self.save()
        self.pack()

    def save(self) -> None:
        (self.s.work / STATE).write_text(json.dumps(self.state, indent=1, default=str))

    def pack(self) -> None:
        self.save()
        split(pack(self.s.work, self.s.out / ARCHIVE))
        for name in BESIDE:
            if (self.s.work / name).is_file():
                shutil.copyfile(self.s.work / name, self.s.out / name)


def _overrides(session: Session) -> dict[str, Any]:
    """The bench options that change which runs there are (seeds, teachers, env kwargs)."""
    from metacurriculum import cli

    args = cli.build_parser().parse_args(["bench", *session.bench_options])
    env_kwargs = {k: v for given in args.env_kwargs or [] for k, v in given.items()}
    found = {"seeds": args.seeds, "env_kwargs": env_kwargs or None, "device": args.device}
    found["teachers"] = args.teachers.split(",") if args.teachers else None
    found["eval_tasks"] = args.eval_tasks
    return found


def _candidates(pending: list[Any], session: Session) -> list[Population]:
    """Populations of ``pending`` (one env's runs), largest first: whole seeds that share
    their pending teachers, then the first seed's first teachers."""
    by_seed: dict[int, list[Any]] = {}
    for spec in pending:
        by_seed.setdefault(spec.seed, []).append(spec)
    seeds = list(by_seed)
    first = by_seed[seeds[0]]
    teachers = tuple(spec.teacher for spec in first)
    same = [s for s in seeds if tuple(p.teacher for p in by_seed[s]) == teachers]
    same = same[: max(1, session.max_population // len(teachers))]
    out = []
    for k in range(len(same), 0, -1):
        specs = [spec for s in same[:k] for spec in by_seed[s]]
        if len(specs) <= session.max_population:
            out.append(_population(specs))
    for size in range(len(teachers) - 1, 0, -1):
        if size <= session.max_population:
            out.append(_population(first[:size]))
    return out


def _population(specs: list[Any]) -> Population:
    seeds = tuple(dict.fromkeys(spec.seed for spec in specs))
    teachers = tuple(dict.fromkeys(spec.teacher for spec in specs))
    return Population(specs[0].env_id, seeds, teachers, sum(run_flops(s) for s in specs))


def _member(spec: Any, population: Population) -> bool:
    return (
        spec.env_id == population.env
        and spec.seed in population.seeds
        and spec.teacher in population.teachers
    )


def _spent(population: Population, session: Session) -> float:
    """The FLOPs the finished runs of ``population`` recorded."""
    config = resolve(session.preset, envs=[population.env], **_overrides(session))
    total = 0.0
    for spec in config.specs():
        folder = spec.folder(session.work)
        if _member(spec, population) and unfinished_reason(folder) is None:
            done = read_json(folder / "done.json")
            keys = ("train_flops", "measure_flops", "eval_flops")
            total += sum(float(done.get(k) or 0) for k in keys)
    return total


def _call(command: list[str], log: Any, timeout: float) -> int | str:
    """Run ``command`` with its output into ``log``; SIGTERM at ``timeout`` seconds (then
    SIGKILL 15 s later). Returns its exit code, or ``"timeout"``."""
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.write(f"\n[stopped after {timeout:.0f} s: the slice's end]\n")
        return "timeout"


def _device() -> dict[str, str]:
    import torch

    import metacurriculum

    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    return {"device": name, "torch": torch.__version__, "package": metacurriculum.__file__}


# -- the command line ------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="here: the wheels and the data into .gpu-session/")
    prep.add_argument("--data", type=Path, default=None, help="default $METACURRICULUM_DATA")
    prep.add_argument("--carry", type=Path, default=CARRY)
    run = sub.add_parser("run", help="there: one call (gpu_session.sh runs it)")
    run.add_argument("--out", type=Path, required=True, help="the call's files ($OUT)")
    run.add_argument("--work", type=Path, default=Path("/tmp/gpu-session/paper"))
    run.add_argument("--carried", type=Path, default=CARRY / "previous")
    run.add_argument("--seconds", type=float, default=540.0, help="the slice (default 540)")
    run.add_argument("--preset", default="paper")
    run.add_argument("--envs", default=",".join(PAPER_ORDER), help="envs, in order")
    run.add_argument("--max-population", type=int, default=8)
    run.add_argument("--throughput", type=float, default=3e12, help="FLOP/s before any timing")
    run.add_argument("--steps", default="tests,speed,bench", help="what to run")
    run.add_argument("bench_options", nargs=argparse.REMAINDER, help="after --: bench options")
    coll = sub.add_parser("collect", help="here: a call's files into .gpu-session/previous")
    coll.add_argument("files", type=Path, help="the folder the call's files came back to")
    coll.add_argument("--carry", type=Path, default=CARRY)
    coll.add_argument("--into", type=Path, default=Path("runs/paper-gpu"))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    import os

    args = parse_args(argv)
    if args.command == "prepare":
        data = args.data or Path(os.environ.get("METACURRICULUM_DATA", "../shared/data"))
        prepare(args.carry, data)
        return None
    if args.command == "collect":
        collect(args.files, args.carry, args.into)
        return None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    options = [o for o in args.bench_options if o != "--"]
    session = Session(
        work=args.work,
        out=args.out,
        carried=args.carried,
        seconds=args.seconds,
        preset=args.preset,
        envs=tuple(args.envs.split(",")),
        bench_options=tuple(options),
        max_population=args.max_population,
        throughput=args.throughput,
        steps=tuple(args.steps.split(",")),
    )
    return GpuSession(session).run()


if __name__ == "__main__":
    main()
