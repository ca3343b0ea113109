"""Speed and memory of the student's meta-step paths against the plain reference loop.

Omniglot-shaped 20-way 1-shot tasks with 15 queries per class, meta-batch 8,
5 inner steps, MAML's 64-filter 4-block net, at second and first order. Every
student path (``loop``, ``vmap``, ``grouped`` and the default ``auto``) is timed against
:class:`~metacurriculum.student.reference.ReferenceMAML` in the same run and
reported as ratios. Images are synthetic: speed does not depend on pixel values.

Timing takes the median of ``repeats`` meta-steps per path after ``warmup``,
the paths interleaved round by round so that a change in the machine's load
hits them alike (``torch.cuda.synchronize`` around each step on CUDA). Peak
memory is the growth of the peak during the first meta-steps (Adam's state
included) above what the process held just before them, parameters and batch
built: on CUDA over two steps, from ``torch.cuda.max_memory_allocated``; on the
CPU over one step in a fresh subprocess per (path, order), which resets its
peak resident set size (Linux ``/proc/self/clear_refs``) and reads it back
from ``VmHWM``. On a shared CPU, other processes' load shows in the timings
(the header prints the load average); ``--threads 1`` keeps them steadier.

Commands::

    python -m metacurriculum.benchmarks.student_speed                  # full config
    python -m metacurriculum.benchmarks.student_speed --small          # a few minutes on 2 CPU cores
    python -m metacurriculum.benchmarks.student_speed --small --threads 1   # a busy, shared CPU
    python -m metacurriculum.benchmarks.student_speed --device cuda --json speed.json
    python -m metacurriculum.benchmarks.student_speed --device cuda --mixed   # padded batches
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import torch

from metacurriculum.student import MetaBatch, MetaLearner, ReferenceMAML, StudentConfig
from metacurriculum.student.settings import MAMLSettings

PATHS = ("reference", "loop", "vmap", "grouped", "auto")
ORDERS = {"second": False, "first": True}


@dataclass(frozen=True)
class Shape:
    """The benchmarked problem.

    Attributes:
        n_way: Classes per task (and logits of the net).
        k_shot: Support examples per class.
        q_query: Query examples per class.
        meta_batch: Tasks per meta-step.
        inner_steps: Inner SGD steps.
        hidden: Conv filters.
        depth: Conv blocks.
        image_size: Side of the images.
        mixed: Spread the tasks' ``n`` over ``1..n_way`` (a padded batch, as a
            noisy curriculum makes) instead of giving every task ``n_way``.
    """

    n_way: int = 20
    k_shot: int = 1
    q_query: int = 15
    meta_batch: int = 8
    inner_steps: int = MAMLSettings().inner_steps
    hidden: int = 64
    depth: int = 4
    image_size: int = 28
    mixed: bool = False


FULL = Shape()
SMALL = Shape(n_way=5, hidden=32)


@dataclass
class Result:
    """One (path, order) measurement.

    Attributes:
        path: ``reference``, ``loop``, ``vmap`` or ``auto``.
        order: ``second`` or ``first``.
        batching: The batching the path ran (``auto`` resolved).
        seconds_per_step: Median wall time of a timed meta-step.
        steps_per_second: Its inverse.
        peak_mib: Peak memory growth during the meta-steps, MiB.
        memory_method: How ``peak_mib`` was measured.
    """

    path: str
    order: str
    batching: str
    seconds_per_step: float
    steps_per_second: float
    peak_mib: float
    memory_method: str


def synthetic_batch(shape: Shape, device: torch.device) -> MetaBatch:
    """A meta-batch of random images with balanced labels, padded to ``shape.n_way`` classes."""
    generator = torch.Generator(device=device).manual_seed(0)
    tasks, n = shape.meta_batch, shape.n_way
    if shape.mixed:
        n_way = [max(1, round(n * (t + 1) / tasks)) for t in range(tasks)]
    else:
        n_way = [n] * tasks
    n_way_t = torch.tensor(n_way, device=device)

    def examples(per_class: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        size = (tasks, n * per_class, 1, shape.image_size, shape.image_size)
        images = torch.rand(size, generator=generator, device=device)
        position = torch.arange(n * per_class, device=device)
        labels = (position // per_class).expand(tasks, -1)
        mask = position < (n_way_t * per_class)[:, None]
        return images, torch.where(mask, labels, 0), mask

    support_x, support_y, support_mask = examples(shape.k_shot)
    query_x, query_y, query_mask = examples(shape.q_query)
    return MetaBatch(support_x, support_y, support_mask, query_x, query_y, query_mask, n_way_t)


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}; CPU memory needs Linux.")


def build(path: str, order: str, shape: Shape, device: str) -> MetaLearner | ReferenceMAML:
    """The MAML student of ``path`` (or the reference) for ``shape`` at ``order``."""
    config = StudentConfig(
        n_max=shape.n_way,
        hidden=shape.hidden,
        depth=shape.depth,
        image_size=shape.image_size,
        batching="auto" if path in ("auto", "reference") else path,
        device=device,
        learner="maml",
        learner_kwargs={"inner_steps": shape.inner_steps, "first_order": ORDERS[order]},
    )
    return ReferenceMAML(config) if path == "reference" else MetaLearner(config, seed=0)


def peak_memory_mib(path: str, order: str, shape: Shape, device: str, steps: int) -> float:
    """Peak memory growth over ``steps`` meta-steps, from just before the first one.

    On the CPU this is only meaningful in a fresh process (see
    :func:`peak_memory_in_subprocess`).
    """
    student = build(path, order, shape, device)
    batch = synthetic_batch(shape, student.config.torch_device)
    cuda = student.config.torch_device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device)
    else:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # resets VmHWM to the current resident set size
        baseline = _rss_kib("VmRSS") * 1024
    for _ in range(steps):
        student.meta_step(batch)
    if cuda:
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
    else:
        peak = _rss_kib("VmHWM") * 1024
    return (peak - baseline) / 2**20


def peak_memory_in_subprocess(
    path: str, order: str, options: list[str], device: str, threads: int
) -> float:
    """:func:`peak_memory_mib` of one meta-step in a fresh Python process.

    ``options`` are the shape's flags (``--small``, ``--mixed``).
    """
    command = [sys.executable, "-m", __spec__.name, "--memory-worker", path, order]
    command += ["--device", device, "--threads", str(threads), *options]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory worker {path}/{order} failed:\n{done.stderr}")
    return float(done.stdout.strip().splitlines()[-1])


def seconds_per_step(
    paths: list[str], order: str, shape: Shape, device: str, warmup: int, repeats: int
) -> dict[str, float]:
    """Median wall time of a meta-step for each path, timed in interleaved rounds.

    Interleaving spreads any change in the machine's load (other processes on
    a shared CPU) over every path alike, so the ratios stay fair.
    """
    students = {path: build(path, order, shape, device) for path in paths}
    batch = synthetic_batch(shape, torch.device(device))
    cuda = device.startswith("cuda")
    for student in students.values():
        for _ in range(warmup):
            student.meta_step(batch)
    times: dict[str, list[float]] = {path: [] for path in paths}
    for _ in range(repeats):
        for path, student in students.items():
            if cuda:
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            student.meta_step(batch)
            if cuda:
                torch.cuda.synchronize(device)
            times[path].append(time.perf_counter() - start)
    return {path: statistics.median(values) for path, values in times.items()}


def table(results: list[Result]) -> str:
    """The results as text, each path's throughput and memory relative to the reference."""
    lines = [
        f"{'order':<7}{'path':<11}{'batching':<10}{'steps/s':>9}{'s/step':>9}{'peak MiB':>10}"
        f"{'speed vs ref':>14}{'memory vs ref':>15}"
    ]
    reference = {r.order: r for r in results if r.path == "reference"}
    for r in results:
        base = reference.get(r.order)
        speed = f"{r.steps_per_second / base.steps_per_second:.2f}x" if base else "-"
        memory = f"{r.peak_mib / base.peak_mib:.2f}x" if base and base.peak_mib > 0 else "-"
        lines.append(
            f"{r.order:<7}{r.path:<11}{r.batching:<10}{r.steps_per_second:>9.3f}"
            f"{r.seconds_per_step:>9.3f}{r.peak_mib:>10.1f}{speed:>14}{memory:>15}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:<index>")
    parser.add_argument("--small", action="store_true", help="5-way, 32 filters (quick on a CPU)")
    parser.add_argument("--mixed", action="store_true", help="tasks' n spread over 1..n_way")
    parser.add_argument("--repeats", type=int, default=None, help="timed meta-steps per path")
    parser.add_argument("--warmup", type=int, default=None, help="untimed meta-steps first")
    parser.add_argument("--paths", default=",".join(PATHS), help="comma-separated subset")
    parser.add_argument("--orders", default=",".join(ORDERS), help="second, first or both")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    parser.add_argument(
        "--memory-worker", nargs=2, metavar=("PATH", "ORDER"), help=argparse.SUPPRESS
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[Result]:
    """Run the benchmark, print the table, optionally write JSON; returns the results."""
    args = parse_args(argv)
    shape = dataclasses.replace(SMALL if args.small else FULL, mixed=args.mixed)
    device = str(StudentConfig(n_max=1, device=args.device).torch_device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.memory_worker:
        print(peak_memory_mib(*args.memory_worker, shape, device, steps=1))
        return []
    cuda = device.startswith("cuda")
    warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    repeats = args.repeats if args.repeats is not None else (10 if cuda else 3)
    paths, orders = args.paths.split(","), args.orders.split(",")
    for name, chosen, allowed in (("path", paths, PATHS), ("order", orders, tuple(ORDERS))):
        if set(chosen) - set(allowed):
            raise SystemExit(
                f"unknown {name}(s) {sorted(set(chosen) - set(allowed))}; use {allowed}"
            )
    load = "n/a" if cuda else ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} "
        f"load average={load}\n{shape} warmup={warmup} repeats={repeats}",
        flush=True,
    )
    method = "cuda.max_memory_allocated growth" if cuda else "VmHWM growth, fresh process"
    results = []
    for order in orders:
        timings = seconds_per_step(paths, order, shape, device, warmup, repeats)
        for path in paths:
            if cuda:
                memory = peak_memory_mib(path, order, shape, device, steps=2)
            else:
                threads = torch.get_num_threads()
                options = ["--small"] * args.small + ["--mixed"] * args.mixed
                memory = peak_memory_in_subprocess(path, order, options, device, threads)
            batching = build(path, order, shape, device).config.resolved_batching
            results.append(
                Result(
                    path=path,
                    order=order,
                    batching="reference" if path == "reference" else batching,
                    seconds_per_step=timings[path],
                    steps_per_second=1.0 / timings[path],
                    peak_mib=memory,
                    memory_method=method,
                )
            )
            print(
                f"  {order}-order {path}: {timings[path]:.3f} s/step, {memory:.1f} MiB", flush=True
            )
    print(table(results))
    if args.json:
        write_results(args.json, device, shape, warmup, repeats, results)
    return results


def write_results(
    path: str, device: object, shape: Shape, warmup: int, repeats: int, results: list
) -> None:
    """Write a speed benchmark's settings and result rows (dataclasses) to ``path`` as JSON."""
    payload = {"device": str(device), "torch": torch.__version__, "shape": asdict(shape)}
    payload |= {"warmup": warmup, "repeats": repeats, "results": [asdict(r) for r in results]}
    with open(path, "w") as file:
        json.dump(payload, file, indent=2)


if __name__ == "__main__":
    main()
