"""Few-shot task distributions parameterised by ω: the number of classes, and a family's ω.

A task distribution holds a class-indexed image tensor ``[classes, samples, C, H, W]``
on the student's device and samples N-way K-shot meta-batches from it by pure tensor
indexing with a private ``torch.Generator``: no Python loop over images, no DataLoader.

ω is a float in ``[1, n_max]``. Each task of a meta-batch draws its number of classes
from ω plus the paper's uniform perturbation (``T_i ~ p(T) + noise``)::

    n_i = clip(round(ω + u_i), n_min, n_max),   u_i ~ U(-omega_noise, omega_noise)

With the default ``omega_noise = 0.5`` an integer ω gives n = ω and a fractional ω
mixes its two neighbours in proportion (ω = 3.25 gives n = 3 three times in four), so
the expected n moves smoothly with ω.

:class:`FamilyTasks` draws the tasks of a :class:`~metacurriculum.envs.families.TaskFamily`
at a vector ω: its per-task values come from the family (the one place ω is
perturbed), its classes and images from a :class:`TaskDistribution`, and the family's
``transform`` changes the images (rotation, noise, ...).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from metacurriculum.envs.families import TaskFamily, perturb
from metacurriculum.student.batch import MetaBatch


class TaskDistribution:
    """N-way K-shot tasks over the classes of one image split.

    Classes of a task are drawn without replacement and appear in random order; the
    label of a class is its position, so labels are permuted per task (the paper's
    random relabelling). Support and query images of a class are distinct samples.

    Args:
        images: ``[classes, samples, C, H, W]`` images, on the device tasks are made on.
        n_max: the largest number of classes a task may have (N_max).
        k_shot: support examples per class (K).
        q_query: query examples per class (Q).
        omega_noise: half-width of the uniform perturbation added to ω per task.
        n_min: the fewest classes a task drawn at some ω may have.

    Raises:
        ValueError: when the split cannot supply the tasks (n_max larger than its
            classes, K + Q larger than its samples per class) or a setting is out of range.
    """

    def __init__(
        self,
        images: Tensor,
        n_max: int,
        k_shot: int = 1,
        q_query: int = 15,
        omega_noise: float = 0.5,
        n_min: int = 1,
    ) -> None:
        if images.dim() != 5:
            raise ValueError(
                f"images must be [classes, samples, C, H, W], got shape {tuple(images.shape)}."
            )
        classes, samples = images.shape[:2]
        if not 1 <= n_max <= classes:
            raise ValueError(
                f"n_max={n_max} needs 1 <= n_max <= {classes}, the classes this split has; "
                "lower n_max or use a split with more classes."
            )
        if not 1 <= n_min <= n_max:
            raise ValueError(f"n_min={n_min} must lie in [1, n_max={n_max}].")
        if k_shot < 1 or q_query < 1:
            raise ValueError(f"k_shot={k_shot} and q_query={q_query} must both be at least 1.")
        if k_shot + q_query > samples:
            raise ValueError(
                f"k_shot + q_query = {k_shot} + {q_query} exceeds the {samples} images each "
                "class has; lower k_shot or q_query."
            )
        if not (omega_noise >= 0 and math.isfinite(omega_noise)):
            raise ValueError(f"omega_noise={omega_noise} must be a finite number >= 0.")
        self.images = images
        self.n_max = n_max
        self.k_shot = k_shot
        self.q_query = q_query
        self.omega_noise = omega_noise
        self.n_min = n_min

    @property
    def device(self) -> torch.device:
        """The device tasks are made on."""
        return self.images.device

    def sample_n_way(self, omega: float, num_tasks: int, generator: torch.Generator) -> Tensor:
        """The number of classes of each of ``num_tasks`` tasks drawn at ``omega``."""
        if not math.isfinite(omega):
            raise ValueError(f"omega={omega} must be finite.")
        u = torch.rand(num_tasks, generator=generator, device=self.device, dtype=torch.float64)
        offsets = (2.0 * u - 1.0).cpu().numpy()
        n_way = perturb(omega, offsets, self.omega_noise, 1.0, True, self.n_min, self.n_max)
        return torch.as_tensor(n_way, device=self.device).long()

    def sample(self, omega: float, num_tasks: int, generator: torch.Generator) -> MetaBatch:
        """A meta-batch of ``num_tasks`` tasks whose sizes are drawn at ``omega``."""
        return self.sample_tasks(self.sample_n_way(omega, num_tasks, generator), generator)

    def sample_tasks(self, n_way: Tensor, generator: torch.Generator) -> MetaBatch:
        """A meta-batch with one task per entry of ``n_way`` (each in ``1..n_max``)."""
        n_way = torch.as_tensor(n_way, dtype=torch.long, device=self.device)
        if n_way.dim() != 1 or n_way.numel() == 0:
            raise ValueError("n_way must be a non-empty 1-D tensor of class counts.")
        if int(n_way.min()) < 1 or int(n_way.max()) > self.n_max:
            raise ValueError(f"every n_way must be in 1..{self.n_max}, got {n_way.tolist()}.")
        tasks, width = n_way.numel(), int(n_way.max())
        classes, samples = self.images.shape[:2]
        shots = self.k_shot + self.q_query
        gen = {"generator": generator, "device": self.device}
        # A random permutation per row by argsort of uniforms: all tasks in one call.
        chosen = torch.rand(tasks, classes, **gen).argsort(dim=1)[:, :width]
        picks = torch.rand(tasks, width, samples, **gen).argsort(dim=2)[:, :, :shots]
        images = self.images[chosen.unsqueeze(-1), picks]  # [T, width, K+Q, C, H, W]
        labels = (
            torch.arange(width, device=self.device).view(1, width, 1).expand(tasks, width, shots)
        )
        valid = labels < n_way.view(tasks, 1, 1)

        def split(part: slice) -> tuple[Tensor, Tensor, Tensor]:
            # Class-major order puts the real classes (labels < n) first in every task.
            x = images[:, :, part].flatten(1, 2)
            return x, labels[:, :, part].flatten(1), valid[:, :, part].flatten(1)

        sx, sy, smask = split(slice(0, self.k_shot))
        qx, qy, qmask = split(slice(self.k_shot, shots))
        return MetaBatch(
            sx, sy.masked_fill(~smask, 0), smask, qx, qy.masked_fill(~qmask, 0), qmask, n_way
        )


class FamilyTasks:
    """The tasks of a family at a vector ω, drawn from one image split.

    Args:
        family: the task family (its parameters and ``transform``).
        tasks: the classes and images to draw from (its ``n_max``, ``k_shot`` and
            ``q_query`` apply; its ``omega_noise`` is the per-task perturbation).
    """

    def __init__(self, family: TaskFamily, tasks: TaskDistribution) -> None:
        self.family = family
        self.tasks = tasks

    def __getattr__(self, name: str) -> Any:
        # images, n_max, k_shot, q_query, device, ... of the underlying distribution
        if name in ("family", "tasks"):
            raise AttributeError(name)
        return getattr(self.tasks, name)

    def task_parameters(self, omega: Any, num_tasks: int, generator: torch.Generator) -> np.ndarray:
        """``[T, d]`` per-task coordinates drawn at ``omega`` (float64, on the CPU)."""
        omega = self.family.check(omega)
        shape = (num_tasks,) if self.family.dim == 1 else (num_tasks, self.family.dim)
        u = torch.rand(shape, generator=generator, device=self.tasks.device, dtype=torch.float64)
        offsets = (2.0 * u - 1.0).cpu().numpy()
        return self.family.task_parameters(omega, offsets, self.tasks.omega_noise)

    def sample(self, omega: Any, num_tasks: int, generator: torch.Generator) -> MetaBatch:
        """A meta-batch of ``num_tasks`` tasks drawn at ``omega`` (a number when ``d = 1``)."""
        return self.sample_at(self.task_parameters(omega, num_tasks, generator), generator)

    def sample_at(self, params: np.ndarray, generator: torch.Generator) -> MetaBatch:
        """A meta-batch with one task per row of ``params`` (``[T, d]`` coordinates)."""
        params = np.asarray(params, dtype=np.float64).reshape(-1, self.family.dim)
        n_way = torch.as_tensor(self.family.n_way(params), device=self.tasks.device)
        batch = self.tasks.sample_tasks(n_way, generator)
        return self.family.transform(batch, params, generator)

    def sample_hardest(self, num_tasks: int, generator: torch.Generator) -> MetaBatch:
        """``num_tasks`` tasks at the hardest corner, unperturbed: the target distribution."""
        return self.sample_at(np.tile(self.family.hardest, (num_tasks, 1)), generator)
