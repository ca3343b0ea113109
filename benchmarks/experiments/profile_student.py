"""Where a student's time goes: phases of the meta-step and the env step, and ops by kind.

Two workloads, as the CPU pays for them:

* ``full``: one meta-step of Omniglot 20-way 1-shot, 15 queries, meta-batch 8, MAML's
  64-filter 4-block net (second order by default), on synthetic images;
* ``reduced``: env steps of the ``reduced`` preset's student (5-way 1-shot, 5 queries,
  16 filters x 3 blocks, first order) on real Omniglot: sampling, meta-steps and the
  measurements around them.

Phases are timed by wrapping the functions that do them (wall time, summed): the task
sampling, the inner loop (a learner's ``adapt``), the query pass (the rest of its
``outer_losses``), the outer backward (the rest of the meta-gradient), Adam, and the
env's measurements (validation and target tasks). Ops are grouped by kind from
``torch.profiler`` (self CPU time): convolution forward, convolution backward (first and
second order), batch norm, pooling, ReLU, matrix products, and the rest::

    python -m metacurriculum.benchmarks.experiments.profile_student --workload full
    python -m metacurriculum.benchmarks.experiments.profile_student --workload reduced --steps 10
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import torch

#: Op-name fragments -> the kind they are counted as (the first match wins).
KINDS = (
    ("convolution_backward", "conv backward"),
    ("ConvolutionBackward", "conv backward"),
    ("convolution", "conv forward"),
    ("conv2d", "conv forward"),
    ("batch_norm", "batch norm"),
    ("max_pool", "pooling"),
    ("threshold_backward", "ReLU"),
    ("relu", "ReLU"),
    ("clamp_min", "ReLU"),
    ("mm", "matrix products"),
    ("addmm", "matrix products"),
    ("bmm", "matrix products"),
    ("linear", "matrix products"),
    ("im2col", "patches (first conv)"),
    ("col2im", "patches (first conv)"),
    ("unfold", "patches (first conv)"),
)


class Phases:
    """Wall time summed per phase, nested phases subtracted from their parents."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._stack: list[list[float]] = []

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self._stack.append([0.0])
        start = time.perf_counter()
        try:
            yield
        finally:
            spent = time.perf_counter() - start
            inner = self._stack.pop()[0]
            self.seconds[name] += spent - inner
            if self._stack:
                self._stack[-1][0] += spent

    def wrap(self, owner: Any, attribute: str, name: str) -> None:
        """Time every call of ``owner.attribute`` as phase ``name``."""
        original = getattr(owner, attribute)

        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.phase(name):
                return original(*args, **kwargs)

        setattr(owner, attribute, timed)


def instrument(phases: Phases) -> None:
    """Wrap the functions of each phase (this process only: an experiment, not the library)."""
    from metacurriculum.envs.learner_student import LearnerStudents
    from metacurriculum.envs.tasks import FamilyTasks
    from metacurriculum.student import backends, learners
    from metacurriculum.student.population import Population

    phases.wrap(FamilyTasks, "sample", "sampling")
    phases.wrap(FamilyTasks, "sample_hardest", "sampling")
    for name in ("loop_meta_gradient", "vmap_meta_gradient"):
        phases.wrap(backends, name, "outer backward")
    phases.wrap(Population, "_grouped_chunk", "outer backward")
    phases.wrap(learners.MAML, "outer_losses", "query pass")
    phases.wrap(learners.MAML, "adapt", "inner loop")
    phases.wrap(learners.ProtoNet, "outer_losses", "query pass")
    phases.wrap(torch.optim.Adam, "step", "Adam")
    phases.wrap(LearnerStudents, "validate", "measurement")
    phases.wrap(LearnerStudents, "evaluate_target", "measurement")


def op_kinds(profile: Any) -> dict[str, float]:
    """Self CPU seconds per kind of op."""
    seconds: dict[str, float] = defaultdict(float)
    for event in profile.key_averages():
        kind = next((k for fragment, k in KINDS if fragment in event.key), "other ops")
        seconds[kind] += event.self_cpu_time_total / 1e6
    return dict(seconds)


def full_workload(order: str) -> Callable[[], None]:
    """One meta-step of the 20-way workload, as a callable."""
    from metacurriculum.benchmarks.experiments.student_speed import FULL, build, synthetic_batch

    student = build("auto", order, FULL, "cpu")
    batch = synthetic_batch(FULL, torch.device("cpu"))
    student.meta_step(batch)  # warm up
    return lambda: student.meta_step(batch)


def reduced_workload(steps: int) -> Callable[[], None]:
    """``steps`` env steps of the reduced preset's student, as a callable."""
    from metacurriculum.benchmarks.presets import resolve

    spec = resolve("reduced", teachers=("none",), seeds=(0,)).specs()[0]
    env = spec.make_env()
    env.reset(seed=0)
    action = env.action_space.sample() * 0

    def run() -> None:
        for _ in range(steps):
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset(seed=0)

    run()  # warm up
    return run


def other_ops(profile: Any, top: int) -> dict[str, float]:
    """Self CPU seconds of the ``top`` largest ops counted as "other ops" (with their calls
    in the name), and the rest of them together."""
    rows = [
        (event.self_cpu_time_total / 1e6, event.count, event.key)
        for event in profile.key_averages()
        if not any(fragment in event.key for fragment, _ in KINDS)
    ]
    rows.sort(reverse=True)
    seconds = {f"{key} ({count} calls)": value for value, count, key in rows[:top]}
    seconds["the rest"] = sum(value for value, _, _ in rows[top:])
    return seconds


def table(title: str, seconds: dict[str, float]) -> str:
    """A markdown table of seconds and shares, largest first."""
    total = sum(seconds.values())
    lines = [f"| {title} | seconds | share |", "|---|---:|---:|"]
    for name, value in sorted(seconds.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {name} | {value:.3f} | {value / total:.0%} |")
    lines.append(f"| total | {total:.3f} | 100% |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", choices=("full", "reduced"), default="full")
    parser.add_argument("--order", choices=("second", "first"), default="second")
    parser.add_argument("--steps", type=int, default=10, help="env steps of 'reduced'")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--top", type=int, default=0, help="also list the N largest of the 'other ops'"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    phases = Phases()
    instrument(phases)
    if args.workload == "full":
        work = full_workload(args.order)
    else:
        work = reduced_workload(args.steps)
    phases.seconds.clear()
    start = time.perf_counter()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        work()
    wall = time.perf_counter() - start
    timed = dict(phases.seconds)
    timed["other (Python, env)"] = max(0.0, wall - sum(timed.values()))
    kinds = op_kinds(profile)
    what = f"{args.workload} ({args.order} order)" if args.workload == "full" else "reduced"
    print(f"{what}, {args.threads} thread(s), under the profiler: {wall:.2f} s wall")
    print(table("phase", timed))
    print()
    print(table("ops (self CPU)", kinds))
    result = {"phases": timed, "ops": kinds}
    if args.top > 0:
        result["other ops"] = other_ops(profile, args.top)
        print()
        print(table("other ops (self CPU)", result["other ops"]))
    return result


if __name__ == "__main__":
    main()
