"""A population of MAML students: R independent students whose meta-steps run together.

The students share a network shape and hyper-parameters (one
:class:`StudentConfig`); each has its own parameters, Adam state, seed and
task stream. Their parameters are stacked on a leading axis, ``[R, ...]`` per
name, and a meta-step takes one meta-batch per student:

* ``batching="grouped"`` (the CUDA default) runs the R x T tasks of a step in
  one grouped call: student ``r``'s parameters are copied to each of its
  tasks (``index_select``, so gradients flow back to their owner), every task
  is adapted in grouped convolutions, and the gradient of the sum over students
  of each student's mean query loss is each student's own meta-gradient.
  Students are split into chunks that fit the device's free memory (see
  :func:`meta_step_bytes`), or ``chunk_size`` students per call.
* ``"loop"`` (the CPU default, measured fastest there: see
  ``benchmarks/population_speed.py``) and ``"vmap"`` run the students one
  after another, each with the single student's path of that name.

Adam is elementwise, so one Adam step over the stacked parameters is every
student's own Adam step; the step counts (bias corrections) are kept per
student, so a student reset mid-run restarts its Adam while the others go on.
Every path gives the parameters, metrics and evaluations of R separate
:class:`~metacurriculum.student.MAML` students fed the same batches (to
rounding; the tests hold them to 1e-10 in float64).

Example:
    >>> population = Population(StudentConfig(n_max=5, device="cpu"), seeds=[0, 1, 2])
    >>> metrics = population.meta_step([batch0, batch1, batch2])  # one dict per student
    >>> curves = population.evaluate([val0, val1, val2])  # one Evaluation per student
    >>> population.to_maml(1).save("student1.pt")  # a row as an ordinary MAML
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from metacurriculum.student.adaptation import (
    InnerLoop,
    loop_curves,
    loop_meta_gradient,
    vmap_curves,
    vmap_meta_gradient,
)
from metacurriculum.student.batch import MetaBatch
from metacurriculum.student.config import StudentConfig, resolve_batching
from metacurriculum.student.grouped import grouped_curves, grouped_query_losses
from metacurriculum.student.maml import MAML, Evaluation, check_same_shape, prepare_batch

#: Fraction of the free device memory (CUDA) or available RAM (CPU) a grouped call may plan on.
MEMORY_FRACTION = 0.5
_BETAS = (0.9, 0.999)
_EPS = 1e-8
_METRICS = ("query_loss", "query_acc", "support_loss")


def concat_batches(batches: Sequence[MetaBatch]) -> MetaBatch:
    """The tasks of several meta-batches in one, padded to the largest support and query sets."""
    support = max(b.support_mask.shape[1] for b in batches)
    query = max(b.query_mask.shape[1] for b in batches)

    def padded(value: Tensor, length: int) -> Tensor:
        if value.shape[1] == length:
            return value
        out = value.new_zeros((value.shape[0], length, *value.shape[2:]))
        out[:, : value.shape[1]] = value
        return out

    fields = {}
    for name, length in (("support", support), ("query", query)):
        for part in ("x", "y", "mask"):
            key = f"{name}_{part}"
            fields[key] = torch.cat([padded(getattr(b, key), length) for b in batches])
    return MetaBatch(**fields, n_way=torch.cat([b.n_way for b in batches]))


def meta_step_bytes(config: StudentConfig, batch: MetaBatch) -> int:
    """An estimate, on the generous side, of the memory one task of ``batch`` takes in a
    grouped meta-step.

    Counts four maps of each block's conv-output size per example (the
    activations autograd keeps) for each inner step on the support set (three
    times over at second order, whose backward is itself differentiated) and for
    the query pass, at the config's dtype. Calibrated on the CPU at Omniglot 20-way
    1-shot, 15 queries, 5 inner steps, float32: measured 386 MiB per task at second
    order and 276 MiB at first order (``benchmarks/population_speed.py``), estimated
    608 and 405 MiB.
    """
    side, maps = config.image_size, 0
    for _ in range(config.depth):
        maps += config.hidden * side * side
        side //= 2
    per_example = 4 * maps * torch.empty((), dtype=config.torch_dtype).element_size()
    support, query = batch.support_mask.shape[1], batch.query_mask.shape[1]
    passes = config.inner_steps * support * (1 if config.first_order else 3) + query
    return per_example * passes


def free_memory_bytes(device: torch.device) -> int | None:
    """Free CUDA memory, or the RAM Linux reports available; ``None`` when unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class Population:
    """R MAML students with stacked parameters, trained and evaluated together.

    Args:
        config: The students' shared configuration. ``config.batching`` picks
            the population path: ``"grouped"`` (all students' tasks in one grouped
            call), ``"loop"`` or ``"vmap"`` (one student after another), or
            ``"auto"`` (grouped on CUDA, the loop on the CPU).
        seeds: One seed per student (an int or a ``torch.Generator``); student
            ``r`` starts from exactly the parameters of ``MAML(config, seeds[r])``.
        chunk_size: Students per grouped call; ``None`` sizes the chunks to the
            device's free memory (and halves them on a CUDA out-of-memory error).

    Attributes:
        config: The configuration.
        params: The meta-parameters, ``[R, ...]`` per name (not leaves: the
            meta-gradient is taken on copies, the Adam step writes in place).
        meta_steps: Meta-steps taken by each student.
    """

    def __init__(
        self,
        config: StudentConfig,
        seeds: Sequence[int | torch.Generator],
        chunk_size: int | None = None,
    ) -> None:
        if len(seeds) < 1:
            raise ValueError("Population needs at least one seed (one student).")
        if chunk_size is not None and (
            isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
        ):
            raise ValueError(f"Population(chunk_size={chunk_size!r}) must be None or an int >= 1.")
        self.config = config
        self.device = config.torch_device
        self.dtype = config.torch_dtype
        self.batching = resolve_batching(config.batching, self.device)
        self.chunk_size = chunk_size
        self._chunk_cap: int | None = None
        first = [MAML(config, seed=seed) for seed in seeds]
        self.params = {
            name: torch.stack([student.params[name].detach() for student in first])
            for name in first[0].params
        }
        self._exp_avg = {name: torch.zeros_like(p) for name, p in self.params.items()}
        self._exp_avg_sq = {name: torch.zeros_like(p) for name, p in self.params.items()}
        self._adam_steps = [0] * len(seeds)
        self.meta_steps = [0] * len(seeds)

    @property
    def size(self) -> int:
        """The number of students R."""
        return len(self.meta_steps)

    # -- training --------------------------------------------------------------------

    def meta_gradient(
        self, batches: Sequence[MetaBatch], rows: Sequence[int] | None = None
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Each student's meta-gradient on its own batch; no optimiser step.

        Args:
            batches: One meta-batch per student of ``rows``.
            rows: The students, in the order of ``batches``; ``None`` is all of them.

        Returns:
            The gradients, ``[len(rows), ...]`` per name, and per student the mean
            over its tasks of ``query_loss``, ``query_acc`` and ``support_loss``.
        """
        rows = self._rows(rows, len(batches))
        return self._meta_gradient([prepare_batch(self.config, b) for b in batches], rows)

    def meta_step(
        self, batches: Sequence[MetaBatch], rows: Sequence[int] | None = None
    ) -> list[dict[str, float]]:
        """One meta-training step of each student of ``rows`` on its own meta-batch.

        Returns:
            Per student, the metrics of :meth:`MAML.meta_step
            <metacurriculum.student.MAML.meta_step>`.
        """
        rows = self._rows(rows, len(batches))
        grads, stats = self._meta_gradient([prepare_batch(self.config, b) for b in batches], rows)
        norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads.values()])
        grad_norm = torch.linalg.vector_norm(norms, dim=0)
        self._adam_step(grads, rows)
        for row in rows:
            self.meta_steps[row] += 1
        values = torch.stack([*(stats[name] for name in _METRICS), grad_norm], dim=1).tolist()
        names = (*_METRICS, "grad_norm")
        return [
            {f"student/{name}": value for name, value in zip(names, row, strict=True)}
            for row in values
        ]

    def evaluate(
        self,
        batches: Sequence[MetaBatch],
        rows: Sequence[int] | None = None,
        inner_steps: int | None = None,
        chunk_size: int | None = None,
    ) -> list[Evaluation]:
        """Each student's :meth:`MAML.evaluate <metacurriculum.student.MAML.evaluate>` on its batch.

        Args:
            batches: One batch of tasks per student of ``rows``.
            rows: The students; ``None`` is all of them.
            inner_steps: Inner steps to take; ``None`` uses ``config.inner_steps``.
            chunk_size: Tasks per grouped (or vmap) call; ``None`` fits the grouped
                path's calls to free memory and gives vmap 32.
        """
        rows = self._rows(rows, len(batches))
        steps = self.config.inner_steps if inner_steps is None else inner_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"evaluate(inner_steps={inner_steps!r}) must be an int >= 0.")
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"evaluate(chunk_size={chunk_size!r}) must be None or >= 1.")
        inner = dataclasses.replace(self._inner_loop(), steps=steps)
        batches = [prepare_batch(self.config, b) for b in batches]
        if self.batching != "grouped":
            return [
                self._evaluate_one(row, b, inner, chunk_size or 32)
                for row, b in zip(rows, batches, strict=True)
            ]
        batch, owner, counts = self._merged(batches)
        if chunk_size is None:
            first_order = dataclasses.replace(self.config, first_order=True)
            chunk_size = self._fit(meta_step_bytes(first_order, batch), batch.num_tasks)
        index = torch.tensor(rows, device=self.device)
        params = {name: p.index_select(0, index) for name, p in self.params.items()}
        losses, accuracies = grouped_curves(params, batch, inner, chunk_size, owner)
        splits = counts.tolist()
        return [
            Evaluation.from_curves(loss, accuracy, b.n_way)
            for loss, accuracy, b in zip(
                losses.split(splits), accuracies.split(splits), batches, strict=True
            )
        ]

    # -- students as ordinary MAML checkpoints ---------------------------------------

    def student_state_dict(self, row: int) -> dict[str, Any]:
        """Student ``row``'s :meth:`MAML.state_dict <metacurriculum.student.MAML.state_dict>`."""
        row = self._rows([row], 1)[0]
        params = {name: p[row].clone() for name, p in self.params.items()}
        optimizer = torch.optim.Adam(list(params.values()), lr=self.config.meta_lr).state_dict()
        if self._adam_steps[row] > 0:
            step = float(self._adam_steps[row])
            optimizer["state"] = {
                i: {
                    "step": torch.tensor(step),
                    "exp_avg": self._exp_avg[name][row].clone(),
                    "exp_avg_sq": self._exp_avg_sq[name][row].clone(),
                }
                for i, name in enumerate(params)
            }
        return {
            "config": dataclasses.asdict(self.config),
            "params": params,
            "optimizer": optimizer,
            "meta_steps": self.meta_steps[row],
        }

    def load_student(self, row: int, state: dict[str, Any]) -> None:
        """Make student ``row`` the student of a :meth:`MAML.state_dict` (parameters, Adam, steps).

        Raises:
            ValueError: If the saved network shape or Adam settings differ from this
                population's.
        """
        row = self._rows([row], 1)[0]
        saved = state["config"]
        check_same_shape(saved, self.config, "a population", ".")
        group = state["optimizer"]["param_groups"][0]
        if group["lr"] != self.config.meta_lr or tuple(group["betas"]) != _BETAS:
            raise ValueError(
                f"Cannot load a student whose Adam has lr={group['lr']}, betas={group['betas']} "
                f"into a population with lr={self.config.meta_lr}, betas={_BETAS}."
            )
        adam = state["optimizer"]["state"]
        with torch.no_grad():
            for i, (name, p) in enumerate(self.params.items()):
                p[row] = state["params"][name]
                self._exp_avg[name][row] = adam[i]["exp_avg"] if adam else 0.0
                self._exp_avg_sq[name][row] = adam[i]["exp_avg_sq"] if adam else 0.0
        self._adam_steps[row] = int(adam[0]["step"]) if adam else 0
        self.meta_steps[row] = int(state["meta_steps"])

    def reset_student(self, row: int, seed: int | torch.Generator) -> None:
        """Replace student ``row`` with a fresh one, as ``MAML(config, seed)`` starts."""
        self.load_student(row, MAML(self.config, seed=seed).state_dict())

    def to_maml(self, row: int) -> MAML:
        """Student ``row`` as a standalone :class:`~metacurriculum.student.MAML` (a copy)."""
        student = MAML(self.config)
        student.load_state_dict(self.student_state_dict(row))
        return student

    # -- internals -------------------------------------------------------------------

    def _rows(self, rows: Sequence[int] | None, count: int) -> list[int]:
        rows = list(range(self.size)) if rows is None else [int(r) for r in rows]
        if len(rows) != count:
            raise ValueError(
                f"got {count} batch(es) for {len(rows)} student(s); give one batch per student "
                "(or name the students with rows=)."
            )
        if len(set(rows)) != len(rows) or any(not 0 <= r < self.size for r in rows):
            raise ValueError(
                f"rows={rows} must be distinct students in 0..{self.size - 1} (R={self.size})."
            )
        return rows

    def _inner_loop(self) -> InnerLoop:
        config = self.config
        return InnerLoop(config.inner_lr, config.inner_steps, config.first_order, config.bn_eps)

    def _meta_gradient(
        self, batches: list[MetaBatch], rows: list[int]
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        if self.batching == "grouped":
            return self._grouped_meta_gradient(batches, rows)
        path = loop_meta_gradient if self.batching == "loop" else vmap_meta_gradient
        grads: dict[str, list[Tensor]] = {name: [] for name in self.params}
        stats: dict[str, list[Tensor]] = {name: [] for name in _METRICS}
        for row, batch in zip(rows, batches, strict=True):
            leaves = {name: p[row].clone().requires_grad_() for name, p in self.params.items()}
            row_grads, row_stats = path(leaves, batch, self._inner_loop())
            for name, g in row_grads.items():
                grads[name].append(g)
            for name in _METRICS:
                stats[name].append(row_stats[name].mean())
        return (
            {name: torch.stack(values) for name, values in grads.items()},
            {name: torch.stack(values) for name, values in stats.items()},
        )

    def _merged(self, batches: list[MetaBatch]) -> tuple[MetaBatch, Tensor, Tensor]:
        """All tasks in one batch, each task's student (position in ``batches``), tasks per student."""
        counts = torch.tensor([b.num_tasks for b in batches], device=self.device)
        owner = torch.repeat_interleave(torch.arange(len(batches), device=self.device), counts)
        return concat_batches(batches), owner, counts

    def _fit(self, bytes_per_item: int, items: int) -> int:
        """How many items (students or tasks) of ``bytes_per_item`` fit the free memory."""
        free = free_memory_bytes(self.device)
        fit = items if free is None else int(free * MEMORY_FRACTION // max(bytes_per_item, 1))
        return max(1, min(fit, items))

    def _student_chunk(self, batches: list[MetaBatch]) -> int:
        if self.chunk_size is not None:
            return min(self.chunk_size, len(batches))
        per_student = max(meta_step_bytes(self.config, b) * b.num_tasks for b in batches)
        chunk = self._fit(per_student, len(batches))
        return chunk if self._chunk_cap is None else min(chunk, self._chunk_cap)

    def _grouped_meta_gradient(
        self, batches: list[MetaBatch], rows: list[int]
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        grads = {name: p.new_empty((len(rows), *p.shape[1:])) for name, p in self.params.items()}
        stats = {name: self.params["head.bias"].new_empty(len(rows)) for name in _METRICS}
        chunk, start = self._student_chunk(batches), 0
        while start < len(rows):
            stop = min(start + chunk, len(rows))
            try:
                chunk_grads, chunk_stats = self._grouped_chunk(
                    batches[start:stop], rows[start:stop]
                )
            except torch.OutOfMemoryError:
                if self.chunk_size is not None or chunk == 1:
                    raise
                chunk = self._chunk_cap = chunk // 2
                torch.cuda.empty_cache()
                continue
            for name, g in chunk_grads.items():
                grads[name][start:stop] = g
            for name, value in chunk_stats.items():
                stats[name][start:stop] = value
            start = stop
        return grads, stats

    def _grouped_chunk(
        self, batches: list[MetaBatch], rows: list[int]
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        index = torch.tensor(rows, device=self.device)
        leaves = {
            name: p.index_select(0, index).requires_grad_() for name, p in self.params.items()
        }
        batch, owner, counts = self._merged(batches)
        task_params = {name: leaf.index_select(0, owner) for name, leaf in leaves.items()}
        query_loss, task_stats = grouped_query_losses(task_params, batch, self._inner_loop())
        # The sum over students of each one's mean task loss: each student's own gradient.
        weights = counts.to(query_loss.dtype).reciprocal().index_select(0, owner)
        grads = torch.autograd.grad((query_loss * weights).sum(), list(leaves.values()))
        stats = {
            name: query_loss.new_zeros(len(rows)).index_add_(0, owner, task_stats[name]) / counts
            for name in _METRICS
        }
        return dict(zip(leaves, grads, strict=True)), stats

    def _evaluate_one(self, row: int, batch: MetaBatch, inner: InnerLoop, chunk: int) -> Evaluation:
        params = {name: p[row] for name, p in self.params.items()}
        if self.batching == "vmap":
            losses, accuracies = vmap_curves(params, batch, inner, chunk)
        else:
            losses, accuracies = loop_curves(params, batch, inner)
        return Evaluation.from_curves(losses, accuracies, batch.n_way)

    @torch.no_grad()
    def _adam_step(self, grads: dict[str, Tensor], rows: list[int]) -> None:
        """torch.optim.Adam's update (its CPU formula, op for op), per student's step count."""
        beta1, beta2 = _BETAS
        lr = self.config.meta_lr
        every = rows == list(range(self.size))
        for step in sorted({self._adam_steps[row] + 1 for row in rows}):
            group = [i for i, row in enumerate(rows) if self._adam_steps[row] + 1 == step]
            whole = every and len(group) == len(rows)
            index = torch.tensor([rows[i] for i in group], device=self.device)
            picked = torch.tensor(group, device=self.device)
            bias_correction1 = 1 - beta1 ** float(step)
            bias_correction2 = 1 - beta2 ** float(step)
            step_size = lr / bias_correction1
            bias_correction2_sqrt = bias_correction2**0.5
            for name, stacked in self.params.items():
                g = grads[name] if len(group) == len(rows) else grads[name].index_select(0, picked)
                tensors = (stacked, self._exp_avg[name], self._exp_avg_sq[name])
                p, m, v = tensors if whole else (t.index_select(0, index) for t in tensors)
                m.lerp_(g, 1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                denom = (v.sqrt() / bias_correction2_sqrt).add_(_EPS)
                p.addcdiv_(m, denom, value=-step_size)
                if not whole:
                    for full, part in zip(tensors, (p, m, v), strict=True):
                        full.index_copy_(0, index, part)
        for row in rows:
            self._adam_steps[row] += 1
