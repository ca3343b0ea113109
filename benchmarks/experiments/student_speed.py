"""Speed and memory of the student's meta-step paths and learners against the plain reference.

Omniglot-shaped 20-way 1-shot tasks with 15 queries per class, meta-batch 8, 5 inner
steps, MAML's 64-filter 4-block net, at second and first order. Every student path
(``loop``, ``vmap``, ``grouped`` and the default ``auto``) is timed against
:class:`~metacurriculum.student.reference.ReferenceMAML` (the plain per-task autograd
loop) in the same run and reported as ratios, with the arithmetic rate each reaches:
GFLOP/s, the reference's floating-point operations per meta-step (counted once with
``torch.utils.flop_counter.FlopCounterMode``) over the path's time, beside the machine's
own ceiling, measured at the start (one large 64-to-64 3x3 convolution, batch 2560,
14x14, and a 4096 matrix product). ``learn2learn`` (0.2's MAML on an ``nn.Module`` of the
same network, the field's usual implementation) is timed too where it is installed.
With ``--learners``, every learner's default path and settings is timed against MAML's
in the same rounds. Images are synthetic: speed does not depend on pixel values.

Timing takes the median of ``repeats`` meta-steps per path after ``warmup``, the paths
interleaved round by round so that a change in the machine's load hits them alike
(``torch.cuda.synchronize`` around each step on CUDA). Peak memory is the growth of the
peak during the first meta-steps (Adam's state included) above what the process held
just before them, parameters and batch built: on CUDA over two steps, from
``torch.cuda.max_memory_allocated``; on the CPU over one step in a fresh subprocess per
(path, order), which resets its peak resident set size (Linux ``/proc/self/clear_refs``)
and reads it back from ``VmHWM``. On a shared CPU, other processes' load shows in the
timings (the header prints the load average).

Commands::

    python -m metacurriculum.benchmarks.experiments.student_speed                  # 20-way, 2 threads
    python -m metacurriculum.benchmarks.experiments.student_speed --threads 1 --reduced   # the reduced net
    python -m metacurriculum.benchmarks.experiments.student_speed --learners all --orders second
    python -m metacurriculum.benchmarks.experiments.student_speed --device cuda --json speed.json
    python -m metacurriculum.benchmarks.experiments.student_speed --device cuda --mixed   # padded batches
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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from metacurriculum.student import MetaBatch, MetaLearner, ReferenceMAML, StudentConfig
from metacurriculum.student.settings import MAMLSettings, list_learners, setting_names

PATHS = ("reference", "loop", "vmap", "grouped", "auto")
#: Paths timed when installed and asked for: learn2learn 0.2's MAML.
OPTIONAL_PATHS = ("learn2learn",)
ORDERS = {"second": False, "first": True}
#: Names of learner runs: ``learner:<name>``, at the learner's default settings.
LEARNER = "learner:"


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
#: The reduced preset's student: 5-way 1-shot, 5 queries, 16 filters x 3 blocks.
REDUCED = Shape(n_way=5, q_query=5, hidden=16, depth=3)


@dataclass
class Result:
    """One (path or learner, order) measurement.

    Attributes:
        path: ``reference``, ``loop``, ``vmap``, ``grouped``, ``auto``, ``learn2learn`` or
            ``learner:<name>``.
        order: ``second`` or ``first`` (a learner's own default for learners).
        batching: The batching the path ran (``auto`` resolved).
        seconds_per_step: Median wall time of a timed meta-step.
        steps_per_second: Its inverse.
        gflop: Floating-point operations of a meta-step, in GFLOP (the reference's for
            MAML's paths, which compute the same; each learner's own).
        gflops: ``gflop / seconds_per_step``.
        peak_mib: Peak memory growth during the meta-steps, MiB (NaN if not measured).
        memory_method: How ``peak_mib`` was measured.
    """

    path: str
    order: str
    batching: str
    seconds_per_step: float
    steps_per_second: float
    gflop: float
    gflops: float
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


# -- the students ------------------------------------------------------------------------


def config_for(path: str, order: str, shape: Shape, device: str) -> StudentConfig:
    """The student config of ``path`` (a MAML path, or ``learner:<name>``) at ``order``."""
    learner, batching = "maml", "auto"
    if path.startswith(LEARNER):
        learner = path[len(LEARNER) :]
    elif path not in ("auto", "reference", "learn2learn"):
        batching = path
    wanted = {"inner_steps": shape.inner_steps}
    if not path.startswith(LEARNER):
        wanted["first_order"] = ORDERS[order]
    kwargs = {k: v for k, v in wanted.items() if k in setting_names(learner)}
    return StudentConfig(
        n_max=shape.n_way,
        hidden=shape.hidden,
        depth=shape.depth,
        image_size=shape.image_size,
        batching=batching,
        device=device,
        learner=learner,
        learner_kwargs=kwargs,
    )


class Learn2LearnMAML:
    """learn2learn's MAML (``l2l.algorithms.MAML``) on an ``nn.Module`` of the same network:
    conv, batch norm with the batch's statistics, ReLU, 2x2 max-pool, a linear head; Adam."""

    def __init__(self, config: StudentConfig) -> None:
        import learn2learn as l2l  # optional: only this path needs it
        from torch import nn

        settings, layers, channels = config.settings, [], config.in_channels
        for _ in range(config.depth):
            layers += [
                nn.Conv2d(channels, config.hidden, 3, padding=1, bias=False),
                nn.BatchNorm2d(config.hidden, track_running_stats=False),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            channels = config.hidden
        side = config.image_size // 2**config.depth
        layers += [nn.Flatten(), nn.Linear(config.hidden * side * side, config.n_max)]
        self.config = config
        self.model = nn.Sequential(*layers).to(config.torch_device)
        self.maml = l2l.algorithms.MAML(
            self.model, lr=settings.inner_lr, first_order=settings.first_order
        )
        self.optimizer = torch.optim.Adam(self.maml.parameters(), lr=config.meta_lr)
        self.steps = settings.inner_steps

    def meta_step(self, batch: MetaBatch) -> None:
        """One meta-step: adapt a clone per task, back-propagate its query loss."""
        batch = batch.to(self.config.torch_device)
        self.optimizer.zero_grad(set_to_none=True)
        for i in range(batch.num_tasks):
            support_x, support_y, query_x, query_y, n = batch.task(i)
            learner = self.maml.clone()
            for _ in range(self.steps):
                learner.adapt(F.cross_entropy(learner(support_x)[:, :n], support_y))
            loss = F.cross_entropy(learner(query_x)[:, :n], query_y) / batch.num_tasks
            loss.backward()
        self.optimizer.step()


def learn2learn_available() -> bool:
    """Whether ``learn2learn`` imports here."""
    try:
        import learn2learn  # noqa: F401
    except Exception:
        return False
    return True


def build(path: str, order: str, shape: Shape, device: str) -> Any:
    """The student of ``path`` for ``shape`` at ``order``: an object with ``meta_step``."""
    config = config_for(path, order, shape, device)
    if path == "reference":
        return ReferenceMAML(config)
    if path == "learn2learn":
        return Learn2LearnMAML(config)
    return MetaLearner(config, seed=0)


def batching_of(path: str, order: str, shape: Shape, device: str) -> str:
    """The batching ``path`` runs with (``auto`` resolved)."""
    if path in ("reference", "learn2learn"):
        return path
    return config_for(path, order, shape, device).resolved_batching


# -- measurements --------------------------------------------------------------------------


def gflop_per_step(path: str, order: str, shape: Shape, device: str) -> float:
    """Floating-point operations of one meta-step of a fresh student, GFLOP."""
    from torch.utils.flop_counter import FlopCounterMode

    student = build(path, order, shape, device)
    batch = synthetic_batch(shape, torch.device(device))
    with FlopCounterMode(display=False) as counter:
        student.meta_step(batch)
    return counter.get_total_flops() / 1e9


def machine_ceiling(
    device: str, repeats: int = 3, batch: int = 2560, size: int = 4096
) -> dict[str, float]:
    """The machine's own rates, GFLOP/s: one large 64-to-64 3x3 convolution (``batch``
    images of 14x14, the network's middle layers at scale) and a ``size`` x ``size``
    matrix product."""
    dev = torch.device(device)
    x = torch.randn(batch, 64, 14, 14, device=dev)
    w = torch.randn(64, 64, 3, 3, device=dev)
    if dev.type == "cpu":  # the student's layout on the CPU
        x, w = (t.contiguous(memory_format=torch.channels_last) for t in (x, w))
    a = torch.randn(size, size, device=dev)
    jobs = {
        "conv": (lambda: F.conv2d(x, w, padding=1), 2 * batch * 64 * 64 * 9 * 14 * 14),
        "sgemm": (lambda: a @ a, 2 * size**3),
    }
    rates = {}
    for name, (job, flop) in jobs.items():
        job()
        times = []
        for _ in range(repeats):
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            start = time.perf_counter()
            job()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            times.append(time.perf_counter() - start)
        rates[name] = flop / statistics.median(times) / 1e9
    return rates


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}; CPU memory needs Linux.")


def peak_growth_mib(work: Callable[[], object], device: str, repeats: int = 1) -> float:
    """Peak memory growth over ``repeats`` calls of ``work``, from just before the first:
    CUDA's allocator peak, or on the CPU the resident set's high-water mark (Linux
    ``/proc/self/clear_refs``; only meaningful in a fresh process)."""
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device)
    else:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # resets VmHWM to the current resident set size
        # the reset high-water mark, not VmRSS read later: the peak never falls below it
        baseline = _rss_kib("VmHWM") * 1024
    for _ in range(repeats):
        work()
    if cuda:
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
    else:
        peak = _rss_kib("VmHWM") * 1024
    # The kernel's resident-set counters are approximate (cached per thread, folded in
    # batches), so a growth below their error can read a few KiB below zero: none is none.
    return max(0.0, (peak - baseline) / 2**20)


