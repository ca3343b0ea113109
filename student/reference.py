"""The plain MAML reference: an explicit per-task ``torch.autograd`` loop, nothing clever.

This is the ground truth the tests hold the student's batching paths to, and the
baseline the speed benchmark compares them with. It runs each task of a
meta-batch on its exact, unpadded shapes, with ``F.conv2d``, ``F.batch_norm``
and ``F.cross_entropy`` written out here (it shares no forward code with
:mod:`metacurriculum.student.network`), takes the inner steps with
``torch.autograd.grad(..., create_graph=not first_order)``, sums the tasks'
query losses, divides by the number of tasks and calls one backward at the end
(so every task's graph is alive at once).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from metacurriculum.student.batch import MetaBatch
from metacurriculum.student.config import StudentConfig
from metacurriculum.student.network import init_params


def reference_forward(params: dict[str, Tensor], x: Tensor, n_way: int, eps: float) -> Tensor:
    """The first ``n_way`` logits of MAML's conv net for an unpadded batch of images."""
    depth = sum(name.endswith(".conv.weight") for name in params)
    h = x
    for i in range(depth):
        h = F.conv2d(h, params[f"block{i}.conv.weight"], padding=1)
        h = F.batch_norm(
            h,
            None,
            None,
            params[f"block{i}.bn.weight"],
            params[f"block{i}.bn.bias"],
            training=True,
            eps=eps,
        )
        h = F.max_pool2d(F.relu(h), 2)
    logits = F.linear(h.flatten(1), params["head.weight"], params["head.bias"])
    return logits[:, :n_way]


def reference_adapt(
    params: dict[str, Tensor],
    support_x: Tensor,
    support_y: Tensor,
    n_way: int,
    *,
    inner_lr: float,
    inner_steps: int,
    first_order: bool,
    eps: float,
) -> dict[str, Tensor]:
    """Parameters after ``inner_steps`` SGD steps on one task's support set."""
    adapted = dict(params)
    for _ in range(inner_steps):
        loss = F.cross_entropy(reference_forward(adapted, support_x, n_way, eps), support_y)
        grads = torch.autograd.grad(loss, list(adapted.values()), create_graph=not first_order)
        adapted = {
            name: value - inner_lr * grad
            for (name, value), grad in zip(adapted.items(), grads, strict=True)
        }
    return adapted


def reference_meta_loss(
    params: dict[str, Tensor],
    batch: MetaBatch,
    *,
    inner_lr: float,
    inner_steps: int,
    first_order: bool,
    eps: float,
) -> Tensor:
    """The MAML meta-loss: the mean over tasks of the adapted parameters' query loss.

    Args:
        params: Parameters that require grad (leaves, or any differentiable values).
        batch: The meta-batch; each task is cut out of its padding.
        inner_lr: Inner-loop step size.
        inner_steps: Inner-loop SGD steps.
        first_order: Treat the inner gradients as constants (first-order MAML).
        eps: Batch-norm epsilon.

    Returns:
        A 0-d tensor whose graph reaches back to ``params``.
    """
    total = None
    for i in range(batch.num_tasks):
        support_x, support_y, query_x, query_y, n_way = batch.task(i)
        adapted = reference_adapt(
            params,
            support_x,
            support_y,
            n_way,
            inner_lr=inner_lr,
            inner_steps=inner_steps,
            first_order=first_order,
            eps=eps,
        )
        loss = F.cross_entropy(reference_forward(adapted, query_x, n_way, eps), query_y)
        total = loss if total is None else total + loss
    return total / batch.num_tasks


def reference_meta_gradient(
    params: dict[str, Tensor], batch: MetaBatch, config: StudentConfig
) -> dict[str, Tensor]:
    """The gradient of :func:`reference_meta_loss` with respect to ``params``.

    Args:
        params: The parameters to differentiate at (they need not require grad).
        batch: The meta-batch, already on the parameters' device and dtype.
        config: A ``maml`` or ``fomaml`` student's config: its learner settings supply
            ``inner_lr``, ``inner_steps`` and ``first_order``, and it supplies ``bn_eps``.
    """
    leaves = {name: value.detach().requires_grad_() for name, value in params.items()}
    settings = config.settings
    loss = reference_meta_loss(
        leaves,
        batch,
        inner_lr=settings.inner_lr,
        inner_steps=settings.inner_steps,
        first_order=settings.first_order,
        eps=config.bn_eps,
    )
    grads = torch.autograd.grad(loss, list(leaves.values()))
    return dict(zip(leaves, grads, strict=True))


class ReferenceMAML:
    """The plain reference as a trainable student: Adam on :func:`reference_meta_loss`.

    Used by the speed benchmark as the baseline; it ignores ``config.batching``.

    Args:
        config: The student configuration (``config.device`` and ``dtype`` are honoured).
        seed: Seed of the private generator that initialises the parameters.
    """

    def __init__(self, config: StudentConfig, seed: int = 0) -> None:
        self.config = config
        generator = torch.Generator().manual_seed(seed)
        self.params = {
            name: value.to(config.torch_device).requires_grad_()
            for name, value in init_params(config, generator).items()
        }
        self.optimizer = torch.optim.Adam(self.params.values(), lr=config.meta_lr)

    def meta_step(self, batch: MetaBatch) -> dict[str, float]:
        """One meta-training step; returns ``{"student/query_loss": ...}``."""
        batch = batch.to(self.config.torch_device, self.config.torch_dtype)
        self.optimizer.zero_grad(set_to_none=True)
        settings = self.config.settings
        loss = reference_meta_loss(
            self.params,
            batch,
            inner_lr=settings.inner_lr,
            inner_steps=settings.inner_steps,
            first_order=settings.first_order,
            eps=self.config.bn_eps,
        )
        loss.backward()
        self.optimizer.step()
        return {"student/query_loss": float(loss.detach())}
