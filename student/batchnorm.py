"""Batch norm over the rows of a matrix, with hand-written first and second derivatives.

Second-order MAML differentiates each inner step's batch norm twice: the inner gradient
is built with ``create_graph=True``, and the outer backward differentiates it again. From
primitive ops (mean, subtract, square, mean, rsqrt, multiply, add), autograd records a
dozen full-size operations for the first derivative and differentiates each of them
again, materialising zeros and copies along the way: measured (``profile_student --top``)
as most of the second order's elementwise third. :func:`rows_batch_norm` computes the
same forward, and its derivatives from the closed forms below, in a few fused passes.

Per channel, over the ``M`` rows: ``mu = mean(x)``, ``r = (mean((x - mu)^2) + eps)^-1/2``,
``xh = (x - mu) r``, ``y = w xh + b``. With the upstream gradient ``g`` and the
projection ``P v = v - mean(v) - xh mean(v xh)`` (symmetric, ``P xh = 0``):

* first derivative: ``db = sum(g)``, ``dw = sum(g xh)``, ``dx = w r P g``;
* second derivative, with upstream ``a, beta, gamma`` for ``dx, dw, db``:
  ``d/dg = gamma + beta xh + w r P a``, ``d/dw = r sum(a P g)`` and
  ``d/dx = (r beta - w r^2 mean(a xh)) P g - (w r^2 / M) (sum(a P g) xh + dw P a)``.

The tests hold both derivatives to autograd's of the primitive form in float64
(``gradcheck`` and ``gradgradcheck`` too).

Where batch norm is differentiated only once (the query pass, first-order learners,
evaluation), :func:`batch_norm_max_pool` runs torch's own kernels for batch norm and
the max-pool after it as one autograd node, keeping less for the backward and writing
its large temporaries into reused buffers (:class:`_Workspace`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


def rows_batch_norm(rows: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
    """Batch norm of the columns of ``rows`` (``[M, C]``) with the batch's own statistics.

    Args:
        rows: ``[M, C]`` activations, a channel per column (a channels-last ``[N, C, H, W]``
            tensor is such a matrix, ``M = N*H*W``, without a copy).
        weight: ``[C]`` affine scales.
        bias: ``[C]`` affine shifts.
        eps: Added to the biased variance.

    Returns:
        ``[M, C]``: ``(rows - mean) * rsqrt(var + eps) * weight + bias`` (the primitive
        form's values up to rounding), differentiable twice by the module's closed forms.
    """
    return _BatchNorm.apply(rows, weight, bias, eps)


class _BatchNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, rows: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
        xhat = rows - rows.mean(dim=0)
        rstd = torch.rsqrt(xhat.square().mean(dim=0) + eps)
        xhat.mul_(rstd)
        ctx.save_for_backward(rows, weight, xhat, rstd)
        return torch.addcmul(bias, xhat, weight)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        rows, weight, xhat, rstd = ctx.saved_tensors
        dx, dw, db = _BatchNormBackward.apply(g, rows, weight, xhat, rstd)
        return dx, dw, db, None


class _BatchNormBackward(torch.autograd.Function):
    """``(g, x, w) -> (dx, dw, db)``; ``xhat`` and ``rstd`` are ``x``'s, carried as constants
    (their dependence on ``x`` is in the closed form of the backward)."""

    @staticmethod
    def forward(
        ctx: Any, g: Tensor, rows: Tensor, weight: Tensor, xhat: Tensor, rstd: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        del rows  # only the graph's handle on x: the backward returns its gradient
        m = g.shape[0]
        db = g.sum(dim=0)
        dw = torch.linalg.vecdot(g, xhat, dim=0)
        k = weight * rstd
        # dx = k P g = k g - (k dw / m) xhat - k db / m, in two passes
        dx = torch.addcmul(-k * db / m, xhat, -k * dw / m).addcmul_(g, k)
        ctx.save_for_backward(g, weight, xhat, rstd, dw, db)
        return dx, dw, db

    @staticmethod
    def backward(ctx: Any, a: Tensor, beta: Tensor, gamma: Tensor) -> tuple[Tensor | None, ...]:
        g, weight, xhat, rstd, dw, db = ctx.saved_tensors
        m = g.shape[0]
        # The module's closed forms with P g and P a expanded into g, a and xhat, so that
        # no projection is materialised: three column reductions, then two fused passes
        # per output.
        a_sum = a.sum(dim=0)
        a_xhat = torch.linalg.vecdot(a, xhat, dim=0)
        a_pg = torch.linalg.vecdot(a, g, dim=0) - (a_sum * db + a_xhat * dw) / m  # sum(a P g)
        k = weight * rstd
        k2 = k * rstd
        grad_g = torch.addcmul(gamma - k * a_sum / m, xhat, beta - k * a_xhat / m)
        grad_g.addcmul_(a, k)
        # d/dx = c_g P g + c_x xhat + c_a P a
        c_g = rstd * beta - k2 * a_xhat / m
        c_x = -k2 * a_pg / m
        c_a = -k2 * dw / m
        x_coef = c_x - c_g * dw / m - c_a * a_xhat / m
        constant = -(c_g * db + c_a * a_sum) / m
        grad_x = torch.addcmul(constant, xhat, x_coef).addcmul_(g, c_g).addcmul_(a, c_a)
        grad_w = rstd * a_pg
        return grad_g, grad_x, grad_w, None, None


def batch_norm_max_pool(h: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
    """Batch norm (the batch's own statistics) then 2x2 max-pooling, keeping less for backward.

    The same kernels as ``F.max_pool2d(F.batch_norm(h, ...), 2)`` and the same numbers,
    but the full-size normalised tensor is not kept for the backward pass: pooling's
    backward needs only its indices (and the input's shape, which ``h`` has), batch
    norm's the input ``h`` and its statistics. At 300 images of 64 channels at 28x28
    that is 60 MB less per task while its graph is alive. Differentiable once (the
    paths that differentiate batch norm twice use :func:`rows_batch_norm`).

    Args:
        h: ``[N, C, H, W]`` activations.
        weight: ``[C]`` affine scales.
        bias: ``[C]`` affine shifts.
        eps: Added to the biased variance.

    Returns:
        ``[N, C, H // 2, W // 2]``.
    """
    return _BatchNormMaxPool.apply(h, weight, bias, eps)


class _BatchNormMaxPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, h: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
        with _WORKSPACE.like(h) as normed:
            normed, mean, invstd = torch.ops.aten.native_batch_norm.out(
                h,
                weight,
                bias,
                None,
                None,
                True,
                0.0,
                eps,
                out=normed,
                save_mean=h.new_empty(0),
                save_invstd=h.new_empty(0),
            )
            pooled, indices = torch.ops.aten.max_pool2d_with_indices(normed, [2, 2], [2, 2])
        ctx.eps = eps
        ctx.save_for_backward(h, weight, mean, invstd, indices)
        return pooled

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        h, weight, mean, invstd, indices = ctx.saved_tensors
        # pooling's backward reads only the input's shape and layout: h has the normalised
        # tensor's
        with _WORKSPACE.like(h) as grad_normed:
            torch.ops.aten.max_pool2d_with_indices_backward.grad_input(
                grad, h, [2, 2], [2, 2], [0, 0], [1, 1], False, indices, grad_input=grad_normed
            )
            dh, dw, db = torch.ops.aten.native_batch_norm_backward(
                grad_normed,
                h,
                weight,
                None,
                None,
                mean,
                invstd,
                True,
                ctx.eps,
                list(ctx.needs_input_grad[:3]),
            )
        return dh, dw, db, None


class _Workspace:
    """Flat CPU buffers lent to one op at a time for a large temporary, and taken back.

    A fresh tensor of tens of MB costs more in page faults than the op that fills it:
    glibc serves allocations over 32 MB by ``mmap`` and returns them on free, so each
    is faulted in anew (measured on this 2-core machine: a 60 MB batch norm takes 49 ms
    into a fresh tensor, 14 ms into a reused one). A temporary that never leaves its op
    (the normalised tensor before pooling, the gradient between pooling's and batch
    norm's backward) is written into a lent buffer instead. Buffers are kept for reuse:
    at most as many as ever were lent at once (one per task thread), each as large as
    the largest temporary asked for. Thread-safe; other devices get fresh tensors.
    """

    #: Temporaries smaller than this are allocated as usual (the heap serves them warm).
    MIN_BYTES = 1 << 20

    def __init__(self) -> None:
        self._free: list[Tensor] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def like(self, tensor: Tensor) -> Iterator[Tensor]:
        """An uninitialised tensor with ``tensor``'s shape, strides, dtype and device."""
        span = 1 + sum(
            (size - 1) * stride for size, stride in zip(tensor.shape, tensor.stride(), strict=True)
        )
        if tensor.device.type != "cpu" or span * tensor.element_size() < self.MIN_BYTES:
            yield torch.empty_strided(
                tensor.shape, tensor.stride(), dtype=tensor.dtype, device=tensor.device
            )
            return
        nbytes = span * tensor.element_size()
        with self._lock:  # by index: a list's remove() would compare tensors with ==
            fits = [i for i, b in enumerate(self._free) if b.numel() >= nbytes]
            if fits:
                buffer = self._free.pop(min(fits, key=lambda i: self._free[i].numel()))
            else:  # grow: give up the largest free buffer, too small, if any
                if self._free:
                    self._free.pop(max(range(len(self._free)), key=lambda i: self._free[i].numel()))
                buffer = None
        if buffer is None:
            buffer = torch.empty(nbytes, dtype=torch.uint8)
        try:
            flat = buffer[:nbytes].view(tensor.dtype)
            yield flat.as_strided(tensor.shape, tensor.stride())
        finally:
            with self._lock:
                self._free.append(buffer)


_WORKSPACE = _Workspace()


__all__ = ["batch_norm_max_pool", "rows_batch_norm"]