def peak_memory_mib(path: str, order: str, shape: Shape, device: str, steps: int) -> float:
    """Peak memory growth over ``steps`` meta-steps, from just before the first one.

    On the CPU this is only meaningful in a fresh process (see
    :func:`peak_memory_in_subprocess`).
    """
    student = build(path, order, shape, device)
    batch = synthetic_batch(shape, torch.device(device))
    return peak_growth_mib(lambda: student.meta_step(batch), device, steps)


def peak_memory_in_subprocess(
    path: str, order: str, options: list[str], device: str, threads: int
) -> float:
    """:func:`peak_memory_mib` of one meta-step in a fresh Python process.

    ``options`` are the shape's flags (``--small``, ``--reduced``, ``--mixed``).
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


def table(results: list[Result], ceiling: dict[str, float] | None = None) -> str:
    """The results as text: each path's speed and memory relative to its baseline (the
    reference for MAML's paths, MAML's ``auto`` for the learners) and its GFLOP/s, as a
    fraction of the machine's convolution rate."""
    lines = [
        f"{'order':<8}{'path':<18}{'batching':<12}{'s/step':>9}{'GFLOP':>8}{'GFLOP/s':>9}"
        f"{'of conv':>9}{'peak MiB':>10}{'speed':>8}{'memory':>8}"
    ]
    baselines = {}
    for r in results:
        if r.path == "reference" or (r.path == f"{LEARNER}maml" and r.order == "learners"):
            baselines[r.order] = r
    conv = (ceiling or {}).get("conv")
    for r in results:
        base = baselines.get(r.order)
        speed = f"{base.seconds_per_step / r.seconds_per_step:.2f}x" if base else "-"
        usable = base and base.peak_mib > 0 and r.peak_mib == r.peak_mib
        memory = f"{r.peak_mib / base.peak_mib:.2f}x" if usable else "-"
        share = f"{r.gflops / conv:.0%}" if conv else "-"
        lines.append(
            f"{r.order:<8}{r.path:<18}{r.batching:<12}{r.seconds_per_step:>9.3f}"
            f"{r.gflop:>8.1f}{r.gflops:>9.1f}{share:>9}{r.peak_mib:>10.1f}{speed:>8}{memory:>8}"
        )
    if ceiling:
        lines.append(
            f"machine: a 64-to-64 3x3 convolution at {ceiling['conv']:.0f} GFLOP/s, "
            f"a 4096 matrix product at {ceiling['sgemm']:.0f} GFLOP/s"
        )
    return "\n".join(lines)


