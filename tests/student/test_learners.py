"""Every learner's outer gradient equals a plain per-task reference, on every back-end.

In float64, on meta-batches that mix tasks of different ``n`` (so the vmap and grouped
back-ends pad them), each learner's meta-gradient is held to the independent reference
of ``references.py`` to 1e-10; a padded batch gives each task what it gets alone; the
learners' evaluation curves agree across back-ends; Reptile's parameter update is Adam
on the mean parameter difference.
"""

from __future__ import annotations

import numpy as np
import pytest
import references
import torch

from metacurriculum.student import MetaLearner, StudentConfig
from metacurriculum.student.learners import RATE

pytestmark = pytest.mark.usefixtures("single_thread")

MIXED_N = (1, 3, 5, 2)
BACKENDS = ("loop", "vmap", "grouped")
#: learner -> the settings it is checked at (each order where it has one).
CASES = {
    "maml-second": ("maml", {"first_order": False}),
    "maml-first": ("maml", {"first_order": True}),
    "fomaml": ("fomaml", {}),
    "anil-second": ("anil", {"first_order": False}),
    "anil-first": ("anil", {"first_order": True}),
    "metasgd-second": ("metasgd", {"first_order": False}),
    "metasgd-first": ("metasgd", {"first_order": True}),
    "reptile": ("reptile", {}),
    "protonet": ("protonet", {}),
}


