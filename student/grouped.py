"""A third way to run a meta-batch: every task at once, folded into grouped convolutions.

The tasks' parameters are stacked on a leading ``T`` dimension and the tasks'
images laid side by side on the channel dimension, so each layer of all ``T``
networks is one ordinary op: a conv with ``groups=T``, a batch norm over
``T * C`` channels (whose per-channel statistics are exactly each task's own),
a batched matmul for the head. Tasks never mix, so the gradient of the *sum*
of the tasks' losses with respect to the stacked parameters is every task's
own gradient, and plain ``torch.autograd`` runs the inner loop for all tasks
at once, with no ``torch.func`` transform and the op count of a single task.

Padded examples are left out of the batch-norm statistics by the masked
primitive batch norm (``F.batch_norm`` where the batch has no padding) and out
of the losses by masked means; logits beyond a task's ``n`` are ``-inf``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from metacurriculum.student.adaptation import InnerLoop, TaskStats
from metacurriculum.student.batch import MetaBatch
from metacurriculum.student.network import Params, num_blocks


def _batch_norm(h: Tensor, weight: Tensor, bias: Tensor, eps: float, mask: Tensor | None) -> Tensor:
    """Per-task batch norm of ``[N, T*C, H, W]`` activations; ``mask`` is ``[T, N]`` or None."""
    tasks, channels = weight.shape
    if mask is None:
        return F.batch_norm(
            h, None, None, weight.reshape(-1), bias.reshape(-1), training=True, eps=eps
        )
    x = h.view(h.shape[0], tasks, channels, *h.shape[2:])
    w = mask.t().to(h.dtype)[:, :, None, None, None]
    count = (w.sum(dim=0) * (h.shape[2] * h.shape[3]))[None]
    mean = (x * w).sum(dim=(0, 3, 4), keepdim=True) / count
    var = ((x - mean).square() * w).sum(dim=(0, 3, 4), keepdim=True) / count
    scale = weight[None, :, :, None, None] * torch.rsqrt(var + eps)
    return ((x - mean) * scale + bias[None, :, :, None, None]).view_as(h)


def grouped_forward(
    params: Params, x: Tensor, mask: Tensor | None, n_way: Tensor, eps: float
) -> Tensor:
    """Masked logits ``[T, N, n_max]`` of ``T`` networks (stacked params) on ``[T, N, C, H, W]``."""
    tasks, examples = x.shape[:2]
    h = x.transpose(0, 1).reshape(examples, -1, *x.shape[3:])
    for i in range(num_blocks(params)):
        weight = params[f"block{i}.conv.weight"]
        h = F.conv2d(h, weight.flatten(0, 1), padding=1, groups=tasks)
        h = _batch_norm(h, params[f"block{i}.bn.weight"], params[f"block{i}.bn.bias"], eps, mask)
        h = F.max_pool2d(F.relu(h), 2)
    features = h.view(examples, tasks, -1).transpose(0, 1)
    logits = torch.baddbmm(
        params["head.bias"][:, None, :], features, params["head.weight"].transpose(1, 2)
    )
    classes = torch.arange(logits.shape[-1], device=logits.device)
    return logits.masked_fill(classes >= n_way[:, None, None], -math.inf)


def _task_losses(logits: Tensor, labels: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Per-task masked mean cross entropy and accuracy, each ``[T]``."""
    picked = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    losses = torch.logsumexp(logits, dim=-1) - picked
    w = mask.to(losses.dtype)
    count = w.sum(dim=1)
    correct = (logits.detach().argmax(dim=-1) == labels).to(losses.dtype)
    return (losses * w).sum(dim=1) / count, (correct * w).sum(dim=1) / count