# -- the command ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:<index>")
    shapes = parser.add_mutually_exclusive_group()
    shapes.add_argument("--small", action="store_true", help="5-way, 32 filters")
    shapes.add_argument("--reduced", action="store_true", help="the reduced preset's student")
    parser.add_argument("--mixed", action="store_true", help="tasks' n spread over 1..n_way")
    parser.add_argument("--repeats", type=int, default=None, help="timed meta-steps per path")
    parser.add_argument("--warmup", type=int, default=None, help="untimed meta-steps first")
    parser.add_argument(
        "--paths", default=",".join(PATHS), help=f"comma-separated, of {PATHS + OPTIONAL_PATHS}"
    )
    parser.add_argument("--orders", default=",".join(ORDERS), help="second, first or both")
    parser.add_argument(
        "--learners", default="", help="learners to time against MAML ('all', or names)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--no-memory", action="store_true", help="skip peak memory")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    parser.add_argument(
        "--memory-worker", nargs=2, metavar=("PATH", "ORDER"), help=argparse.SUPPRESS
    )
    return parser.parse_args(argv)


def _check(name: str, chosen: list[str], allowed: tuple[str, ...]) -> None:
    if set(chosen) - set(allowed):
        raise SystemExit(f"unknown {name}(s) {sorted(set(chosen) - set(allowed))}; use {allowed}")


