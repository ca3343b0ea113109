"""The inner loop, and two ways to run a meta-batch through it: a task loop and ``vmap``.

Both compute, for every task of a meta-batch, the query loss of the parameters
adapted by ``inner_steps`` SGD steps on the task's support set, and the
gradient of their mean over tasks with respect to the initial parameters.

* **loop** runs one task at a time on its exact, unpadded shapes and
  back-propagates each task's share of the meta-loss before the next task, so
  only one task's graph is alive at a time.
* **vmap** runs all tasks in one call of ``torch.func.vmap`` over the padded
  batch. Padded support and query examples are masked out of the losses and of
  the batch-norm statistics, and logits beyond a task's ``n`` are ``-inf``, so
  every task sees exactly what it would alone.

Each path also has an evaluation form that records the query loss and accuracy
before adaptation and after every inner step, without a meta-gradient. A third
path, grouped ops without ``torch.func``, is in
:mod:`~metacurriculum.student.grouped`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import grad, grad_and_value, vmap

from metacurriculum.student.batch import MetaBatch
from metacurriculum.student.network import (
    Params,
    forward,
    mask_logits,
    masked_accuracy,
    masked_cross_entropy,
)

# The per-task statistics a meta-gradient comes with, each a [T] tensor.
TaskStats = dict[str, Tensor]
_PADDED_FIELDS = ("support_x", "support_y", "support_mask", "query_x", "query_y", "query_mask")


@dataclass(frozen=True)
class InnerLoop:
    """How a task is adapted: the inner-loop hyper-parameters and batch-norm form.

    Attributes:
        lr: Inner SGD step size.
        steps: Inner SGD steps.
        first_order: Treat inner gradients as constants (first-order MAML).
        eps: Batch-norm epsilon.
        fused_bn: Use ``F.batch_norm`` in the loop path (never under vmap).
    """

    lr: float
    steps: int
    first_order: bool
    eps: float
    fused_bn: bool = True


def _sgd(params: Params, grads: dict[str, Tensor] | tuple[Tensor, ...], lr: float) -> Params:
    values = grads.values() if isinstance(grads, dict) else grads
    return {name: p - lr * g for (name, p), g in zip(params.items(), values, strict=True)}


# ---------------------------------------------------------------- loop: one exact task at a time


def _exact_logits(params: Params, x: Tensor, n_way: int, inner: InnerLoop) -> Tensor:
    return forward(params, x, eps=inner.eps, fused_bn=inner.fused_bn)[:, :n_way]


def _exact_task(
    params: Params, task: tuple[Tensor, Tensor, Tensor, Tensor, int], inner: InnerLoop
) -> tuple[Tensor, Tensor, Tensor]:
    """Query loss (with its graph), pre-adaptation support loss and query accuracy of one task."""
    support_x, support_y, query_x, query_y, n_way = task
    adapted, support_loss = params, None
    for _ in range(inner.steps):
        loss = F.cross_entropy(_exact_logits(adapted, support_x, n_way, inner), support_y)
        support_loss = loss.detach() if support_loss is None else support_loss
        grads = torch.autograd.grad(
            loss, list(adapted.values()), create_graph=not inner.first_order
        )
        adapted = _sgd(adapted, grads, inner.lr)
    if support_loss is None:
        with torch.no_grad():
            logits = _exact_logits(params, support_x, n_way, inner)
            support_loss = F.cross_entropy(logits, support_y)
    logits = _exact_logits(adapted, query_x, n_way, inner)
    accuracy = (logits.detach().argmax(dim=-1) == query_y).to(logits.dtype).mean()
    return F.cross_entropy(logits, query_y), support_loss, accuracy


def loop_meta_gradient(
    params: Params, batch: MetaBatch, inner: InnerLoop
) -> tuple[dict[str, Tensor], TaskStats]:
    """Meta-gradient of the mean post-adaptation query loss, one task at a time.

    Args:
        params: Leaf tensors that require grad.
        batch: The meta-batch, on the parameters' device and dtype.
        inner: The inner loop.

    Returns:
        The gradient per parameter name, and per-task ``query_loss``,
        ``support_loss`` (before adaptation) and ``query_acc``.
    """
    tasks = batch.num_tasks
    total = {name: torch.zeros_like(p) for name, p in params.items()}
    stats: dict[str, list[Tensor]] = {"query_loss": [], "support_loss": [], "query_acc": []}
    for i in range(tasks):
        query_loss, support_loss, accuracy = _exact_task(params, batch.task(i), inner)
        # Back-propagating each task before the next keeps one task's graph in memory.
        grads = torch.autograd.grad(query_loss / tasks, list(params.values()))
        for acc, g in zip(total.values(), grads, strict=True):
            acc.add_(g)
        stats["query_loss"].append(query_loss.detach())
        stats["support_loss"].append(support_loss)
        stats["query_acc"].append(accuracy)
    return total, {name: torch.stack(values) for name, values in stats.items()}


def loop_curves(params: Params, batch: MetaBatch, inner: InnerLoop) -> tuple[Tensor, Tensor]:
    """Per-task query loss and accuracy before adaptation and after each inner step.

    Returns:
        Two ``[T, steps + 1]`` tensors: loss and accuracy.
    """
    losses, accuracies = [], []
    for i in range(batch.num_tasks):
        support_x, support_y, query_x, query_y, n_way = batch.task(i)
        adapted = {name: p.detach() for name, p in params.items()}
        task_losses, task_accuracies = [], []
        for step in range(inner.steps + 1):
            with torch.no_grad():
                logits = _exact_logits(adapted, query_x, n_way, inner)
                task_losses.append(F.cross_entropy(logits, query_y))
                task_accuracies.append((logits.argmax(dim=-1) == query_y).to(logits.dtype).mean())
            if step == inner.steps:
                break
            leaves = {name: p.requires_grad_() for name, p in adapted.items()}
            with torch.enable_grad():
                loss = F.cross_entropy(_exact_logits(leaves, support_x, n_way, inner), support_y)
                grads = torch.autograd.grad(loss, list(leaves.values()))
            adapted = {name: p.detach() for name, p in _sgd(leaves, grads, inner.lr).items()}
        losses.append(torch.stack(task_losses))
        accuracies.append(torch.stack(task_accuracies))
    return torch.stack(losses), torch.stack(accuracies)


# ------------------------------------------------------- vmap: every padded task in one call


def _padded_loss(
    params: Params, x: Tensor, y: Tensor, mask: Tensor, n_way: Tensor, inner: InnerLoop
) -> tuple[Tensor, Tensor]:
    """Masked mean cross entropy of one padded task's examples, and the masked logits."""
    logits = mask_logits(forward(params, x, mask, eps=inner.eps), n_way)
    return masked_cross_entropy(logits, y, mask), logits


