"""Task sampling: shapes, labels, masks, the ω perturbation, and determinism."""

import pytest
import torch

from metacurriculum.envs.tasks import TaskDistribution

CLASSES, SAMPLES = 30, 20


@pytest.fixture
def coded_images() -> torch.Tensor:
    """Images whose pixels encode (class, sample), so a task can be decoded exactly."""
    code = torch.arange(CLASSES * SAMPLES, dtype=torch.float32).view(CLASSES, SAMPLES)
    return code.view(CLASSES, SAMPLES, 1, 1, 1).expand(CLASSES, SAMPLES, 1, 4, 4).clone()


def decode(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    code = x[..., 0, 0, 0].long()
    return code // SAMPLES, code % SAMPLES


def test_mixed_tasks_are_consistent(coded_images):
    dist = TaskDistribution(coded_images, n_max=5, k_shot=2, q_query=3)
    gen = torch.Generator().manual_seed(0)
    batch = dist.sample_tasks(torch.tensor([1, 3, 5, 2]), gen)
    assert batch.support_x.shape == (4, 10, 1, 4, 4) and batch.query_x.shape == (4, 15, 1, 4, 4)
    assert batch.support_mask.sum(1).tolist() == [2, 6, 10, 4]
    assert batch.query_mask.sum(1).tolist() == [3, 9, 15, 6]
    for i in range(batch.num_tasks):
        sx, sy, qx, qy, n = batch.task(i)
        s_cls, s_idx = decode(sx)
        q_cls, q_idx = decode(qx)
        assert sorted(set(sy.tolist())) == list(range(n)) == sorted(set(qy.tolist()))
        # One class per label, the same in support and query; n distinct classes.
        label_to_class = {int(y): int(c) for y, c in zip(sy, s_cls, strict=True)}
        assert len(set(label_to_class.values())) == n
        assert all(label_to_class[int(y)] == int(c) for y, c in zip(qy, q_cls, strict=True))
        # Support and query images of a class are distinct samples.
        support = set(zip(s_cls.tolist(), s_idx.tolist(), strict=True))
        query = set(zip(q_cls.tolist(), q_idx.tolist(), strict=True))
        assert not support & query and len(support) == n * 2 and len(query) == n * 3


def test_omega_perturbation_mixes_neighbours(coded_images):
    dist = TaskDistribution(coded_images, n_max=20, omega_noise=0.5)
    gen = torch.Generator().manual_seed(1)
    n = dist.sample_n_way(3.25, 4000, gen)
    assert set(n.tolist()) == {3, 4}
    assert abs((n == 4).float().mean().item() - 0.25) < 0.03
    assert dist.sample_n_way(7.0, 100, gen).eq(7).all()
    assert set(dist.sample_n_way(20.0, 500, gen).tolist()) == {20}
    wide = TaskDistribution(coded_images, n_max=20, omega_noise=3.0).sample_n_way(1.0, 500, gen)
    assert wide.min() == 1 and wide.max() == 4


def test_labels_are_permuted_across_tasks(coded_images):
    dist = TaskDistribution(coded_images, n_max=5, k_shot=1, q_query=1)
    batch = dist.sample(5.0, 50, torch.Generator().manual_seed(2))
    classes_of_label0 = {int(decode(batch.task(i)[0])[0][0]) for i in range(50)}
    assert len(classes_of_label0) > 10


def test_same_generator_seed_same_tasks(coded_images):
    dist = TaskDistribution(coded_images, n_max=5)
    a = dist.sample(3.5, 8, torch.Generator().manual_seed(3))
    b = dist.sample(3.5, 8, torch.Generator().manual_seed(3))
    assert torch.equal(a.query_x, b.query_x) and torch.equal(a.n_way, b.n_way)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_max": 31}, "n_max=31"),
        ({"n_max": 5, "k_shot": 10, "q_query": 15}, "k_shot \\+ q_query"),
        ({"n_max": 5, "k_shot": 0}, "at least 1"),
        ({"n_max": 5, "omega_noise": -1.0}, "omega_noise"),
    ],
)
def test_bad_settings_raise(coded_images, kwargs, match):
    with pytest.raises(ValueError, match=match):
        TaskDistribution(coded_images, **kwargs)


def test_bad_n_way_raises(coded_images):
    dist = TaskDistribution(coded_images, n_max=5)
    with pytest.raises(ValueError, match=r"1\.\.5"):
        dist.sample_tasks(torch.tensor([6]), torch.Generator())
    with pytest.raises(ValueError, match="finite"):
        dist.sample(float("nan"), 2, torch.Generator())
