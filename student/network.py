"""MAML's Omniglot conv net as pure functions of explicit parameters, for T networks at once.

The network is ``depth`` blocks of 3x3 conv (padding 1, no bias: batch norm
cancels it), batch norm with the batch's own statistics (no running
statistics, affine weight and bias), ReLU and 2x2 max-pool, then a linear head
with ``n_max`` logits. Parameters live in a plain ``dict[str, Tensor]``, so an
inner step is ``params - inner_lr * grads`` and ``torch.func`` can transform
every function here.

One forward serves every way the student runs: :func:`features` and :func:`head`
take the parameters of ``T`` networks stacked on a leading axis and their images
``[T, N, C, H, W]`` (a task per network, or a task's copy of its student's
network). The per-task loop calls them with ``T = 1`` on a task's exact images,
the grouped path with all tasks of a meta-batch, ``vmap`` with ``T = 1`` per task.
Padded examples are left out of batch-norm statistics and losses by masks, and the
classes beyond a task's ``n`` by ``-inf`` logits, so a padded task sees exactly
what it would alone.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from metacurriculum.student.batchnorm import batch_norm_max_pool, rows_batch_norm
from metacurriculum.student.config import StudentConfig, feature_size
from metacurriculum.student.settings import INITS

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
    width = config.hidden * feature_size(config.image_size, config.depth) ** 2
    params["head.weight"] = weight((config.n_max, width), width, config.n_max)
    if config.init == "torch":
        params["head.bias"] = uniform((config.n_max,), 1.0 / math.sqrt(width))
    else:
        params["head.bias"] = torch.zeros(config.n_max, dtype=dtype, device=device)
    return params


def num_blocks(params: Params) -> int:
    """The number of conv blocks in a parameter dict (``block0.conv.weight``, ...)."""
    blocks = 0
    while f"block{blocks}.conv.weight" in params:
        blocks += 1
    return blocks


def batch_norm(
    h: Tensor,
    weight: Tensor,
    bias: Tensor,
    eps: float,
    mask: Tensor | None,
    fused: bool,
) -> Tensor:
    """Batch norm of ``T`` networks' activations, each with its own tasks' statistics.

    Args:
        h: ``[N, T*C, H, W]`` activations: the ``T`` networks' channels side by side.
        weight: ``[T, C]`` affine scales.
        bias: ``[T, C]`` affine shifts.
        eps: Added to the biased variance.
        mask: ``[T, N]`` bool, True for the examples that count in network ``t``'s
            statistics (padded ones are normalised too but do not shift them), or
            ``None`` when every example counts.
        fused: Use ``F.batch_norm`` when there is no mask. It is the fastest when its
            result is differentiated once; but where it is differentiated twice (the
            inner steps of second-order MAML) its double backward is slow on
            channels-last tensors (its reductions over ``N, H, W``), and under
            ``torch.func.vmap`` it is wrong (functorch issue #534: about 0.2% off in
            float64 with torch 2.14). ``False`` computes it, on a channels-last ``h``,
            as :func:`~metacurriculum.student.batchnorm.rows_batch_norm` of the
            ``[N*H*W, T*C]`` matrix it is (column reductions, and first and second
            derivatives written by hand in a few fused passes); otherwise from
            primitive ops.

    Returns:
        The normalised activations, shaped (and laid out) like ``h``.
    """
    if mask is None and fused:
        return F.batch_norm(
            h, None, None, weight.reshape(-1), bias.reshape(-1), training=True, eps=eps
        )
    if mask is None and h.is_contiguous(memory_format=torch.channels_last):
        n, channels, height, width = h.shape
        rows = h.permute(0, 2, 3, 1).reshape(-1, channels)  # a view: NHWC is rows x channels
        out = rows_batch_norm(rows, weight.reshape(-1), bias.reshape(-1), eps)
        return out.view(n, height, width, channels).permute(0, 3, 1, 2)
    tasks, channels = weight.shape
    x = h.view(h.shape[0], tasks, channels, *h.shape[2:])
    if mask is None:
        mean = x.mean(dim=(0, 3, 4), keepdim=True)
        var = (x - mean).square().mean(dim=(0, 3, 4), keepdim=True)
    else:
        w = mask.t().to(h.dtype)[:, :, None, None, None]
        count = (w.sum(dim=0) * (h.shape[2] * h.shape[3]))[None]
        mean = (x * w).sum(dim=(0, 3, 4), keepdim=True) / count
        var = ((x - mean).square() * w).sum(dim=(0, 3, 4), keepdim=True) / count
    scale = weight[None, :, :, None, None] * torch.rsqrt(var + eps)
    return ((x - mean) * scale + bias[None, :, :, None, None]).reshape(h.shape)


def features(
    params: Params,
    x: Tensor,
    mask: Tensor | None = None,
    *,
    eps: float = 1e-5,
    fused: bool = True,
    channels_last: bool = False,
) -> Tensor:
    """The conv body's output of ``T`` networks, each on its own images.

    The networks' parameters are stacked on a leading ``T`` axis; their images are laid
    side by side on the channel axis, so each layer of all ``T`` networks is one op (a
    conv with ``groups=T``, a batch norm over ``T*C`` channels whose statistics are each
    network's own). Networks never mix, so the gradient of the sum of their losses is
    each one's own gradient. With ``T = 1`` these are the plain ops of one network.

    Args:
        params: ``[T, ...]`` parameters (see :func:`init_params`; the head is not used).
        x: ``[T, N, C, H, W]`` images, ``N`` per network.
        mask: Optional ``[T, N]`` bool, True for real examples; padded ones are left out
            of the batch-norm statistics.
        eps: Batch-norm epsilon.
        fused: ``F.batch_norm`` where there is no mask (see :func:`batch_norm`).
        channels_last: Lay the activations out channels-last (NHWC): on the CPU,
            oneDNN's convolutions and max-pooling run several times faster on it.
            The values are the same up to rounding.

    Returns:
        ``[T, N, F]`` features (in the channels-first order of ``C, H, W``).
    """
    tasks, examples = x.shape[:2]
    h = x.transpose(0, 1).reshape(examples, -1, *x.shape[3:])
    layout = torch.channels_last if channels_last else torch.contiguous_format
    h = h.contiguous(memory_format=layout)
    for i in range(num_blocks(params)):
        weight = params[f"block{i}.conv.weight"]
        if channels_last and weight.shape[2] == 1 and tasks == 1:
            h = _one_channel_conv(h, weight[0])
        else:
            weight = weight.flatten(0, 1).contiguous(memory_format=layout)
            h = F.conv2d(h, weight, padding=1, groups=tasks)
        scale, shift = params[f"block{i}.bn.weight"], params[f"block{i}.bn.bias"]
        # max-pool, then ReLU: the same values (ReLU is monotone, so it commutes with the
        # max) and the same gradients, for a quarter of ReLU's work. On the CPU, batch norm
        # and max-pool as one node where it is differentiated once (less kept, no page
        # faults; measured there only).
        if fused and mask is None and channels_last and h.device.type == "cpu":
            h = batch_norm_max_pool(h, scale.reshape(-1), shift.reshape(-1), eps)
        else:
            h = F.max_pool2d(batch_norm(h, scale, shift, eps, mask, fused), 2)
        h = F.relu(h)
    return h.reshape(examples, tasks, -1).transpose(0, 1)


def _one_channel_conv(h: Tensor, weight: Tensor) -> Tensor:
    """A 3x3 convolution (padding 1) of one-channel images, as a matrix product of their
    3x3 patches: ``[N, 1, H, W]`` and weights ``[C, 1, 3, 3]`` to ``[N, C, H, W]`` laid out
    channels-last. Conv cannot tell a one-channel input's layout (it answers channels-first,
    and a conversion after costs more than the conv), and oneDNN's one-channel conv is slow
    on the CPU: measured 4x (forward) and 2x (with its backward) at 300 images, 64 filters."""
    n, _, height, width = h.shape
    patches = F.unfold(h, 3, padding=1).transpose(1, 2)  # [N, H*W, 9]
    out = patches @ weight.reshape(weight.shape[0], 9).t()  # [N, H*W, C]: NHWC
    return out.view(n, height, width, -1).permute(0, 3, 1, 2)


def head(params: Params, features: Tensor) -> Tensor:
    """All ``n_max`` logits of ``T`` networks' linear heads: ``[T, N, F] -> [T, N, n_max]``."""
    weight, bias = params["head.weight"], params["head.bias"]
    if features.shape[0] == 1:  # one network: the plain linear op
        return F.linear(features[0], weight[0], bias[0]).unsqueeze(0)
    return torch.baddbmm(bias[:, None, :], features, weight.transpose(1, 2))


