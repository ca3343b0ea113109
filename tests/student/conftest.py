"""Small synthetic meta-batches and tiny students for the student tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import pytest
import torch

from metacurriculum.student import MetaBatch, StudentConfig
from metacurriculum.student.settings import setting_names


def synthetic_batch(
    n_way: Sequence[int],
    *,
    k_shot: int = 1,
    q_query: int = 3,
    image_size: int = 12,
    noise: float = 0.5,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
) -> MetaBatch:
    """Tasks whose classes are random prototype images; examples are noisy copies.

    Pixel values have a nonzero mean and non-unit spread, so batch norm has
    nontrivial statistics in every layer.
    """
    generator = torch.Generator().manual_seed(seed)
    tasks = []
    for n in n_way:
        prototypes = torch.rand(n, 1, image_size, image_size, generator=generator, dtype=dtype)

        def examples(per_class: int, prototypes: torch.Tensor = prototypes, n: int = n):
            labels = torch.arange(n).repeat_interleave(per_class)
            shape = (n * per_class, 1, image_size, image_size)
            images = prototypes[labels] + noise * torch.randn(
                shape, generator=generator, dtype=dtype
            )
            return images, labels

        tasks.append((*examples(k_shot), *examples(q_query)))
    return MetaBatch.from_tasks(tasks, list(n_way))


def tiny_config(learner: str = "maml", **overrides: object) -> StudentConfig:
    """A float64 CPU student of ``learner`` small enough to differentiate through in
    milliseconds; overrides that are the learner's settings go to its ``learner_kwargs``."""
    names = setting_names(learner)
    learner_kwargs = {k: v for k, v in {"inner_lr": 0.4, "inner_steps": 3}.items() if k in names}
    learner_kwargs.update({k: overrides.pop(k) for k in list(overrides) if k in names})
    fields: dict[str, object] = {
        "n_max": 6,
        "image_size": 12,
        "hidden": 5,
        "depth": 3,
        "dtype": "float64",
        "device": "cpu",
    }
    fields.update(overrides)
    return StudentConfig(**fields, learner=learner, learner_kwargs=learner_kwargs)


@pytest.fixture
def make_batch() -> Callable[..., MetaBatch]:
    """The :func:`synthetic_batch` factory."""
    return synthetic_batch


@pytest.fixture
def make_config() -> Callable[..., StudentConfig]:
    """The :func:`tiny_config` factory."""
    return tiny_config


@pytest.fixture(scope="module")
def single_thread() -> Iterator[None]:
    """One intra-op thread for the module: the tiny nets here gain nothing from more,
    and OpenMP threads on a busy shared CPU slow them down several times."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