def relative_error(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> float:
    assert actual.keys() == expected.keys()
    return max(
        float((actual[k] - expected[k]).norm() / expected[k].norm().clamp(min=1e-300))
        for k in expected
    )


def nontrivial(config: StudentConfig, seed: int = 0) -> MetaLearner:
    """A student with batch-norm parameters (and Meta-SGD rates) away from their inits."""
    student = MetaLearner(config, seed=seed)
    generator = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for name, p in student.params.items():
            if ".bn." in name or name == "head.bias":
                p.add_(0.3 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
            if name.startswith(RATE):
                p.mul_(1 + 0.5 * torch.rand(p.shape, generator=generator, dtype=p.dtype))
    return student


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES)
def test_meta_gradient_equals_the_reference_on_mixed_n(case, backend, make_batch, make_config):
    learner, settings = CASES[case]
    config = make_config(learner, **settings)
    student = nontrivial(config)
    batch = make_batch(MIXED_N, k_shot=2, q_query=3)
    assert not batch.is_uniform
    expected = references.meta_gradient(learner, student.params, batch, **config.learner_kwargs)
    actual = student.meta_gradient(batch, batching=backend)
    assert relative_error(actual, expected) < 1e-10


@pytest.mark.parametrize("case", ["anil-second", "metasgd-second", "reptile", "protonet"])
def test_uniform_batches_equal_the_reference(case, make_batch, make_config):
    """No padding: the grouped back-end's fused batch norm and cut logits."""
    learner, settings = CASES[case]
    config = make_config(learner, **settings)
    student = nontrivial(config, seed=2)
    batch = make_batch((3, 3, 3), k_shot=2, seed=2)
    expected = references.meta_gradient(learner, student.params, batch, **config.learner_kwargs)
    for backend in BACKENDS:
        assert relative_error(student.meta_gradient(batch, batching=backend), expected) < 1e-10


def test_the_references_are_not_all_the_same(make_batch, make_config):
    """The references differ where the learners do (a test of the tests)."""
    batch = make_batch(MIXED_N, k_shot=2, q_query=3)
    params = nontrivial(make_config("maml")).params
    grads = {
        name: references.meta_gradient(name, params, batch, inner_lr=0.4, inner_steps=3,
                                       first_order=False)
        for name in ("maml", "anil", "reptile")
    }  # fmt: skip
    assert relative_error(grads["anil"], grads["maml"]) > 1e-3
    assert relative_error(grads["reptile"], grads["maml"]) > 1e-3


def test_reptile_updates_toward_the_adapted_weights_with_adam(make_batch, make_config):
    config = make_config("reptile", meta_lr=0.01)
    student = nontrivial(config)
    batch = make_batch(MIXED_N, k_shot=2, q_query=3)
    before = {name: p.detach().clone() for name, p in student.params.items()}
    direction = references.meta_gradient("reptile", before, batch, **config.learner_kwargs)
    expected = {name: p.clone().requires_grad_() for name, p in before.items()}
    adam = torch.optim.Adam(expected.values(), lr=0.01)
    for name, p in expected.items():
        p.grad = direction[name]
    adam.step()
    student.meta_step(batch)
    for name, p in student.params.items():
        torch.testing.assert_close(p.detach(), expected[name].detach(), rtol=1e-10, atol=1e-12)
        # The first Adam step moves each weight toward the adapted ones (against θ - φ).
        moved = (p.detach() - before[name]) * direction[name]
        assert bool((moved <= 0).all())


@pytest.mark.parametrize("case", CASES)
def test_padding_changes_nothing_a_task_sees(case, make_batch, make_config):
    """Per-task statistics and curves of a mixed batch equal each task computed alone."""
    learner, settings = CASES[case]
    student = nontrivial(make_config(learner, **settings))
    batch = make_batch(MIXED_N, k_shot=2, q_query=3, seed=5)
    population = student.population
    for backend in ("vmap", "grouped"):
        _, stats = population._gradients([batch], [0], backend)
        curves = student.evaluate(batch, inner_steps=2, batching=backend)
        for i in range(batch.num_tasks):
            alone = batch.select(torch.tensor([i]))
            _, alone_stats = population._gradients([alone], [0], "loop")
            for key in ("query_loss", "support_loss", "query_acc"):
                torch.testing.assert_close(
                    stats[0][key][i], alone_stats[0][key][0], rtol=1e-10, atol=1e-12
                )
            alone_curve = student.evaluate(alone, inner_steps=2, batching="loop")
            np.testing.assert_allclose(curves.task_query_loss[i], alone_curve.task_query_loss[0],
                                       rtol=1e-10)  # fmt: skip
            np.testing.assert_array_equal(curves.task_query_acc[i], alone_curve.task_query_acc[0])


def test_protonet_curves_are_flat_and_say_so(make_batch, make_config):
    student = MetaLearner(make_config("protonet"))
    assert not student.learner.adapts and student.learner.eval_steps == 0
    batch = make_batch((3, 4), k_shot=2)
    assert student.evaluate(batch).query_loss.shape == (1,)
    curve = student.evaluate(batch, inner_steps=3)
    assert curve.task_query_loss.shape == (2, 4)
    assert np.all(curve.task_query_loss == curve.task_query_loss[:, :1])


def test_metasgd_learns_its_rates_and_anil_keeps_its_body_in_the_inner_loop(
    make_batch, make_config
):
    batch = make_batch(MIXED_N, k_shot=2)
    metasgd = MetaLearner(make_config("metasgd", meta_lr=0.05))
    rates = {n: p.detach().clone() for n, p in metasgd.params.items() if n.startswith(RATE)}
    assert rates and all(torch.all(r == 0.4) for r in rates.values())
    metasgd.meta_step(batch)
    assert any(not torch.equal(metasgd.params[n], r) for n, r in rates.items())
    anil = MetaLearner(make_config("anil"))
    assert anil.learner.adapted(anil.params) == ["head.weight", "head.bias"]
    protonet = MetaLearner(make_config("protonet"))
    assert not any(name.startswith("head.") for name in protonet.params)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", ["maml-second", "anil-second", "metasgd-second", "protonet"])
def test_a_final_only_evaluation_is_the_curves_last_point(case, backend, make_batch, make_config):
    learner, settings = CASES[case]
    student = nontrivial(make_config(learner, **settings))
    batch = make_batch(MIXED_N, k_shot=2, q_query=3)
    population = student.population
    full = population.evaluate([batch], inner_steps=3, batching=backend)[0]
    last = population.evaluate([batch], inner_steps=3, batching=backend, final_only=True)[0]
    assert last.task_query_loss.shape == (batch.num_tasks, 1)
    np.testing.assert_array_equal(last.task_query_loss[:, 0], full.task_query_loss[:, -1])
    np.testing.assert_array_equal(last.task_query_acc[:, 0], full.task_query_acc[:, -1])
