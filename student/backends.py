"""How a learner's tasks run: one exact task at a time, all of them in one ``vmap``, or grouped.

A learner (:mod:`~metacurriculum.student.learners`) is written once, against
:class:`Tasks` (``T`` tasks, their parameters stacked on a leading axis) and
:class:`Ops` (the network and gradients). The back-ends decide how its tasks are fed:

* **loop**: one task at a time on its exact, unpadded shapes (``T = 1``), each task's
  share of the meta-loss back-propagated before the next, so one task's graph is alive
  at a time. The CPU's default.
* **vmap**: every task of the padded batch in one ``torch.func.vmap`` call; inner
  gradients by ``torch.func.grad``, batch norm from primitive ops.
* **grouped**: every task in one call of plain ops, each task's network a group of
  a grouped convolution (:func:`~metacurriculum.student.network.features`). The CUDA
  default; a population's rows run here together.

Padded examples are masked out of batch-norm statistics and losses, and logits beyond a
task's ``n`` are ``-inf``, so every back-end gives each task what it would get alone.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

import torch
from torch import Tensor

from metacurriculum.student import network
from metacurriculum.student.batch import MetaBatch
from metacurriculum.student.network import Params

if TYPE_CHECKING:
    from metacurriculum.student.learners import Learner

T = TypeVar("T")
#: Per-task statistics of a meta-step, each ``[T]``: ``query_loss``, ``query_acc``, ``support_loss``.
Stats = dict[str, Tensor]
STATS = ("query_loss", "query_acc", "support_loss")
_PADDED = ("support_x", "support_y", "support_mask", "query_x", "query_y", "query_mask")


@dataclass(frozen=True)
class Tasks:
    """``T`` tasks as a learner sees them.

    Attributes:
        support_x: ``[T, S, C, H, W]`` support images.
        support_y: ``[T, S]`` labels in ``0..n-1``.
        support_mask: ``[T, S]`` bool, True for real examples; ``None`` when none is padded.
        query_x: ``[T, P, C, H, W]`` query images.
        query_y: ``[T, P]`` labels.
        query_mask: ``[T, P]`` bool, or ``None``.
        n_way: ``[T]`` int64, each task's number of classes.
        n: The tasks' common number of classes when they share one, else ``None``.
        classes: Class slots a learner's logits need: ``n``, or the largest ``n``.
    """

    support_x: Tensor
    support_y: Tensor
    support_mask: Tensor | None
    query_x: Tensor
    query_y: Tensor
    query_mask: Tensor | None
    n_way: Tensor
    n: int | None
    classes: int

    @classmethod
    def exact(cls, batch: MetaBatch, index: int) -> Tasks:
        """Task ``index`` of ``batch`` alone, without its padding (``T = 1``)."""
        support_x, support_y, query_x, query_y, n = batch.task(index)
        return cls(
            support_x[None],
            support_y[None],
            None,
            query_x[None],
            query_y[None],
            None,
            batch.n_way[index : index + 1],
            n,
            n,
        )

    @classmethod
    def padded(cls, batch: MetaBatch) -> Tasks:
        """Every task of ``batch``, padded; masks only where some task is padded."""
        uniform = batch.is_uniform
        n = int(batch.n_way[0]) if uniform else None
        return cls(
            batch.support_x,
            batch.support_y,
            None if uniform else batch.support_mask,
            batch.query_x,
            batch.query_y,
            None if uniform else batch.query_mask,
            batch.n_way,
            n,
            n if uniform else int(batch.n_way.max()),
        )

    @property
    def num_tasks(self) -> int:
        """``T``."""
        return int(self.n_way.shape[0])

    def examples(self) -> tuple[Tensor, Tensor, Tensor | None]:
        """Support and query examples together: ``([T, S+P, ...], [T, S+P], mask or None)``."""
        x = torch.cat([self.support_x, self.query_x], dim=1)
        y = torch.cat([self.support_y, self.query_y], dim=1)
        if self.support_mask is None:
            return x, y, None
        return x, y, torch.cat([self.support_mask, self.query_mask], dim=1)  # type: ignore[list-item]


@dataclass(frozen=True)
class Ops:
    """What a learner computes with, as its back-end runs it.

    Attributes:
        eps: Batch-norm epsilon.
        functional: True under ``torch.func.vmap``: inner gradients by ``torch.func.grad``
            and batch norm from primitive ops (``F.batch_norm``'s batched double backward
            is wrong); else ``torch.autograd`` and ``F.batch_norm`` where nothing is padded.
        channels_last: Activations laid out channels-last (the CPU's fast layout).
        twice: What is computed will be differentiated twice (the inner steps of a
            second-order learner): batch norm whose double backward is fast (see
            :func:`~metacurriculum.student.network.batch_norm`).
        task_threads: The loop path runs its tasks in threads (see :func:`map_tasks`).
    """

    eps: float
    functional: bool = False
    channels_last: bool = False
    twice: bool = False
    task_threads: bool = True

    def differentiated_twice(self, twice: bool = True) -> Ops:
        """These ops for a computation that is (or is not) differentiated twice."""
        return self if self.twice == twice else replace(self, twice=twice)

    def features(self, params: Params, x: Tensor, mask: Tensor | None) -> Tensor:
        """``[T, N, F]`` body features of ``[T, N, C, H, W]`` images."""
        fused = not (self.functional or self.twice)
        return network.features(
            params, x, mask, eps=self.eps, fused=fused, channels_last=self.channels_last
        )

    def logits(self, params: Params, x: Tensor, mask: Tensor | None) -> Tensor:
        """``[T, N, n_max]`` logits of the whole network."""
        return network.head(params, self.features(params, x, mask))

    def loss(self, logits: Tensor, labels: Tensor, mask: Tensor | None, tasks: Tasks) -> Tensor:
        """``[T]`` mean cross entropy over each task's real examples and classes."""
        return network.task_losses(logits, labels, mask, tasks.n_way, tasks.n)

    def accuracy(self, logits: Tensor, labels: Tensor, mask: Tensor | None, tasks: Tasks) -> Tensor:
        """``[T]`` accuracy over each task's real examples."""
        return network.task_accuracy(logits, labels, mask, tasks.n_way, tasks.n)

    def value_and_grad(
        self, fn: Callable[[Params], Tensor], params: Params, create_graph: bool
    ) -> tuple[Tensor, Params]:
        """``fn(params)`` (``[T]`` losses, detached) and the gradient of their sum.

        Tasks are independent, so the gradient of the sum is every task's own gradient.
        With ``create_graph`` the gradient is differentiable (second order); without,
        it is a constant. Parameters that do not require grad are differentiated as
        fresh leaves.
        """
        if self.functional:
            from torch.func import grad

            def total(p: Params) -> tuple[Tensor, Tensor]:
                value = fn(p)
                return value.sum(), value

            grads, value = grad(total, has_aux=True)(params)
            if not create_graph:
                grads = {name: g.detach() for name, g in grads.items()}
            return value.detach(), grads
        with torch.enable_grad():
            inputs = {
                name: p if p.requires_grad else p.detach().requires_grad_()
                for name, p in params.items()
            }
            value = fn(inputs)
            grads = torch.autograd.grad(
                value.sum(), list(inputs.values()), create_graph=create_graph
            )
        return value.detach(), dict(zip(inputs, grads, strict=True))


def map_tasks(
    task: Callable[[int], T], count: int, device: torch.device, parallel: bool = True
) -> list[T]:
    """``[task(0), ..., task(count - 1)]``, the tasks spread over torch's CPU threads.

    With ``torch.get_num_threads() == k > 1`` (on the CPU), ``k`` Python threads compute
    a task each while every torch op runs single-threaded; torch's intra-op threads are
    restored after. A task's numbers never depend on the threads, and the results come
    back in task order, so a meta-step gives the same bits whatever the thread count.
    Tasks are independent and large (a task is many ops of milliseconds, during which
    torch releases the GIL), which one intra-op pool over small ops is not: measured in
    ``benchmarks/experiments/student_speed.py``. On CUDA, or with ``parallel=False``
    (:attr:`~metacurriculum.student.StudentConfig.task_threads`), the tasks run in
    order, each with all of torch's threads.
    """
    threads = torch.get_num_threads()
    if not parallel or threads <= 1 or count <= 1 or device.type != "cpu":
        return [task(i) for i in range(count)]
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(min(threads, count), thread_name_prefix="task") as pool:
            return list(pool.map(task, range(count)))
    finally:
        torch.set_num_threads(threads)


def _functional(ops: Ops) -> Ops:
    """``ops`` under ``torch.func.vmap``: channels-first (the layouts vmap batches)."""
    return replace(ops, functional=True, channels_last=False)


def _unbatched(params: Params) -> Params:
    return {name: p.unsqueeze(0) for name, p in params.items()}


# ---------------------------------------------------------------- meta-gradients of one student


def loop_meta_gradient(
    learner: Learner, params: Params, batch: MetaBatch, ops: Ops
) -> tuple[Params, Stats]:
    """The meta-gradient of one student's mean task loss, one exact task at a time.

    Args:
        learner: The learner.
        params: The student's meta-parameters (leaves that require grad).
        batch: The meta-batch, on the parameters' device and dtype.
        ops: The network's settings (batch-norm epsilon, layout).

    Returns:
        The gradient per parameter name, and the per-task statistics (:data:`STATS`).
    """
    tasks = batch.num_tasks

    def task(i: int) -> tuple[tuple[Tensor, ...], Stats]:
        loss, task_stats = learner.outer_losses(_unbatched(params), Tasks.exact(batch, i), ops)
        # Back-propagating each task at once keeps one task's graph (per thread) in memory.
        grads = torch.autograd.grad(
            loss.sum() / tasks, list(params.values()), materialize_grads=True
        )
        return grads, task_stats

    results = map_tasks(task, tasks, next(iter(params.values())).device, ops.task_threads)
    total = {name: torch.zeros_like(p) for name, p in params.items()}
    for grads, _ in results:  # in task order, so the sum is the same for any thread count
        for acc, g in zip(total.values(), grads, strict=True):
            acc.add_(g)
    return total, {name: torch.cat([r[1][name] for r in results]) for name in STATS}


def vmap_meta_gradient(
    learner: Learner, params: Params, batch: MetaBatch, ops: Ops
) -> tuple[Params, Stats]:
    """Like :func:`loop_meta_gradient`, every padded task in one ``torch.func.vmap`` call."""
    from torch.func import grad, vmap  # imported here: it costs seconds, and only vmap needs it

    ops, classes = _functional(ops), int(batch.n_way.max())
    fields = [getattr(batch, name) for name in _PADDED]

    def one(p: Params, *task: Tensor) -> tuple[Tensor, Stats]:
        tasks = Tasks(*(t[None] for t in task), n=None, classes=classes)
        loss, task_stats = learner.outer_losses(_unbatched(p), tasks, ops)
        return loss[0], {name: task_stats[name][0] for name in STATS}

    def meta_loss(p: Params) -> tuple[Tensor, Stats]:
        per_task = vmap(one, in_dims=(None, *[0] * (len(fields) + 1)), randomness="error")
        loss, stats = per_task(p, *fields, batch.n_way)
        return loss.mean(), stats

    detached = {name: p.detach() for name, p in params.items()}
    grads, stats = grad(meta_loss, has_aux=True)(detached)
    return grads, {name: value.detach() for name, value in stats.items()}


def grouped_meta_gradient(
    learner: Learner, params: Params, batch: MetaBatch, ops: Ops
) -> tuple[Params, Stats]:
    """Like :func:`loop_meta_gradient`, every padded task in one grouped call (one student's
    parameters copied to each task)."""
    tasks = batch.num_tasks
    task_params = {name: p.unsqueeze(0).expand(tasks, *p.shape) for name, p in params.items()}
    loss, stats = grouped_outer_losses(learner, task_params, batch, ops)
    grads = torch.autograd.grad(loss.mean(), list(params.values()), materialize_grads=True)
    return dict(zip(params, grads, strict=True)), stats


def grouped_outer_losses(
    learner: Learner, task_params: Params, batch: MetaBatch, ops: Ops
) -> tuple[Tensor, Stats]:
    """Every task's outer loss in one grouped call, each task from its own parameters.

    Args:
        learner: The learner.
        task_params: ``[T, ...]`` starting parameters of each task, differentiable
            functions of whatever the meta-gradient is taken with respect to (a
            student's, copied to each of its tasks).
        batch: The ``T`` tasks.
        ops: The network's settings.

    Returns:
        The ``[T]`` outer losses (differentiable) and the per-task statistics.
    """
    return learner.outer_losses(task_params, Tasks.padded(batch), ops)


# ------------------------------------------------------------------------- evaluation curves


def loop_curves(
    learner: Learner,
    params: Params,
    batch: MetaBatch,
    ops: Ops,
    steps: int,
    final_only: bool = False,
) -> tuple[Tensor, Tensor]:
    """Per-task query loss and accuracy before adaptation and after each of ``steps`` steps
    (only after the last with ``final_only``).

    Returns:
        Two ``[T, steps + 1]`` (or ``[T, 1]``) tensors: loss and accuracy.
    """
    params = _unbatched({name: p.detach() for name, p in params.items()})
    curves = map_tasks(
        lambda i: learner.curves(params, Tasks.exact(batch, i), ops, steps, final_only),
        batch.num_tasks,
        batch.support_x.device,
        ops.task_threads,
    )
    return torch.cat([c[0] for c in curves]), torch.cat([c[1] for c in curves])


def vmap_curves(
    learner: Learner,
    params: Params,
    batch: MetaBatch,
    ops: Ops,
    steps: int,
    chunk_size: int,
    final_only: bool = False,
) -> tuple[Tensor, Tensor]:
    """Like :func:`loop_curves`, ``chunk_size`` padded tasks per ``vmap`` call."""
    from torch.func import vmap

    ops = _functional(ops)
    detached = {name: p.detach() for name, p in params.items()}
    losses, accuracies = [], []
    for start in range(0, batch.num_tasks, chunk_size):
        chunk = batch.select(slice(start, start + chunk_size))
        classes = int(chunk.n_way.max())

        def one(*task: Tensor, classes: int = classes) -> tuple[Tensor, Tensor]:
            tasks = Tasks(*(t[None] for t in task), n=None, classes=classes)
            loss, accuracy = learner.curves(_unbatched(detached), tasks, ops, steps, final_only)
            return loss[0], accuracy[0]

        with torch.no_grad():
            loss, accuracy = vmap(one)(*(getattr(chunk, name) for name in _PADDED), chunk.n_way)
        losses.append(loss)
        accuracies.append(accuracy)
    return torch.cat(losses), torch.cat(accuracies)


def grouped_curves(
    learner: Learner,
    params: Params,
    batch: MetaBatch,
    ops: Ops,
    steps: int,
    chunk_size: int,
    owner: Tensor | None = None,
    final_only: bool = False,
) -> tuple[Tensor, Tensor]:
    """Like :func:`loop_curves`, ``chunk_size`` tasks per grouped call.

    Args:
        params: One network's parameters, or with ``owner`` several networks' stacked on
            a leading axis (a population's).
        owner: ``[T]`` int64, the network each task starts from; ``None`` starts every
            task from ``params``.
    """
    detached = {name: p.detach() for name, p in params.items()}
    losses, accuracies = [], []
    for start in range(0, batch.num_tasks, chunk_size):
        chunk = batch.select(slice(start, start + chunk_size))
        if owner is None:
            task_params = {
                name: p.unsqueeze(0).expand(chunk.num_tasks, *p.shape)
                for name, p in detached.items()
            }
        else:
            rows = owner[start : start + chunk_size]
            task_params = {name: p.index_select(0, rows) for name, p in detached.items()}
        loss, accuracy = learner.curves(task_params, Tasks.padded(chunk), ops, steps, final_only)
        losses.append(loss)
        accuracies.append(accuracy)
    return torch.cat(losses), torch.cat(accuracies)


__all__ = [
    "STATS",
    "Ops",
    "Stats",
    "Tasks",
    "grouped_curves",
    "grouped_meta_gradient",
    "grouped_outer_losses",
    "loop_curves",
    "loop_meta_gradient",
    "vmap_curves",
    "vmap_meta_gradient",
]
