"""Plain per-task references for every learner, written here independently of the library.

Each works on one task at a time, on its exact (unpadded) images, with ``F.conv2d``,
``F.batch_norm``, ``F.linear`` and ``F.cross_entropy`` and ``torch.autograd``; nothing
is shared with :mod:`metacurriculum.student` but the parameter names. The library's
learners, on every back-end, are held to these in float64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from metacurriculum.student import MetaBatch

Params = dict[str, Tensor]
EPS = 1e-5


def body(params: Params, x: Tensor) -> Tensor:
    """The conv body's flattened features of ``[N, C, H, W]`` images."""
    h, i = x, 0
    while f"block{i}.conv.weight" in params:
        h = F.conv2d(h, params[f"block{i}.conv.weight"], padding=1)
        weight, bias = params[f"block{i}.bn.weight"], params[f"block{i}.bn.bias"]
        h = F.batch_norm(h, None, None, weight, bias, training=True, eps=EPS)
        h = F.max_pool2d(F.relu(h), 2)
        i += 1
    return h.flatten(1)


def head(params: Params, features: Tensor, n: int) -> Tensor:
    """The task's ``n`` logits."""
    return F.linear(features, params["head.weight"], params["head.bias"])[:, :n]


def sgd(params: Params, loss: Tensor, lr: Tensor | float, create_graph: bool) -> Params:
    """One SGD step of ``params`` on ``loss`` (``lr`` a number or a rate per parameter)."""
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph)
    rates = lr if isinstance(lr, dict) else dict.fromkeys(params, lr)
    return {name: p - rates[name] * g for (name, p), g in zip(params.items(), grads, strict=True)}


def maml_loss(params: Params, task: tuple, lr: float, steps: int, first_order: bool) -> Tensor:
    support_x, support_y, query_x, query_y, n = task
    fast = dict(params)
    for _ in range(steps):
        loss = F.cross_entropy(head(fast, body(fast, support_x), n), support_y)
        fast = sgd(fast, loss, lr, create_graph=not first_order)
    return F.cross_entropy(head(fast, body(fast, query_x), n), query_y)


def anil_loss(params: Params, task: tuple, lr: float, steps: int, first_order: bool) -> Tensor:
    support_x, support_y, query_x, query_y, n = task
    fast = {name: params[name] for name in ("head.weight", "head.bias")}
    for _ in range(steps):
        loss = F.cross_entropy(head(fast, body(params, support_x), n), support_y)
        fast = sgd(fast, loss, lr, create_graph=not first_order)
    return F.cross_entropy(head(fast, body(params, query_x), n), query_y)


def metasgd_loss(params: Params, task: tuple, steps: int, first_order: bool) -> Tensor:
    support_x, support_y, query_x, query_y, n = task
    weights = {name: p for name, p in params.items() if not name.startswith("lr/")}
    rates = {name: params[f"lr/{name}"] for name in weights}
    fast = dict(weights)
    for _ in range(steps):
        loss = F.cross_entropy(head(fast, body(fast, support_x), n), support_y)
        fast = sgd(fast, loss, rates, create_graph=not first_order)
    return F.cross_entropy(head(fast, body(fast, query_x), n), query_y)


def protonet_loss(params: Params, task: tuple) -> Tensor:
    support_x, support_y, query_x, query_y, n = task
    embedded = body(params, torch.cat([support_x, query_x]))
    support, query = embedded[: len(support_x)], embedded[len(support_x) :]
    prototypes = torch.stack([support[support_y == k].mean(dim=0) for k in range(n)])
    distances = torch.stack(
        [((q - prototypes) ** 2).sum(dim=1) for q in query]  # [queries, n], by hand
    )
    return F.cross_entropy(-distances, query_y)


def reptile_direction(params: Params, task: tuple, lr: float, steps: int) -> Params:
    """``θ - φ``: the initialisation minus the weights after ``steps`` SGD steps on all of
    the task's examples (support and query), no gradient through the steps."""
    support_x, support_y, query_x, query_y, n = task
    x, y = torch.cat([support_x, query_x]), torch.cat([support_y, query_y])
    fast = {name: p.detach().requires_grad_() for name, p in params.items()}
    for _ in range(steps):
        loss = F.cross_entropy(head(fast, body(fast, x), n), y)
        fast = {k: v.detach().requires_grad_() for k, v in sgd(fast, loss, lr, False).items()}
    return {name: params[name].detach() - fast[name].detach() for name in params}


def meta_gradient(learner: str, params: Params, batch: MetaBatch, **settings) -> Params:
    """The reference outer gradient of ``learner`` on ``batch``: the mean over tasks."""
    tasks = [batch.task(i) for i in range(batch.num_tasks)]
    if learner == "reptile":
        directions = [reptile_direction(params, t, settings["inner_lr"], settings["inner_steps"])
                      for t in tasks]  # fmt: skip
        return {name: sum(d[name] for d in directions) / len(tasks) for name in params}
    leaves = {name: p.detach().requires_grad_() for name, p in params.items()}
    if learner in ("maml", "fomaml"):
        first_order = settings.get("first_order", learner == "fomaml")
        losses = [
            maml_loss(leaves, t, settings["inner_lr"], settings["inner_steps"], first_order)
            for t in tasks
        ]
    elif learner == "anil":
        losses = [
            anil_loss(leaves, t, settings["inner_lr"], settings["inner_steps"],
                      settings["first_order"])
            for t in tasks
        ]  # fmt: skip
    elif learner == "metasgd":
        losses = [
            metasgd_loss(leaves, t, settings["inner_steps"], settings["first_order"]) for t in tasks
        ]
    elif learner == "protonet":
        losses = [protonet_loss(leaves, t) for t in tasks]
    else:
        raise ValueError(f"no reference for {learner!r}")
    total = sum(losses) / len(tasks)
    return dict(zip(leaves, torch.autograd.grad(total, list(leaves.values())), strict=True))