def grouped_query_losses(
    task_params: Params, batch: MetaBatch, inner: InnerLoop
) -> tuple[Tensor, TaskStats]:
    """Adapt every task from its own starting parameters; its query loss, with the graph.

    Args:
        task_params: ``[T, ...]`` starting parameters of each task, differentiable
            functions of whatever the meta-gradient is taken with respect to.
        batch: The ``T`` tasks.
        inner: The inner loop.

    Returns:
        The ``[T]`` post-adaptation query losses (differentiable), and per-task
        ``query_loss``, ``support_loss`` (before adaptation) and ``query_acc``.
    """
    uniform = batch.is_uniform
    support_mask = None if uniform else batch.support_mask
    query_mask = None if uniform else batch.query_mask
    adapted = task_params
    support_loss = None
    for _ in range(inner.steps):
        logits = grouped_forward(adapted, batch.support_x, support_mask, batch.n_way, inner.eps)
        losses, _ = _task_losses(logits, batch.support_y, batch.support_mask)
        support_loss = losses.detach() if support_loss is None else support_loss
        # Tasks are independent, so the gradient of the sum is each task's own gradient.
        grads = torch.autograd.grad(
            losses.sum(), list(adapted.values()), create_graph=not inner.first_order
        )
        adapted = {
            name: p - inner.lr * g for (name, p), g in zip(adapted.items(), grads, strict=True)
        }
    if support_loss is None:
        with torch.no_grad():
            logits = grouped_forward(adapted, batch.support_x, support_mask, batch.n_way, inner.eps)
            support_loss = _task_losses(logits, batch.support_y, batch.support_mask)[0]
    logits = grouped_forward(adapted, batch.query_x, query_mask, batch.n_way, inner.eps)
    query_loss, accuracy = _task_losses(logits, batch.query_y, batch.query_mask)
    stats = {"query_loss": query_loss.detach(), "support_loss": support_loss, "query_acc": accuracy}
    return query_loss, stats


def grouped_meta_gradient(
    params: Params, batch: MetaBatch, inner: InnerLoop
) -> tuple[dict[str, Tensor], TaskStats]:
    """Meta-gradient of the mean post-adaptation query loss, all tasks in grouped ops.

    Same contract as :func:`~metacurriculum.student.adaptation.loop_meta_gradient`.
    """
    tasks = batch.num_tasks
    adapted = {name: p.unsqueeze(0).expand(tasks, *p.shape) for name, p in params.items()}
    query_loss, stats = grouped_query_losses(adapted, batch, inner)
    grads = torch.autograd.grad(query_loss.mean(), list(params.values()))
    return dict(zip(params, grads, strict=True)), stats


def grouped_curves(
    params: Params,
    batch: MetaBatch,
    inner: InnerLoop,
    chunk_size: int,
    owner: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Per-task query loss and accuracy before adaptation and after each inner step.

    Like :func:`~metacurriculum.student.adaptation.loop_curves`, ``chunk_size``
    tasks per grouped call, with no meta-gradient.

    Args:
        params: One network's parameters, or with ``owner`` several networks'
            stacked on a leading axis (a population's).
        batch: The tasks.
        inner: The inner loop.
        chunk_size: Tasks per grouped call.
        owner: ``[T]`` int64, the network each task starts from; ``None`` starts
            every task from ``params``.

    Returns:
        Two ``[T, steps + 1]`` tensors: loss and accuracy.
    """
    losses, accuracies = [], []
    for start in range(0, batch.num_tasks, chunk_size):
        chunk = batch.select(slice(start, start + chunk_size))
        support_mask = None if chunk.is_uniform else chunk.support_mask
        query_mask = None if chunk.is_uniform else chunk.query_mask
        if owner is None:
            adapted = {
                name: p.detach().unsqueeze(0).repeat(chunk.num_tasks, *[1] * p.dim())
                for name, p in params.items()
            }
        else:
            rows = owner[start : start + chunk_size]
            adapted = {name: p.detach().index_select(0, rows) for name, p in params.items()}
        curve_loss, curve_acc = [], []
        for step in range(inner.steps + 1):
            with torch.no_grad():
                logits = grouped_forward(adapted, chunk.query_x, query_mask, chunk.n_way, inner.eps)
                loss, accuracy = _task_losses(logits, chunk.query_y, chunk.query_mask)
            curve_loss.append(loss)
            curve_acc.append(accuracy)
            if step == inner.steps:
                break
            leaves = {name: p.requires_grad_() for name, p in adapted.items()}
            with torch.enable_grad():
                logits = grouped_forward(
                    leaves, chunk.support_x, support_mask, chunk.n_way, inner.eps
                )
                loss = _task_losses(logits, chunk.support_y, chunk.support_mask)[0].sum()
                grads = torch.autograd.grad(loss, list(leaves.values()))
            adapted = {
                name: (p - inner.lr * g).detach()
                for (name, p), g in zip(leaves.items(), grads, strict=True)
            }
        losses.append(torch.stack(curve_loss, dim=1))
        accuracies.append(torch.stack(curve_acc, dim=1))
    return torch.cat(losses), torch.cat(accuracies)