def main(argv: list[str] | None = None) -> list[Result]:
    """Run the benchmark, print the table, optionally write JSON; returns the results."""
    args = parse_args(argv)
    base = REDUCED if args.reduced else SMALL if args.small else FULL
    shape = dataclasses.replace(base, mixed=args.mixed)
    device = str(StudentConfig(n_max=1, device=args.device).torch_device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.memory_worker:
        print(peak_memory_mib(*args.memory_worker, shape, device, steps=1))
        return []
    cuda = device.startswith("cuda")
    warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    repeats = args.repeats if args.repeats is not None else (10 if cuda else 3)
    paths = [p for p in args.paths.split(",") if p]
    orders = [o for o in args.orders.split(",") if o]
    learners = (
        list_learners() if args.learners == "all" else [x for x in args.learners.split(",") if x]
    )
    _check("path", paths, PATHS + OPTIONAL_PATHS)
    _check("order", orders, tuple(ORDERS))
    _check("learner", learners, tuple(list_learners()))
    if "learn2learn" in paths and not learn2learn_available():
        print("learn2learn is not installed: its path is skipped", flush=True)
        paths.remove("learn2learn")
    load = "n/a" if cuda else ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} "
        f"load average={load}\n{shape} warmup={warmup} repeats={repeats}",
        flush=True,
    )
    ceiling = machine_ceiling(device)
    print(f"ceiling: {ceiling}", flush=True)
    method = "cuda.max_memory_allocated growth" if cuda else "VmHWM growth, fresh process"
    options = ["--small"] * args.small + ["--reduced"] * args.reduced + ["--mixed"] * args.mixed
    blocks = [(order, paths) for order in orders]
    if learners:  # MAML's default first: every learner's speed is against it
        names = [f"{LEARNER}{name}" for name in dict.fromkeys(["maml", *learners])]
        blocks.append(("learners", names))
    results = []
    for order, names in blocks:
        timed_order = "second" if order == "learners" else order
        timings = seconds_per_step(names, timed_order, shape, device, warmup, repeats)
        for path in names:
            flop_path = "reference" if path in PATHS + OPTIONAL_PATHS else path
            gflop = gflop_per_step(flop_path, timed_order, shape, device)
            if args.no_memory:
                memory = float("nan")
            elif cuda:
                memory = peak_memory_mib(path, timed_order, shape, device, steps=2)
            else:
                threads = torch.get_num_threads()
                memory = peak_memory_in_subprocess(path, timed_order, options, device, threads)
            seconds = timings[path]
            results.append(
                Result(
                    path=path,
                    order=order,
                    batching=batching_of(path, timed_order, shape, device),
                    seconds_per_step=seconds,
                    steps_per_second=1.0 / seconds,
                    gflop=gflop,
                    gflops=gflop / seconds,
                    peak_mib=memory,
                    memory_method=method,
                )
            )
            print(f"  {order} {path}: {seconds:.3f} s/step, {memory:.1f} MiB", flush=True)
    print(table(results, ceiling))
    if args.json:
        write_results(args.json, device, shape, warmup, repeats, results, ceiling)
    return results


def write_results(
    path: str,
    device: object,
    shape: Shape,
    warmup: int,
    repeats: int,
    results: list,
    ceiling: dict[str, float] | None = None,
) -> None:
    """Write a speed benchmark's settings and result rows (dataclasses) to ``path`` as JSON."""
    payload = {"device": str(device), "torch": torch.__version__, "shape": asdict(shape)}
    payload |= {"warmup": warmup, "repeats": repeats, "ceiling_gflops": ceiling}
    payload |= {"threads": torch.get_num_threads(), "results": [asdict(r) for r in results]}
    with open(path, "w") as file:
        json.dump(payload, file, indent=2)


if __name__ == "__main__":
    main()
