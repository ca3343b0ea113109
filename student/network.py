"""MAML's Omniglot conv net as pure functions of an explicit parameter dict.

The network is ``depth`` blocks of 3x3 conv (padding 1, no bias: batch norm
cancels it), batch norm with the batch's own statistics (no running
statistics, affine weight and bias), ReLU and 2x2 max-pool, then a linear head
with ``n_max`` logits. Parameters live in a plain ``dict[str, Tensor]``, so the
inner loop is ``params - inner_lr * grads`` and ``torch.func`` can transform
every function here.

Batch norm comes in two forms. :func:`batch_norm` is written from primitive
ops and takes an example mask, so that a padded task's fake examples stay out
of the statistics; it is the one to use under ``torch.func.vmap``, where the
batched second-order backward of ``F.batch_norm`` is wrong (functorch issue
#534: about 0.2% off in float64 with torch 2.14). Outside vmap,
``F.batch_norm`` (``fused_bn=True``) gives the same values.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from metacurriculum.student.config import StudentConfig, feature_size
from metacurriculum.student.hyperparams import INITS

Params = dict[str, Tensor]


def init_params(config: StudentConfig, generator: torch.Generator) -> Params:
    """Fresh parameters, drawn from ``generator`` only, by the rule ``config.init`` names.

    Batch-norm scales start at 1 and shifts at 0 under every rule. The weights:

    | ``init`` | conv and head weights | head bias |
    |---|---|---|
    | ``"torch"`` (default) | ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``: ``nn.Conv2d`` and ``nn.Linear``'s default (kaiming-uniform, ``a = sqrt(5)``) | ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, as ``nn.Linear`` |
    | ``"xavier"`` | Xavier-uniform, ``U(-b, b)``, ``b = sqrt(6 / (fan_in + fan_out))`` (MAML's TensorFlow convs) | 0 |
    | ``"kaiming"`` | He-normal for ReLU, ``N(0, 2 / fan_in)`` | 0 |

    With batch norm after every conv, a conv weight's scale does not change the
    forward pass but sets the effective size of an inner SGD step (larger weights,
    smaller relative steps); the head's scale sets that of the first logits.
    ``"torch"`` draws the smallest weights and learned fastest (see
    :class:`~metacurriculum.student.StudentConfig`).

    Args:
        config: The network's shape, dtype and ``init`` (the device is left to the caller).
        generator: The private generator to draw from; the global RNG is never used.

    Returns:
        Parameters on the generator's device, in insertion order: per block
        ``block{i}.conv.weight``, ``block{i}.bn.weight``, ``block{i}.bn.bias``, then
        ``head.weight`` and ``head.bias``.

    Raises:
        ValueError: If ``config.init`` is not one of :data:`INITS`.
    """
    if config.init not in INITS:
        raise ValueError(f"init={config.init!r} is unknown; use one of {INITS}.")
    dtype, device = config.torch_dtype, generator.device

    def uniform(shape: tuple[int, ...], bound: float) -> Tensor:
        return torch.empty(shape, dtype=dtype, device=device).uniform_(
            -bound, bound, generator=generator
        )

    def weight(shape: tuple[int, ...], fan_in: int, fan_out: int) -> Tensor:
        if config.init == "torch":
            return uniform(shape, 1.0 / math.sqrt(fan_in))
        if config.init == "xavier":
            return uniform(shape, math.sqrt(6.0 / (fan_in + fan_out)))
        std = math.sqrt(2.0 / fan_in)
        return torch.empty(shape, dtype=dtype, device=device).normal_(0.0, std, generator=generator)

    params: Params = {}
    channels = config.in_channels
    for i in range(config.depth):
        params[f"block{i}.conv.weight"] = weight(
            (config.hidden, channels, 3, 3), channels * 9, config.hidden * 9
        )
        params[f"block{i}.bn.weight"] = torch.ones(config.hidden, dtype=dtype, device=device)
        params[f"block{i}.bn.bias"] = torch.zeros(config.hidden, dtype=dtype, device=device)
        channels = config.hidden
    features = config.hidden * feature_size(config.image_size, config.depth) ** 2
    params["head.weight"] = weight((config.n_max, features), features, config.n_max)
    if config.init == "torch":
        params["head.bias"] = uniform((config.n_max,), 1.0 / math.sqrt(features))
    else:
        params["head.bias"] = torch.zeros(config.n_max, dtype=dtype, device=device)
    return params


def batch_norm(
    x: Tensor, weight: Tensor, bias: Tensor, eps: float, mask: Tensor | None = None
) -> Tensor:
    """Batch norm over ``(N, H, W)`` with the batch's statistics, from primitive ops.

    Safe under ``torch.func.vmap`` at any order of differentiation.

    Args:
        x: ``[N, C, H, W]`` activations.
        weight: ``[C]`` affine scale.
        bias: ``[C]`` affine shift.
        eps: Added to the biased variance.
        mask: Optional ``[N]`` bool, True for the examples that count in the
            statistics; the others are normalised too but do not shift them.

    Returns:
        The normalised activations, shaped like ``x``.
    """
    if mask is None:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        var = (x - mean).square().mean(dim=(0, 2, 3), keepdim=True)
    else:
        w = mask.to(x.dtype).view(-1, 1, 1, 1)
        count = w.sum() * (x.shape[2] * x.shape[3])
        mean = (x * w).sum(dim=(0, 2, 3), keepdim=True) / count
        var = ((x - mean).square() * w).sum(dim=(0, 2, 3), keepdim=True) / count
    scale = weight.view(1, -1, 1, 1) * torch.rsqrt(var + eps)
    return (x - mean) * scale + bias.view(1, -1, 1, 1)


def num_blocks(params: Params) -> int:
    """The number of conv blocks in a parameter dict."""
    return sum(name.endswith(".conv.weight") for name in params)


def forward(
    params: Params,
    x: Tensor,
    mask: Tensor | None = None,
    *,
    eps: float = 1e-5,
    fused_bn: bool = False,
) -> Tensor:
    """All ``n_max`` logits of the network for a batch of images.

    Args:
        params: The parameters (see :func:`init_params`).
        x: ``[N, C, H, W]`` images.
        mask: Optional ``[N]`` bool, True for real examples; padded ones are
            left out of the batch-norm statistics.
        eps: Batch-norm epsilon.
        fused_bn: Use ``F.batch_norm`` (faster on some devices). Not allowed with
            a mask, and wrong at second order under ``vmap``.

    Returns:
        ``[N, n_max]`` logits.
    """
    if fused_bn and mask is not None:
        raise ValueError("forward(fused_bn=True) cannot take a mask; use fused_bn=False.")
    h = x
    for i in range(num_blocks(params)):
        h = F.conv2d(h, params[f"block{i}.conv.weight"], padding=1)
        weight, bias = params[f"block{i}.bn.weight"], params[f"block{i}.bn.bias"]
        if fused_bn:
            h = F.batch_norm(h, None, None, weight, bias, training=True, eps=eps)
        else:
            h = batch_norm(h, weight, bias, eps, mask)
        h = F.max_pool2d(F.relu(h), 2)
    return F.linear(h.flatten(1), params["head.weight"], params["head.bias"])


def mask_logits(logits: Tensor, n_way: Tensor | int) -> Tensor:
    """Logits with the classes at and beyond ``n_way`` set to ``-inf``.

    Args:
        logits: ``[..., n_max]`` logits.
        n_way: The task's number of classes (an int or a 0-d tensor, so that it
            can be batched under ``vmap``).
    """
    classes = torch.arange(logits.shape[-1], device=logits.device)
    return logits.masked_fill(classes >= n_way, -math.inf)


def masked_cross_entropy(logits: Tensor, labels: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean cross entropy over the real examples, for logits masked with :func:`mask_logits`.

    Args:
        logits: ``[N, n_max]`` logits, ``-inf`` for the classes the task lacks.
        labels: ``[N]`` int64 labels.
        mask: Optional ``[N]`` bool, True for the examples that count.

    Returns:
        A 0-d tensor.
    """
    picked = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    losses = torch.logsumexp(logits, dim=-1) - picked
    if mask is None:
        return losses.mean()
    w = mask.to(losses.dtype)
    return (losses * w).sum() / w.sum()


def masked_accuracy(logits: Tensor, labels: Tensor, mask: Tensor | None = None) -> Tensor:
    """Fraction of the real examples whose largest logit is their label (a 0-d tensor)."""
    correct = (logits.argmax(dim=-1) == labels).to(logits.dtype)
    if mask is None:
        return correct.mean()
    w = mask.to(correct.dtype)
    return (correct * w).sum() / w.sum()