def class_mask(logits: Tensor, n_way: Tensor) -> Tensor:
    """``[T, N, n_max]`` logits with the classes at and beyond each task's ``n`` set to ``-inf``."""
    classes = torch.arange(logits.shape[-1], device=logits.device)
    return logits.masked_fill(classes >= n_way[:, None, None], -math.inf)


def task_losses(
    logits: Tensor, labels: Tensor, mask: Tensor | None, n_way: Tensor, n: int | None
) -> Tensor:
    """Each task's mean cross entropy over its real examples.

    Args:
        logits: ``[T, N, classes]`` logits.
        labels: ``[T, N]`` int64 labels in ``0..n-1``.
        mask: ``[T, N]`` bool (True for real examples), or ``None`` when all are real.
        n_way: ``[T]`` the tasks' numbers of classes.
        n: Their common number of classes when they share one (the logits are cut to
            it), else ``None`` (the classes beyond each task's ``n`` are masked).

    Returns:
        ``[T]`` losses.
    """
    logits = logits[..., :n] if n is not None else class_mask(logits, n_way)
    losses = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none")
    return _mean(losses.view(labels.shape), mask)


def task_accuracy(
    logits: Tensor, labels: Tensor, mask: Tensor | None, n_way: Tensor, n: int | None
) -> Tensor:
    """Each task's accuracy over its real examples (``[T]``; arguments as :func:`task_losses`)."""
    logits = logits.detach()
    logits = logits[..., :n] if n is not None else class_mask(logits, n_way)
    return _mean((logits.argmax(dim=-1) == labels).to(logits.dtype), mask)


def _mean(values: Tensor, mask: Tensor | None) -> Tensor:
    if mask is None:
        return values.mean(dim=1)
    w = mask.to(values.dtype)
    return (values * w).sum(dim=1) / w.sum(dim=1)
