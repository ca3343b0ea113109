"""Tasks in threads or one at a time: speed and memory of the CPU's loop path on k threads.

By default the loop path runs a meta-batch's tasks in Python threads, one
single-threaded task each (:func:`metacurriculum.student.backends.map_tasks`): on ``k``
threads, ``k`` tasks' graphs are alive at once. With ``StudentConfig(task_threads=False)``
it runs one task at a time and gives its ops the ``k`` threads, holding one graph. This measures both on the 20-way workload of
``student_speed`` (second order unless told): the median wall time of a meta-step, timed
in interleaved rounds in one process; the peak memory growth of a meta-step, each in a
fresh process; and what one task's graph keeps for the backward (its saved tensors,
the inner loop's and the query pass's), the part the threads multiply::

    python -m metacurriculum.benchmarks.experiments.task_threads --threads 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from metacurriculum.benchmarks.experiments import student_speed
from metacurriculum.student import MetaLearner

#: The two ways of running a meta-batch's tasks on several threads (``task_threads`` True, False).
MODES = ("task threads", "one task at a time")


def _student(mode: str, order: str, shape: student_speed.Shape):
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is unknown; use one of {MODES}.")
    config = student_speed.config_for("auto", order, shape, "cpu")
    config = dataclasses.replace(config, task_threads=mode == MODES[0])
    student = MetaLearner(config, seed=0)
    return student, student_speed.synthetic_batch(shape, torch.device("cpu"))


def seconds_per_step(order: str, shape: student_speed.Shape, repeats: int) -> dict[str, float]:
    """Median wall time of a meta-step in each mode, timed in interleaved rounds."""
    students = {mode: _student(mode, order, shape) for mode in MODES}
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    for student, batch in students.values():  # warm up each
        student.meta_step(batch)
    for _ in range(repeats):
        for mode, (student, batch) in students.items():
            start = time.perf_counter()
            student.meta_step(batch)
            times[mode].append(time.perf_counter() - start)
    return {mode: statistics.median(values) for mode, values in times.items()}


def peak_mib(mode: str, order: str, shape: student_speed.Shape) -> float:
    """Peak memory growth of one meta-step in ``mode`` (call in a fresh process)."""
    student, batch = _student(mode, order, shape)
    return student_speed.peak_growth_mib(lambda: student.meta_step(batch), "cpu")


def saved_mib(order: str, shape: student_speed.Shape) -> dict[str, float]:
    """What one task saves for backward passes, in MiB: the inner loop's saved tensors, the
    query pass's, and the whole task's (each storage counted once). At second order all of
    it is kept until the outer backward; at first order the inner loop's is freed after
    each inner step."""
    from metacurriculum.student.backends import Tasks, _unbatched

    student, batch = _student(MODES[0], order, shape)
    population = student.population
    batch = population._prepare([batch])[0]
    params = _unbatched(population._rows[0].params)
    learner, ops, task = population.learner, population.ops, Tasks.exact(batch, 0)

    def measure(work) -> float:
        storages: dict[int, int] = {}

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            work()
        return sum(storages.values()) / 2**20

    steps = learner.settings.inner_steps
    inner = measure(lambda: learner.adapt(params, task, ops, steps, not learner.first_order))
    total = measure(lambda: learner.outer_losses(params, task, ops))
    return {"inner loop": inner, "query pass": total - inner, "task": total}


def _shape(name: str) -> student_speed.Shape:
    return {"full": student_speed.FULL, "small": student_speed.SMALL}[name]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (at least 2)")
    parser.add_argument("--order", choices=("second", "first"), default="second")
    parser.add_argument("--shape", choices=("full", "small"), default="full")
    parser.add_argument("--repeats", type=int, default=3, help="timed meta-steps per mode")
    parser.add_argument("--no-memory", action="store_true", help="skip peak memory")
    parser.add_argument("--json", type=Path, help="write the results to this JSON file")
    parser.add_argument("--memory-worker", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads < 2:
        parser.error(f"--threads {args.threads}: the modes differ only on 2 threads or more.")
    torch.set_num_threads(args.threads)
    shape = _shape(args.shape)
    if args.memory_worker:
        print(peak_mib(args.memory_worker, args.order, shape))
        return {}
    seconds = seconds_per_step(args.order, shape, args.repeats)
    peaks = {mode: float("nan") for mode in MODES}
    if not args.no_memory:
        for mode in MODES:
            command = [sys.executable, "-m", __spec__.name, "--memory-worker", mode]
            command += ["--threads", str(args.threads), "--order", args.order]
            command += ["--shape", args.shape]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"memory worker {mode!r} failed:\n{done.stderr}")
            peaks[mode] = float(done.stdout.strip().splitlines()[-1])
    saved = saved_mib(args.order, shape)
    print(f"{args.shape} workload, {args.order} order, {args.threads} threads")
    print("| mode | s/step | speed | peak MiB |")
    print("|---|---:|---:|---:|")
    for mode in MODES:
        speed = seconds[MODES[1]] / seconds[mode]
        print(f"| {mode} | {seconds[mode]:.3f} | {speed:.2f}x | {peaks[mode]:.0f} |")
    print(
        f"one task's graph keeps {saved['task']:.0f} MiB for the backward: "
        f"{saved['inner loop']:.0f} MiB the inner loop's, {saved['query pass']:.0f} the query pass's"
    )
    results = {
        "threads": args.threads,
        "order": args.order,
        "shape": args.shape,
        "seconds_per_step": seconds,
        "peak_mib": peaks,
        "saved_mib": saved,
    }
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
