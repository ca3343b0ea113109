"""Speed and memory of a population of R students against one student stepped R times.

The workload of ``student_speed``: Omniglot-shaped 20-way 1-shot tasks, 15
queries per class, meta-batch 8 per student, 5 inner steps, MAML's 64-filter
4-block net, second and first order (``--small``: 5-way, 32 filters). For each
population size R and population path, one population meta-step (every
student one meta-step on its own meta-batch) is timed against one meta-step of
a single :class:`~metacurriculum.student.MetaLearner` (``batching="auto"``) in the
same run, and reported as student-meta-steps per second and as a ratio to the
single student's (1.00x: as fast as running the students one after another).

Paths: ``loop`` (the students in turn, each on the single student's CPU path:
the population's CPU default) and ``grouped`` (the R x T tasks in grouped
convolutions, chunked to free memory: the CUDA default).

Timing takes the median of ``repeats`` steps after ``warmup``, the single
student and the population paths interleaved round by round. Peak memory is
measured as in ``student_speed``: on CUDA the growth of
``torch.cuda.max_memory_allocated`` over two steps; on the CPU the growth of
``VmHWM`` over one step in a fresh subprocess.

Commands::

    python -m metacurriculum.benchmarks.experiments.population_speed                      # R = 1, 4, 16, 64
    python -m metacurriculum.benchmarks.experiments.population_speed --small --threads 1  # a shared CPU
    python -m metacurriculum.benchmarks.experiments.population_speed --device cuda --json population.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import torch

from metacurriculum.benchmarks.experiments.student_speed import (
    FULL,
    ORDERS,
    SMALL,
    Shape,
    peak_growth_mib,
    synthetic_batch,
    write_results,
)
from metacurriculum.student import MetaLearner, Population, StudentConfig

PATHS = ("loop", "grouped")
POPULATIONS = (1, 4, 16, 64)


@dataclass
class Result:
    """One (order, R, path) measurement; ``path="single"`` is the baseline (R = 1).

    Attributes:
        order: ``second`` or ``first``.
        population: R.
        path: ``single``, ``loop`` or ``grouped``.
        seconds_per_step: Median wall time of one population meta-step.
        student_steps_per_second: ``R / seconds_per_step``.
        vs_single: ``student_steps_per_second`` over the single student's.
        single_seconds_per_step: The single student's seconds per step, timed in the
            same rounds (the baseline of ``vs_single``).
        peak_mib: Peak memory growth during the step(s), MiB (NaN when skipped).
    """

    order: str
    population: int
    path: str
    seconds_per_step: float
    student_steps_per_second: float
    vs_single: float
    single_seconds_per_step: float
    peak_mib: float


def config_for(shape: Shape, order: str, batching: str, device: str) -> StudentConfig:
    """The student configuration of ``shape`` at ``order`` with ``batching``."""
    return StudentConfig(
        n_max=shape.n_way,
        hidden=shape.hidden,
        depth=shape.depth,
        image_size=shape.image_size,
        batching=batching,
        device=device,
        learner="maml",
        learner_kwargs={"inner_steps": shape.inner_steps, "first_order": ORDERS[order]},
    )


class _Single:
    """The baseline: one MAML student, one meta-batch."""

    def __init__(self, shape: Shape, order: str, device: str) -> None:
        self.student = MetaLearner(config_for(shape, order, "auto", device), seed=0)
        self.batch = synthetic_batch(shape, torch.device(device))

    def step(self) -> None:
        self.student.meta_step(self.batch)


class _Population:
    """R students on the population path ``path``, one meta-batch each."""

    def __init__(self, shape: Shape, order: str, device: str, size: int, path: str) -> None:
        config = config_for(shape, order, path, device)
        self.population = Population(config, seeds=list(range(size)))
        self.batches = [synthetic_batch(shape, torch.device(device))] * size

    def step(self) -> None:
        self.population.meta_step(self.batches)


def build(shape: Shape, order: str, device: str, size: int, path: str) -> _Single | _Population:
    """The timed object of ``path`` (``single`` for the baseline)."""
    if path == "single":
        return _Single(shape, order, device)
    return _Population(shape, order, device, size, path)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def seconds_per_step(
    runs: dict[str, _Single | _Population], device: str, warmup: int, repeats: int
) -> dict[str, float]:
    """Median seconds of a step of each run, timed in interleaved rounds."""
    for run in runs.values():
        for _ in range(warmup):
            run.step()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            _sync(device)
            start = time.perf_counter()
            run.step()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def peak_memory_mib(shape: Shape, order: str, device: str, size: int, path: str) -> float:
    """Peak memory growth of the first step(s) of a run, from just before them."""
    run = build(shape, order, device, size, path)
    return peak_growth_mib(run.step, device, 2 if device.startswith("cuda") else 1)


def peak_memory_in_subprocess(
    order: str, size: int, path: str, options: list[str], device: str, threads: int
) -> float:
    """:func:`peak_memory_mib` in a fresh Python process (the CPU's peak cannot be reset)."""
    command = [sys.executable, "-m", __spec__.name, "--memory-worker", order, str(size), path]
    command += ["--device", device, "--threads", str(threads), *options]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory worker {order}/{size}/{path} failed:\n{done.stderr}")
    return float(done.stdout.strip().splitlines()[-1])


def table(results: list[Result]) -> str:
    """The results as text."""
    lines = [
        f"{'order':<7}{'R':>4}  {'path':<9}{'s/step':>9}{'student-steps/s':>17}"
        f"{'single s/step':>15}{'vs single':>11}{'peak MiB':>10}"
    ]
    for r in results:
        lines.append(
            f"{r.order:<7}{r.population:>4}  {r.path:<9}{r.seconds_per_step:>9.3f}"
            f"{r.student_steps_per_second:>17.3f}{r.single_seconds_per_step:>15.3f}"
            f"{r.vs_single:>10.2f}x{r.peak_mib:>10.1f}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:<index>")
    parser.add_argument("--small", action="store_true", help="5-way, 32 filters (quick on a CPU)")
    parser.add_argument("--populations", default=",".join(map(str, POPULATIONS)), help="R values")
    parser.add_argument("--paths", default=",".join(PATHS), help="population paths to time")
    parser.add_argument("--orders", default=",".join(ORDERS), help="second, first or both")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    parser.add_argument("--memory-worker", nargs=3, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _choices(text: str, allowed: tuple, name: str) -> list[str]:
    chosen = text.split(",")
    if set(chosen) - set(allowed):
        raise SystemExit(f"unknown {name}(s) {sorted(set(chosen) - set(allowed))}; use {allowed}")
    return chosen


def main(argv: list[str] | None = None) -> list[Result]:
    """Run the benchmark, print the table, optionally write JSON; returns the results."""
    args = parse_args(argv)
    shape = SMALL if args.small else FULL
    device = str(StudentConfig(n_max=1, device=args.device).torch_device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.memory_worker:
        order, size, path = args.memory_worker
        print(peak_memory_mib(shape, order, device, int(size), path))
        return []
    cuda = device.startswith("cuda")
    warmup = args.warmup if args.warmup is not None else (2 if cuda else 1)
    repeats = args.repeats if args.repeats is not None else (5 if cuda else 2)
    sizes = [int(r) for r in args.populations.split(",")]
    if any(r < 1 for r in sizes):
        raise SystemExit(f"--populations {args.populations}: every R must be >= 1")
    paths = _choices(args.paths, PATHS, "path")
    orders = _choices(args.orders, tuple(ORDERS), "order")
    load = "n/a" if cuda else ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} "
        f"load average={load}\n{shape} warmup={warmup} repeats={repeats}",
        flush=True,
    )
    options = ["--small"] * args.small
    results = []
    for order in orders:
        for size in sizes:
            runs = {"single": build(shape, order, device, 1, "single")}
            runs |= {path: build(shape, order, device, size, path) for path in paths}
            timings = seconds_per_step(runs, device, warmup, repeats)
            del runs
            for path, seconds in timings.items():
                if path == "single" and size != sizes[0]:
                    continue  # the baseline, timed again beside each R for the ratios, shown once
                count = 1 if path == "single" else size
                if args.no_memory:
                    memory = float("nan")
                elif cuda:
                    memory = peak_memory_mib(shape, order, device, count, path)
                else:
                    threads = torch.get_num_threads()
                    memory = peak_memory_in_subprocess(order, count, path, options, device, threads)
                rate = count / seconds
                vs_single = rate * timings["single"]
                single = timings["single"]
                results.append(Result(order, count, path, seconds, rate, vs_single, single, memory))
                print(
                    f"  {order} R={count} {path}: {seconds:.3f} s/step, {vs_single:.2f}x, "
                    f"{memory:.1f} MiB",
                    flush=True,
                )
    print(table(results))
    if args.json:
        write_results(args.json, device, shape, warmup, repeats, results)
    return results


if __name__ == "__main__":
    main()
