"""The row batch norm's hand-written derivatives against autograd's of the primitive form."""

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

from metacurriculum.student import network
from metacurriculum.student.batchnorm import batch_norm_max_pool, rows_batch_norm

EPS = 1e-5


def primitive(rows, weight, bias, eps=EPS):
    mean = rows.mean(dim=0)
    centred = rows - mean
    var = centred.square().mean(dim=0)
    return centred * (weight * torch.rsqrt(var + eps)) + bias


def inputs(m=23, c=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    draw = lambda *shape: torch.randn(*shape, dtype=torch.float64, generator=generator)  # noqa: E731
    # a shifted, scaled input: the statistics matter; a negative scale among the weights
    rows = (draw(m, c) * 3 + 2).requires_grad_()
    weight = torch.tensor([1.5, -0.7, 0.2, 1.0][:c], dtype=torch.float64, requires_grad=True)
    return rows, weight, draw(c).requires_grad_()


def test_forward_matches_primitive_form():
    rows, weight, bias = inputs()
    torch.testing.assert_close(
        rows_batch_norm(rows, weight, bias, EPS), primitive(rows, weight, bias)
    )


def test_gradcheck_and_gradgradcheck():
    args = inputs(m=9, c=3)
    fn = lambda r, w, b: rows_batch_norm(r, w, b, EPS)  # noqa: E731
    assert gradcheck(fn, args)
    assert gradgradcheck(fn, args)


def second_order(fn, rows, weight, bias, outer):
    """A MAML-shaped second derivative: an inner gradient with a graph, a loss of it."""
    out = fn(rows, weight, bias)
    inner = (out.tanh() * torch.arange(1.0, out.shape[-1] + 1, dtype=out.dtype)).sum()
    gx, gw, gb = torch.autograd.grad(inner, (rows, weight, bias), create_graph=True)
    return torch.autograd.grad(outer(gx, gw, gb), (rows, weight, bias), allow_unused=True)


@pytest.mark.parametrize(
    "outer",
    [
        lambda gx, gw, gb: gx.sin().sum() + gw.square().sum() + gb.pow(3).sum(),
        lambda gx, gw, gb: gx.square().sum(),  # the backward's dw and db unused
        lambda gx, gw, gb: (gw * gb).sum(),  # its dx unused
    ],
    ids=["all", "dx-only", "dw-db-only"],
)
def test_second_derivative_matches_primitive_form(outer):
    rows, weight, bias = inputs()
    ours = second_order(lambda r, w, b: rows_batch_norm(r, w, b, EPS), rows, weight, bias, outer)
    theirs = second_order(primitive, rows, weight, bias, outer)
    for mine, reference in zip(ours, theirs, strict=True):
        if reference is None:  # the bias never reaches a first derivative
            assert mine is None or torch.count_nonzero(mine) == 0
        else:
            torch.testing.assert_close(mine, reference, rtol=1e-10, atol=1e-12)


def test_network_twice_path_uses_it_on_channels_last_activations():
    """The network's batch norm for twice-differentiated, channels-last, unmasked input gives
    the primitive form's values and second derivatives (the float64 meta-gradient tests
    hold the whole student to the reference)."""
    generator = torch.Generator().manual_seed(1)
    h = torch.randn(5, 3, 4, 4, dtype=torch.float64, generator=generator)
    h = h.contiguous(memory_format=torch.channels_last).requires_grad_()
    weight = torch.randn(1, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    bias = torch.randn(1, 3, dtype=torch.float64, generator=generator, requires_grad=True)

    def twice(x, w, b):
        return network.batch_norm(x, w, b, EPS, None, fused=False)

    def plain(x, w, b):
        rows = x.permute(0, 2, 3, 1).reshape(-1, 3)
        return primitive(rows, w.reshape(-1), b.reshape(-1)).view(5, 4, 4, 3).permute(0, 3, 1, 2)

    torch.testing.assert_close(twice(h, weight, bias), plain(h, weight, bias))
    outer = lambda gx, gw, gb: gx.cos().sum() + (gw * gb).sum()  # noqa: E731
    for mine, reference in zip(
        second_order(twice, h, weight, bias, outer),
        second_order(plain, h, weight, bias, outer),
        strict=True,
    ):
        torch.testing.assert_close(mine, reference, rtol=1e-10, atol=1e-12)


def _pool_inputs(shape, dtype):
    generator = torch.Generator().manual_seed(2)
    h = torch.randn(*shape, dtype=dtype, generator=generator) * 2 + 1
    h = h.contiguous(memory_format=torch.channels_last).requires_grad_()
    weight = torch.randn(shape[1], dtype=dtype, generator=generator, requires_grad=True)
    bias = torch.randn(shape[1], dtype=dtype, generator=generator, requires_grad=True)
    return h, weight, bias


def _unfused(h, weight, bias):
    return F.max_pool2d(F.batch_norm(h, None, None, weight, bias, training=True, eps=EPS), 2)


@pytest.mark.parametrize("shape", [(6, 5, 8, 8), (4, 3, 7, 7)], ids=["even", "odd"])
def test_batch_norm_max_pool_gives_the_unfused_ops_bits(shape):
    h, weight, bias = _pool_inputs(shape, torch.float32)
    ours = batch_norm_max_pool(h, weight, bias, EPS)
    theirs = _unfused(h, weight, bias)
    assert torch.equal(ours, theirs)
    grad = torch.randn_like(ours)
    for mine, reference in zip(
        torch.autograd.grad(ours, (h, weight, bias), grad),
        torch.autograd.grad(theirs, (h, weight, bias), grad),
        strict=True,
    ):
        assert torch.equal(mine, reference)


def test_batch_norm_max_pool_gradcheck_and_refuses_a_second_derivative():
    h, weight, bias = _pool_inputs((5, 2, 4, 4), torch.float64)
    assert gradcheck(lambda x, w, b: batch_norm_max_pool(x, w, b, EPS), (h, weight, bias))
    out = batch_norm_max_pool(h, weight, bias, EPS)
    (dh,) = torch.autograd.grad(out.square().sum(), h, create_graph=True)
    with pytest.raises(RuntimeError, match=r"once_differentiable|not have been used"):
        torch.autograd.grad(dh.sum(), h)


def _saved_bytes(fn, *args):
    total = 0

    def pack(tensor):
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*args)
    return total


def test_batch_norm_max_pool_keeps_less_for_backward():
    """The normalised, full-size tensor is not saved: a full activation less per layer."""
    h, weight, bias = _pool_inputs((8, 4, 8, 8), torch.float32)
    ours = _saved_bytes(lambda *a: batch_norm_max_pool(*a, EPS), h, weight, bias)
    theirs = _saved_bytes(_unfused, h, weight, bias)
    assert theirs - ours >= h.numel() * h.element_size()


def test_batch_norm_max_pool_in_concurrent_threads_reuses_buffers_safely():
    """Large temporaries come from a shared workspace: tasks in two threads at once still get
    the unfused ops' bits, and the workspace keeps no more buffers than were lent at once."""
    from concurrent.futures import ThreadPoolExecutor

    from metacurriculum.student.batchnorm import _Workspace

    workspace = _Workspace()
    shapes = [(16, 16, 32, 32), (24, 16, 32, 32), (16, 16, 32, 32)]  # >= 1 MiB: lent buffers

    def task(i):
        h, weight, bias = _pool_inputs(shapes[i % len(shapes)], torch.float32)
        h = (h.detach() * (1 + i)).requires_grad_()
        ours = batch_norm_max_pool(h, weight, bias, EPS)
        grads = torch.autograd.grad(ours, (h, weight, bias), torch.ones_like(ours))
        theirs = _unfused(h, weight, bias)
        expected = torch.autograd.grad(theirs, (h, weight, bias), torch.ones_like(theirs))
        same = torch.equal(ours, theirs)
        return same and all(torch.equal(a, b) for a, b in zip(grads, expected, strict=True))

    import metacurriculum.student.batchnorm as module

    original, module._WORKSPACE = module._WORKSPACE, workspace
    try:
        with ThreadPoolExecutor(2) as pool:
            assert all(pool.map(task, range(12)))
    finally:
        module._WORKSPACE = original
    assert 1 <= len(workspace._free) <= 2
    largest = 24 * 16 * 32 * 32 * 4
    assert all(buffer.numel() <= largest for buffer in workspace._free)