def _padded_adapt_step(
    params: Params, x: Tensor, y: Tensor, mask: Tensor, n_way: Tensor, inner: InnerLoop
) -> tuple[Params, Tensor]:
    """One inner SGD step on a padded support set; also returns the loss before the step."""

    def support_loss(p: Params) -> Tensor:
        return _padded_loss(p, x, y, mask, n_way, inner)[0]

    grads, loss = grad_and_value(support_loss)(params)
    if inner.first_order:
        grads = {name: g.detach() for name, g in grads.items()}
    return _sgd(params, grads, inner.lr), loss


def _padded_task(
    params: Params,
    support_x: Tensor,
    support_y: Tensor,
    support_mask: Tensor,
    query_x: Tensor,
    query_y: Tensor,
    query_mask: Tensor,
    n_way: Tensor,
    inner: InnerLoop,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """One padded task: post-adaptation query loss, and (pre-adaptation support loss, query acc)."""
    adapted, support_loss = params, None
    for _ in range(inner.steps):
        adapted, loss = _padded_adapt_step(
            adapted, support_x, support_y, support_mask, n_way, inner
        )
        support_loss = loss if support_loss is None else support_loss
    if support_loss is None:
        support_loss = _padded_loss(params, support_x, support_y, support_mask, n_way, inner)[0]
    query_loss, logits = _padded_loss(adapted, query_x, query_y, query_mask, n_way, inner)
    accuracy = masked_accuracy(logits.detach(), query_y, query_mask)
    return query_loss, (support_loss.detach(), accuracy)


def vmap_meta_gradient(
    params: Params, batch: MetaBatch, inner: InnerLoop
) -> tuple[dict[str, Tensor], TaskStats]:
    """Meta-gradient of the mean post-adaptation query loss, all tasks in one ``vmap``.

    Same contract as :func:`loop_meta_gradient`; ``inner.fused_bn`` is ignored
    because ``F.batch_norm``'s batched double backward is wrong.
    """
    fields = [getattr(batch, name) for name in _PADDED_FIELDS]

    def meta_loss(p: Params) -> tuple[Tensor, TaskStats]:
        per_task = vmap(
            lambda *task: _padded_task(p, *task, inner=inner), in_dims=0, randomness="error"
        )
        query_loss, (support_loss, accuracy) = per_task(*fields, batch.n_way)
        stats = {"query_loss": query_loss, "support_loss": support_loss, "query_acc": accuracy}
        return query_loss.mean(), stats

    detached = {name: p.detach() for name, p in params.items()}
    grads, stats = grad(meta_loss, has_aux=True)(detached)
    return grads, {name: value.detach() for name, value in stats.items()}


def _padded_curve(
    params: Params,
    support_x: Tensor,
    support_y: Tensor,
    support_mask: Tensor,
    query_x: Tensor,
    query_y: Tensor,
    query_mask: Tensor,
    n_way: Tensor,
    inner: InnerLoop,
) -> tuple[Tensor, Tensor]:
    losses, accuracies = [], []
    adapted = params
    for step in range(inner.steps + 1):
        loss, logits = _padded_loss(adapted, query_x, query_y, query_mask, n_way, inner)
        losses.append(loss)
        accuracies.append(masked_accuracy(logits, query_y, query_mask))
        if step < inner.steps:
            adapted = _padded_adapt_step(adapted, support_x, support_y, support_mask, n_way, inner)[
                0
            ]
    return torch.stack(losses), torch.stack(accuracies)


def vmap_curves(
    params: Params, batch: MetaBatch, inner: InnerLoop, chunk_size: int
) -> tuple[Tensor, Tensor]:
    """Like :func:`loop_curves`, ``chunk_size`` padded tasks per ``vmap`` call."""
    detached = {name: p.detach() for name, p in params.items()}
    losses, accuracies = [], []
    for start in range(0, batch.num_tasks, chunk_size):
        chunk = batch.select(slice(start, start + chunk_size))
        fields = [getattr(chunk, name) for name in _PADDED_FIELDS]
        curve = vmap(lambda *task: _padded_curve(detached, *task, inner=inner), in_dims=0)
        with torch.no_grad():
            loss, accuracy = curve(*fields, chunk.n_way)
        losses.append(loss)
        accuracies.append(accuracy)
    return torch.cat(losses), torch.cat(accuracies)
