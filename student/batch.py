"""The meta-batch: the tasks a student adapts to in one meta-step, padded to one shape.

A task with ``n`` classes, ``K`` shots and ``Q`` queries per class has ``n*K``
support and ``n*Q`` query examples. The tasks of a meta-batch may have
different ``n``; they are stored padded to the largest ``n`` of the batch with
boolean masks, valid examples first. Labels of a task are in ``0..n-1`` and the
student scores a task with only its first ``n`` logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class MetaBatch:
    """A meta-batch of ``T`` few-shot classification tasks, padded to one shape.

    Attributes:
        support_x: ``[T, S, C, H, W]`` support images, ``S = max(n_way) * k_shot``.
        support_y: ``[T, S]`` int64 labels in ``0..n-1`` (0 where padded).
        support_mask: ``[T, S]`` bool, True for real examples (the first ``n*K`` of each task).
        query_x: ``[T, P, C, H, W]`` query images, ``P = max(n_way) * q_query``.
        query_y: ``[T, P]`` int64 labels.
        query_mask: ``[T, P]`` bool, True for real examples (the first ``n*Q`` of each task).
        n_way: ``[T]`` int64, the number of classes of each task.
    """

    support_x: Tensor
    support_y: Tensor
    support_mask: Tensor
    query_x: Tensor
    query_y: Tensor
    query_mask: Tensor
    n_way: Tensor

    def __post_init__(self) -> None:
        tasks = self.n_way.shape[0]
        for name in ("support_x", "support_y", "support_mask", "query_x", "query_y", "query_mask"):
            value = getattr(self, name)
            if value.shape[0] != tasks:
                raise ValueError(
                    f"MetaBatch.{name} has {value.shape[0]} tasks but n_way has {tasks}; "
                    "every field must have the tasks on its first dimension."
                )

    @property
    def num_tasks(self) -> int:
        """The number of tasks ``T``."""
        return int(self.n_way.shape[0])

    @property
    def is_uniform(self) -> bool:
        """True when every task has the same ``n`` (no padding anywhere)."""
        return bool(self.support_mask.all()) and bool(self.query_mask.all())

    def task(self, index: int) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
        """One task without its padding.

        Returns:
            ``(support_x, support_y, query_x, query_y, n_way)`` of task ``index``.
        """
        support = self.support_mask[index]
        query = self.query_mask[index]
        s, q = int(support.sum()), int(query.sum())
        # Valid examples come first, so slicing is the unpadded task.
        return (
            self.support_x[index, :s],
            self.support_y[index, :s],
            self.query_x[index, :q],
            self.query_y[index, :q],
            int(self.n_way[index]),
        )

    def select(self, index: slice | Tensor) -> MetaBatch:
        """The sub-batch of the tasks at ``index`` (padding trimmed to their largest ``n``)."""
        sub = MetaBatch(
            support_x=self.support_x[index],
            support_y=self.support_y[index],
            support_mask=self.support_mask[index],
            query_x=self.query_x[index],
            query_y=self.query_y[index],
            query_mask=self.query_mask[index],
            n_way=self.n_way[index],
        )
        return sub.trimmed()

    def trimmed(self) -> MetaBatch:
        """This batch with padding cut down to the largest ``n`` it holds."""
        s = int(self.support_mask.sum(dim=1).max())
        q = int(self.query_mask.sum(dim=1).max())
        if s == self.support_mask.shape[1] and q == self.query_mask.shape[1]:
            return self
        return MetaBatch(
            support_x=self.support_x[:, :s],
            support_y=self.support_y[:, :s],
            support_mask=self.support_mask[:, :s],
            query_x=self.query_x[:, :q],
            query_y=self.query_y[:, :q],
            query_mask=self.query_mask[:, :q],
            n_way=self.n_way,
        )

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> MetaBatch:
        """A copy on ``device`` with images cast to ``dtype`` (labels and masks keep theirs)."""
        return MetaBatch(
            support_x=self.support_x.to(device=device, dtype=dtype),
            support_y=self.support_y.to(device=device),
            support_mask=self.support_mask.to(device=device),
            query_x=self.query_x.to(device=device, dtype=dtype),
            query_y=self.query_y.to(device=device),
            query_mask=self.query_mask.to(device=device),
            n_way=self.n_way.to(device=device),
        )

    @staticmethod
    def from_tasks(
        tasks: list[tuple[Tensor, Tensor, Tensor, Tensor]], n_way: list[int]
    ) -> MetaBatch:
        """Pad a list of unpadded tasks ``(support_x, support_y, query_x, query_y)`` into a batch."""
        if not tasks:
            raise ValueError("MetaBatch.from_tasks needs at least one task.")
        s_max = max(t[0].shape[0] for t in tasks)
        q_max = max(t[2].shape[0] for t in tasks)

        def pad(values: list[Tensor], length: int) -> tuple[Tensor, Tensor]:
            out = values[0].new_zeros((len(values), length, *values[0].shape[1:]))
            mask = torch.zeros(len(values), length, dtype=torch.bool, device=values[0].device)
            for i, v in enumerate(values):
                out[i, : v.shape[0]] = v
                mask[i, : v.shape[0]] = True
            return out, mask

        sx, smask = pad([t[0] for t in tasks], s_max)
        sy, _ = pad([t[1] for t in tasks], s_max)
        qx, qmask = pad([t[2] for t in tasks], q_max)
        qy, _ = pad([t[3] for t in tasks], q_max)
        n = torch.tensor(n_way, dtype=torch.long, device=sx.device)
        return MetaBatch(sx, sy, smask, qx, qy, qmask, n)
