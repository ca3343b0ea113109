"""Every way the student computes a meta-gradient agrees with the plain float64 reference.

Equality is checked in float64: at 20-way 1-shot with batch-statistics batch
norm, float32 meta-gradients of correct implementations differ by 10-26%, so a
float32 comparison could not tell a right one from a wrong one.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from metacurriculum.student import MetaBatch, MetaLearner, StudentConfig, reference_meta_gradient
from metacurriculum.student import network as network_module
from metacurriculum.student.backends import Ops, grouped_meta_gradient, vmap_meta_gradient
from metacurriculum.student.reference import reference_adapt, reference_forward, reference_meta_loss

pytestmark = pytest.mark.usefixtures("single_thread")

MIXED_N = (1, 3, 5, 2)
ORDERS = {"second_order": False, "first_order": True}


def relative_error(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> float:
    """The largest ``|actual - expected| / |expected|`` over parameters (Frobenius norms)."""
    assert actual.keys() == expected.keys()
    return max(float((actual[k] - expected[k]).norm() / expected[k].norm()) for k in expected)


def nontrivial_student(config: StudentConfig, seed: int = 0) -> MetaLearner:
    """A student whose batch-norm scales and shifts are away from 1 and 0."""
    student = MetaLearner(config, seed=seed)
    generator = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for name, p in student.params.items():
            if ".bn." in name or name == "head.bias":
                p.add_(0.3 * torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device))
    return student


@pytest.mark.parametrize("first_order", ORDERS.values(), ids=ORDERS.keys())
@pytest.mark.parametrize("batching", ["loop", "vmap", "grouped"])
def test_meta_gradient_matches_reference_on_mixed_n(
    batching: str, first_order: bool, make_batch, make_config
) -> None:
    config = make_config(first_order=first_order)
    student = nontrivial_student(config)
    batch = make_batch(MIXED_N, k_shot=2, q_query=3)
    assert not batch.is_uniform
    expected = reference_meta_gradient(student.params, batch, config)
    actual = student.meta_gradient(batch, batching=batching)
    assert relative_error(actual, expected) < 1e-10


@pytest.mark.parametrize("batching", ["vmap", "grouped"])
def test_uniform_batches_match_reference(batching: str, make_batch, make_config) -> None:
    """Batches without padding (``F.batch_norm`` on the grouped path) at second order."""
    config = make_config()
    student = nontrivial_student(config, seed=2)
    batch = make_batch((3, 3, 3), k_shot=2, seed=2)
    expected = reference_meta_gradient(student.params, batch, config)
    assert relative_error(student.meta_gradient(batch, batching=batching), expected) < 1e-10


def test_default_batching_matches_reference(make_batch, make_config) -> None:
    config = make_config()
    student = nontrivial_student(config, seed=3)
    batch = make_batch((4, 2), q_query=2, seed=3)
    expected = reference_meta_gradient(student.params, batch, config)
    assert relative_error(student.meta_gradient(batch), expected) < 1e-10


def test_vmap_with_fused_batch_norm_is_caught(
    monkeypatch: pytest.MonkeyPatch, make_batch, make_config
) -> None:
    """The equality test above would catch ``F.batch_norm`` swapped in under vmap.

    torch's batched double backward of ``F.batch_norm`` is wrong (functorch
    issue #534), which is why ``network.batch_norm`` is written from primitive
    ops. If this test fails, torch has fixed that bug: the primitive batch norm
    is then no longer required, and this test can go.
    """

    def fused(x, weight, bias, eps, mask, fused):  # the swap a future refactor might make
        return F.batch_norm(
            x, None, None, weight.reshape(-1), bias.reshape(-1), training=True, eps=eps
        )

    config = make_config()
    student = nontrivial_student(config)
    batch = make_batch((3, 3, 3), k_shot=2)  # uniform, so ignoring the mask is harmless
    expected = reference_meta_gradient(student.params, batch, config)
    monkeypatch.setattr(network_module, "batch_norm", fused)
    assert relative_error(student.meta_gradient(batch, batching="vmap"), expected) > 1e-6


def test_reference_matches_finite_differences(make_batch, make_config) -> None:
    """Second-order reference meta-gradient against central differences of the meta-loss."""
    config = make_config(n_max=3, image_size=6, hidden=3, depth=2, inner_steps=2)
    params = nontrivial_student(config, seed=1).params
    batch = make_batch((2, 3), k_shot=2, q_query=2, image_size=6, seed=1)
    analytic = reference_meta_gradient(params, batch, config)

    def meta_loss(values: dict[str, torch.Tensor]) -> float:
        leaves = {k: v.detach().requires_grad_() for k, v in values.items()}
        # The loss value is the same at either order; first order is cheaper to evaluate.
        loss = reference_meta_loss(
            leaves, batch, inner_lr=config.settings.inner_lr, inner_steps=2, first_order=True,
            eps=1e-5,
        )  # fmt: skip
        return float(loss.detach())

    step, picker = 1e-6, torch.Generator().manual_seed(2)
    for name, value in params.items():
        entries = torch.randperm(value.numel(), generator=picker)[:8].tolist()
        numeric, expected = [], []
        for index in entries:
            shifted = {k: v.detach().clone() for k, v in params.items()}
            shifted[name].view(-1)[index] += step
            up = meta_loss(shifted)
            shifted[name].view(-1)[index] -= 2 * step
            numeric.append((up - meta_loss(shifted)) / (2 * step))
            expected.append(float(analytic[name].view(-1)[index]))
        numeric_t, expected_t = torch.tensor(numeric), torch.tensor(expected)
        error = float((numeric_t - expected_t).norm() / expected_t.norm())
        assert error < 1e-6, f"{name}: relative error {error:.2e} at entries {entries}"


def test_first_order_reference_is_the_adapted_query_gradient(make_batch, make_config) -> None:
    """FOMAML's gradient: the mean over tasks of the query gradient at the adapted parameters."""
    config = make_config(first_order=True)
    params = nontrivial_student(config).params
    batch = make_batch(MIXED_N, k_shot=2)
    expected = {name: torch.zeros_like(p) for name, p in params.items()}
    for i in range(batch.num_tasks):
        support_x, support_y, query_x, query_y, n_way = batch.task(i)
        adapted = reference_adapt(
            params, support_x, support_y, n_way,
            inner_lr=config.settings.inner_lr, inner_steps=config.settings.inner_steps,
            first_order=True, eps=1e-5,
        )  # fmt: skip
        leaves = {k: v.detach().requires_grad_() for k, v in adapted.items()}
        loss = F.cross_entropy(reference_forward(leaves, query_x, n_way, 1e-5), query_y)
        for name, g in zip(leaves, torch.autograd.grad(loss, list(leaves.values())), strict=True):
            expected[name] += g / batch.num_tasks
    actual = reference_meta_gradient(params, batch, config)
    assert relative_error(actual, expected) < 1e-12
    second = {**config.learner_kwargs, "first_order": False}
    second_order = reference_meta_gradient(
        params, batch, dataclasses.replace(config, learner_kwargs=second)
    )
    assert relative_error(second_order, expected) > 1e-3


def with_garbage_padding(batch: MetaBatch, seed: int) -> MetaBatch:
    """The batch with huge random images where it is padded."""
    generator = torch.Generator().manual_seed(seed)

    def fill(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        garbage = 100 * torch.randn(images.shape, generator=generator, dtype=images.dtype)
        return torch.where(mask[:, :, None, None, None], images, garbage)

    return dataclasses.replace(
        batch,
        support_x=fill(batch.support_x, batch.support_mask),
        query_x=fill(batch.query_x, batch.query_mask),
    )


PADDED_PATHS = {"vmap": vmap_meta_gradient, "grouped": grouped_meta_gradient}


@pytest.mark.parametrize("first_order", ORDERS.values(), ids=ORDERS.keys())
@pytest.mark.parametrize("path", PADDED_PATHS)
def test_padding_invariance(path: str, first_order: bool, make_batch, make_config) -> None:
    """Per-task losses and gradients of a mixed-n batch equal each task computed alone."""
    config = make_config(first_order=first_order)
    student = nontrivial_student(config)
    batch = with_garbage_padding(make_batch(MIXED_N, k_shot=2, q_query=3, seed=5), seed=9)
    meta_gradient = PADDED_PATHS[path]
    grads, stats = meta_gradient(student.learner, student.params, batch, Ops(config.bn_eps))

    total = {name: torch.zeros_like(g) for name, g in grads.items()}
    for i in range(batch.num_tasks):
        support_x, support_y, query_x, query_y, n_way = batch.task(i)
        alone = MetaBatch.from_tasks([(support_x, support_y, query_x, query_y)], [n_way])
        task_grads, task_stats = meta_gradient(student.learner, student.params, alone, Ops(1e-5))
        for key in ("query_loss", "support_loss", "query_acc"):
            assert torch.allclose(stats[key][i], task_stats[key][0], rtol=1e-12, atol=1e-14)
        for name, g in task_grads.items():
            total[name] += g / batch.num_tasks
    assert relative_error(grads, total) < 1e-10


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("batching", ["loop", "vmap", "grouped"])
def test_cuda_meta_gradient_matches_cpu_reference(batching: str, make_batch, make_config) -> None:
    config = make_config(device="cuda")
    student = nontrivial_student(config)
    batch = make_batch(MIXED_N, k_shot=2)
    cpu_params = {name: p.detach().cpu() for name, p in student.params.items()}
    expected = reference_meta_gradient(cpu_params, batch, make_config(device="cpu"))
    actual = student.meta_gradient(batch, batching=batching)
    assert relative_error({k: v.cpu() for k, v in actual.items()}, expected) < 1e-9
