"""Students of any learner, R at a time: a population, and a single student as a population of one.

:class:`Population` holds R students (rows) of one :class:`StudentConfig`: one learner
(:mod:`~metacurriculum.student.learners`), one network shape. Each row has its own
meta-parameters (leaf tensors), its own ``torch.optim.Adam`` (the outer optimiser of
every learner, with its own step count, so a row reset mid-run restarts its Adam while
the others go on), its own seed and its own meta-batches. A meta-step takes one
meta-batch per row, for all rows or any subset; an evaluation adapts each row to its
own tasks. The rows run on the config's back-end
(:mod:`~metacurriculum.student.backends`):

* ``"grouped"`` (the CUDA default): the tasks of every row in one grouped call, each
  row's parameters copied to its tasks (``index_select``, so gradients flow back to
  their owner); the gradient of the sum over rows of each row's mean task loss is each
  row's own meta-gradient. Rows are split into chunks that fit the device's free memory
  (see :func:`meta_step_bytes`), or ``chunk_size`` rows per call; a CUDA out-of-memory
  error halves the chunks and retries. On the CPU (small networks: ``"auto"`` picks it
  there at 16 filters or fewer) each row's tasks are grouped alone, so a row computes the
  very bits it would alone.
* ``"loop"`` (the CPU default) and ``"vmap"``: one row after another.

:class:`MetaLearner` is one student: a population of one row, with the single-student
calls (``meta_step(batch)``, ``evaluate(batch)``, ``save``/``load``). A row saved with
:meth:`Population.save_row` is an ordinary :class:`MetaLearner` checkpoint and the
other way round, and a population of R rows computes what R separate students would.

Example:
    >>> config = StudentConfig(n_max=5, device="cpu", learner="anil")
    >>> population = Population(config, seeds=[0, 1, 2])
    >>> metrics = population.meta_step([batch0, batch1, batch2])  # one dict per row
    >>> curves = population.evaluate([val0, val1, val2])  # one Evaluation per row
    >>> population.save_row(1, "student1.pt")
    >>> student = MetaLearner.load("student1.pt")  # row 1, alone
"""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from metacurriculum.student import backends
from metacurriculum.student.backends import STATS, Ops, Stats
from metacurriculum.student.batch import MetaBatch
from metacurriculum.student.config import StudentConfig, resolve_batching
from metacurriculum.student.learners import Learner
from metacurriculum.student.network import Params
from metacurriculum.student.settings import LEARNERS

#: Fraction of the free device memory (CUDA) or available RAM (CPU) a grouped call may plan on.
MEMORY_FRACTION = 0.5
#: Tasks per grouped evaluation call on the CPU: more only adds memory traffic (measured on a
#: 16-filter net, 100 tasks of 75 queries: 8 tasks a call 1.4x faster than 100).
CPU_EVALUATION_CHUNK = 8
#: Fields that fix the parameters' shapes: a checkpoint only loads into a student that agrees.
SHAPE_FIELDS = ("n_max", "in_channels", "image_size", "hidden", "depth", "learner")


@dataclass(frozen=True)
class Evaluation:
    """Query loss and accuracy before adaptation (index 0) and after each inner step.

    Attributes:
        query_loss: ``[steps + 1]`` mean over tasks of the query loss.
        query_acc: ``[steps + 1]`` mean over tasks of the query accuracy.
        task_query_loss: ``[T, steps + 1]`` query loss of each task.
        task_query_acc: ``[T, steps + 1]`` query accuracy of each task.
        n_way: ``[T]`` the number of classes of each task.
    """

    query_loss: np.ndarray
    query_acc: np.ndarray
    task_query_loss: np.ndarray
    task_query_acc: np.ndarray
    n_way: np.ndarray

    @classmethod
    def from_curves(cls, losses: Tensor, accuracies: Tensor, n_way: Tensor) -> Evaluation:
        """The evaluation of ``[T, steps + 1]`` loss and accuracy curves of tasks of ``n_way``."""
        losses_np = losses.double().cpu().numpy()
        accuracies_np = accuracies.double().cpu().numpy()
        return cls(
            query_loss=losses_np.mean(axis=0),
            query_acc=accuracies_np.mean(axis=0),
            task_query_loss=losses_np,
            task_query_acc=accuracies_np,
            n_way=n_way.cpu().numpy(),
        )


def prepare_batch(config: StudentConfig, batch: MetaBatch) -> MetaBatch:
    """``batch`` on the student's device and dtype, after checking that it fits the net.

    Raises:
        ValueError: If the images' shape or the tasks' ``n_way`` do not fit ``config``.
    """
    expected = (config.in_channels, config.image_size, config.image_size)
    for name in ("support_x", "query_x"):
        shape = tuple(getattr(batch, name).shape[2:])
        if shape != expected:
            raise ValueError(
                f"MetaBatch.{name} has images of shape {shape} but the student expects "
                f"{expected} (in_channels, image_size, image_size); resize the data or "
                "change the StudentConfig."
            )
    n_low, n_high = int(batch.n_way.min()), int(batch.n_way.max())
    if n_low < 1 or n_high > config.n_max:
        raise ValueError(
            f"MetaBatch.n_way ranges over {n_low}..{n_high} but the student has "
            f"n_max={config.n_max} logits; tasks need 1 <= n <= n_max."
        )
    return batch.to(config.torch_device, config.torch_dtype)


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


def _bytes_per_example(config: StudentConfig) -> int:
    """Four maps of each block's conv-output size: the activations autograd keeps."""
    side, maps = config.image_size, 0
    for _ in range(config.depth):
        maps += config.hidden * side * side
        side //= 2
    return 4 * maps * torch.empty((), dtype=config.torch_dtype).element_size()


def meta_step_bytes(config: StudentConfig, learner: Learner, batch: MetaBatch) -> int:
    """An estimate, on the generous side, of the memory one task of ``batch`` takes in a
    grouped meta-step: :func:`_bytes_per_example` times the learner's
    :meth:`~metacurriculum.student.learners.Learner.work`.

    Calibrated with MAML on the CPU at Omniglot 20-way 1-shot, 15 queries, 5 inner
    steps, float32: measured 386 MiB per task at second order and 276 MiB at first
    order (``benchmarks/experiments/population_speed.py``), estimated 608 and 405 MiB.
    """
    support, query = batch.support_mask.shape[1], batch.query_mask.shape[1]
    return _bytes_per_example(config) * learner.work(support, query)


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


def upgrade_checkpoint_config(saved: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's stored config in today's form: one written before learners existed
    held MAML's settings as fields of its own (it is a ``maml`` student)."""
    saved = dict(saved)
    if "learner" not in saved:
        saved["learner"] = "maml"
        saved["learner_kwargs"] = {
            name: saved.pop(name)
            for name in ("inner_lr", "inner_steps", "first_order")
            if name in saved
        }
    return saved


@dataclass
class _Row:
    """One student of a population: its meta-parameters (leaves), its Adam, its meta-steps."""

    params: Params
    optimizer: torch.optim.Adam
    meta_steps: int = 0


class Population:
    """R students of one learner and network, trained and evaluated together.

    Args:
        config: The students' shared configuration (learner, network, Adam, device).
            ``config.batching`` picks the back-end: ``"grouped"`` (every row's tasks in
            one grouped call), ``"loop"`` or ``"vmap"`` (one row after another), or
            ``"auto"`` (grouped on CUDA, the loop on the CPU).
        seeds: One seed per row (an int or a ``torch.Generator``). An int seed draws on
            the CPU, so that it gives the same initial network on every device.
        chunk_size: Rows per grouped call; ``None`` sizes the chunks to the device's
            free memory (and halves them on a CUDA out-of-memory error).

    Attributes:
        config: The configuration.
        learner: The learner (:mod:`~metacurriculum.student.learners`).
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
        self.learner: Learner = LEARNERS.lookup(config.learner).build(config.settings)
        self.device = config.torch_device
        self.dtype = config.torch_dtype
        self.batching = config.resolved_batching
        self.chunk_size = chunk_size
        #: Whether grouped calls merge rows (on CUDA); on the CPU each row is grouped alone,
        #: computing the very bits it would alone.
        self.merge_rows = self.device.type != "cpu"
        self.ops = Ops(
            config.bn_eps, channels_last=config.channels_last, task_threads=config.task_threads
        )
        self._chunk_cap: int | None = None
        self._rows = [self._fresh(seed) for seed in seeds]

    # -- the rows --------------------------------------------------------------------

    @property
    def size(self) -> int:
        """The number of rows R."""
        return len(self._rows)

    @property
    def meta_steps(self) -> list[int]:
        """Meta-steps taken by each row."""
        return [row.meta_steps for row in self._rows]

    @property
    def params(self) -> dict[str, Tensor]:
        """Every row's meta-parameters stacked, ``[R, ...]`` per name (a detached copy)."""
        names = self._rows[0].params
        return {name: torch.stack([r.params[name].detach() for r in self._rows]) for name in names}

    def row_params(self, row: int) -> Params:
        """Row ``row``'s meta-parameters: the leaf tensors themselves."""
        return self._rows[self._check_rows([row], 1)[0]].params

    def row_optimizer(self, row: int) -> torch.optim.Adam:
        """Row ``row``'s Adam."""
        return self._rows[self._check_rows([row], 1)[0]].optimizer

    # -- training --------------------------------------------------------------------

    def meta_gradient(
        self,
        batches: Sequence[MetaBatch],
        rows: Sequence[int] | None = None,
        batching: str | None = None,
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Each row's meta-gradient on its own batch; no optimiser step.

        Args:
            batches: One meta-batch per row of ``rows``.
            rows: The rows, in the order of ``batches``; ``None`` is all of them.
            batching: The back-end (``"loop"``, ``"vmap"``, ``"grouped"``, ``"auto"``);
                ``None`` uses the config's. Every one gives the same gradient (up to
                rounding); they differ in speed and memory.

        Returns:
            The gradients, ``[len(rows), ...]`` per name, and per row the mean over its
            tasks of ``query_loss``, ``query_acc`` and ``support_loss``.
        """
        rows = self._check_rows(rows, len(batches))
        grads, stats = self._gradients(self._prepare(batches), rows, batching)
        return (
            {name: torch.stack([g[name] for g in grads]) for name in grads[0]},
            {name: torch.stack([s[name].mean() for s in stats]) for name in STATS},
        )

    def meta_step(
        self, batches: Sequence[MetaBatch], rows: Sequence[int] | None = None
    ) -> list[dict[str, float]]:
        """One meta-training step of each row of ``rows`` on its own meta-batch.

        Returns:
            Per row: ``student/query_loss`` and ``student/query_acc`` (after adaptation),
            ``student/support_loss`` (before adaptation), each a mean over its tasks, and
            ``student/grad_norm``, the L2 norm of its outer gradient.
        """
        rows = self._check_rows(rows, len(batches))
        grads, stats = self._gradients(self._prepare(batches), rows, None)
        values = []
        for row, row_grads, row_stats in zip(rows, grads, stats, strict=True):
            student = self._rows[row]
            for name, p in student.params.items():
                p.grad = row_grads[name]
            grad_norm = torch.linalg.vector_norm(
                torch.stack([g.norm() for g in row_grads.values()])
            )
            student.optimizer.step()
            student.optimizer.zero_grad(set_to_none=True)
            student.meta_steps += 1
            values.append(torch.stack([*(row_stats[name].mean() for name in STATS), grad_norm]))
        names = (*STATS, "grad_norm")
        return [
            {f"student/{name}": value for name, value in zip(names, row, strict=True)}
            for row in torch.stack(values).tolist()
        ]

    # -- evaluation ------------------------------------------------------------------

    def evaluate(
        self,
        batches: Sequence[MetaBatch],
        rows: Sequence[int] | None = None,
        inner_steps: int | None = None,
        chunk_size: int | None = None,
        batching: str | None = None,
        final_only: bool = False,
    ) -> list[Evaluation]:
        """Adapt each row to its tasks; the query loss and accuracy after every inner step.

        The meta-parameters are not changed. This is the curve of the paper's Figure 1.

        Args:
            batches: One batch of tasks per row of ``rows`` (any number of tasks).
            rows: The rows; ``None`` is all of them.
            inner_steps: Inner steps to take; ``None`` uses the learner's
                (``inner_steps``; 0 for a learner without an inner loop, whose curve is
                then the one value).
            chunk_size: Tasks per vmap or grouped call; ``None`` gives vmap 32 and fits
                the grouped path's calls to free memory.
            batching: The back-end; ``None`` uses the config's.
            final_only: Measure only after the last inner step (one point per task: what
                a measurement of the adapted student needs, at a fraction of the cost).

        Returns:
            One :class:`Evaluation` per row, ``steps + 1`` points each (1 with
            ``final_only``).
        """
        rows = self._check_rows(rows, len(batches))
        steps = self.learner.eval_steps if inner_steps is None else inner_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"evaluate(inner_steps={inner_steps!r}) must be an int >= 0.")
        if chunk_size is not None and (isinstance(chunk_size, bool) or chunk_size < 1):
            raise ValueError(f"evaluate(chunk_size={chunk_size!r}) must be None or >= 1.")
        batches = self._prepare(batches)
        batching = self._batching(batching)
        ops = self.ops
        if batching == "grouped" and not self.merge_rows and len(rows) > 1:
            # One row at a time, as it would be evaluated alone: the same bits (rows merged
            # in one grouped call round differently) and no gain on the CPU.
            return [
                self.evaluate([b], [r], inner_steps, chunk_size, batching, final_only)[0]
                for r, b in zip(rows, batches, strict=True)
            ]
        if batching != "grouped":
            results = []
            for row, batch in zip(rows, batches, strict=True):
                params = self._rows[row].params
                if batching == "vmap":
                    curve = backends.vmap_curves(
                        self.learner, params, batch, ops, steps, chunk_size or 32, final_only
                    )
                else:
                    curve = backends.loop_curves(
                        self.learner, params, batch, ops, steps, final_only
                    )
                results.append(Evaluation.from_curves(*curve, batch.n_way))
            return results
        batch, owner, counts = self._merged(batches)
        if chunk_size is None:
            support, query = batch.support_mask.shape[1], batch.query_mask.shape[1]
            per_task = _bytes_per_example(self.config) * (steps * support + query)
            chunk_size = self._fit(per_task, batch.num_tasks)
            if self.device.type == "cpu":
                chunk_size = min(chunk_size, CPU_EVALUATION_CHUNK)
        stacked = self._stacked(rows, detach=True)
        losses, accuracies = backends.grouped_curves(
            self.learner, stacked, batch, ops, steps, chunk_size, owner, final_only
        )
        splits = counts.tolist()
        return [
            Evaluation.from_curves(loss, accuracy, b.n_way)
            for loss, accuracy, b in zip(
                losses.split(splits), accuracies.split(splits), batches, strict=True
            )
        ]

    # -- rows as checkpoints ---------------------------------------------------------

    def row_state_dict(self, row: int) -> dict[str, Any]:
        """Everything needed to resume row ``row`` as a student of its own: config,
        meta-parameters, Adam state, meta-steps (an ordinary :class:`MetaLearner` checkpoint)."""
        student = self._rows[self._check_rows([row], 1)[0]]
        return {
            "config": self.config.to_dict(),
            "params": {name: p.detach().clone() for name, p in student.params.items()},
            # A copy: torch's state_dict shares Adam's moment buffers, which steps change.
            "optimizer": copy.deepcopy(student.optimizer.state_dict()),
            "meta_steps": student.meta_steps,
        }

    def load_row(self, row: int, state: dict[str, Any]) -> None:
        """Make row ``row`` the student of a checkpoint (:meth:`row_state_dict`, or one
        written before learners existed).

        The population keeps its own config (device, dtype, Adam's rate); the saved
        network shape and learner must match it.

        Raises:
            ValueError: If the saved shape, learner or Adam rate differ from this one's.
        """
        row = self._check_rows([row], 1)[0]
        saved = upgrade_checkpoint_config(state["config"])
        for name in SHAPE_FIELDS:
            if saved[name] != getattr(self.config, name):
                raise ValueError(
                    f"Cannot load a student with {name}={saved[name]!r} into one with "
                    f"{name}={getattr(self.config, name)!r}; build the student from the saved "
                    "config (MetaLearner.load does)."
                )
        lr = state["optimizer"]["param_groups"][0]["lr"]
        if lr != self.config.meta_lr:
            raise ValueError(
                f"Cannot load a student whose Adam has lr={lr} into one with "
                f"meta_lr={self.config.meta_lr}; build it from the saved config."
            )
        student = self._rows[row]
        with torch.no_grad():
            for name, p in student.params.items():
                p.copy_(state["params"][name])
        student.optimizer.load_state_dict(state["optimizer"])
        student.meta_steps = int(state["meta_steps"])

    def reset_row(self, row: int, seed: int | torch.Generator) -> None:
        """Replace row ``row`` with a fresh student, as ``MetaLearner(config, seed)`` starts."""
        self._rows[self._check_rows([row], 1)[0]] = self._fresh(seed)

    def save_row(self, row: int, path: str | os.PathLike[str]) -> None:
        """Write :meth:`row_state_dict` to ``path`` atomically (a temporary file in the same
        folder, made durable, then renamed over ``path``), with the usual file mode."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = self.row_state_dict(row)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            os.fchmod(handle, 0o666 & ~_umask())
            with os.fdopen(handle, "wb") as file:
                torch.save(state, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    # -- internals -------------------------------------------------------------------

    def _fresh(self, seed: int | torch.Generator) -> _Row:
        if isinstance(seed, torch.Generator):
            generator = seed
        elif isinstance(seed, int) and not isinstance(seed, bool):
            generator = torch.Generator().manual_seed(seed)
        else:
            raise TypeError(f"a student's seed must be an int or a torch.Generator, got {seed!r}.")
        params = {
            name: value.to(self.device).requires_grad_()
            for name, value in self.learner.init_params(self.config, generator).items()
        }
        return _Row(params, torch.optim.Adam(params.values(), lr=self.config.meta_lr))

    def _check_rows(self, rows: Sequence[int] | None, count: int) -> list[int]:
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

    def _prepare(self, batches: Sequence[MetaBatch]) -> list[MetaBatch]:
        return [prepare_batch(self.config, b) for b in batches]

    def _batching(self, batching: str | None) -> str:
        if batching is None:
            return self.batching
        return resolve_batching(batching, self.device, self.config.hidden)

    def _stacked(self, rows: list[int], detach: bool = False) -> Params:
        names = self._rows[rows[0]].params
        return {
            name: torch.stack(
                [
                    self._rows[r].params[name].detach() if detach else self._rows[r].params[name]
                    for r in rows
                ]
            )
            for name in names
        }

    def _merged(self, batches: list[MetaBatch]) -> tuple[MetaBatch, Tensor, Tensor]:
        """All tasks in one batch, each task's row (position in ``batches``), tasks per row."""
        counts = torch.tensor([b.num_tasks for b in batches], device=self.device)
        owner = torch.repeat_interleave(torch.arange(len(batches), device=self.device), counts)
        return concat_batches(batches), owner, counts

    def _fit(self, bytes_per_item: int, items: int) -> int:
        """How many items (rows or tasks) of ``bytes_per_item`` fit the free memory."""
        free = free_memory_bytes(self.device)
        fit = items if free is None else int(free * MEMORY_FRACTION // max(bytes_per_item, 1))
        return max(1, min(fit, items))

    def _gradients(
        self, batches: list[MetaBatch], rows: list[int], batching: str | None
    ) -> tuple[list[Params], list[Stats]]:
        """Per row, its meta-gradient and per-task statistics."""
        batching = self._batching(batching)
        if batching == "grouped":
            return self._grouped_gradients(batches, rows)
        path = backends.vmap_meta_gradient if batching == "vmap" else backends.loop_meta_gradient
        results = [
            path(self.learner, self._rows[row].params, batch, self.ops)
            for row, batch in zip(rows, batches, strict=True)
        ]
        return [r[0] for r in results], [r[1] for r in results]

    def _row_chunk(self, batches: list[MetaBatch]) -> int:
        if self.chunk_size is not None:
            return min(self.chunk_size, len(batches))
        if not self.merge_rows:  # a row alone: the same bits as a student alone
            return 1
        per_row = max(meta_step_bytes(self.config, self.learner, b) * b.num_tasks for b in batches)
        chunk = self._fit(per_row, len(batches))
        return chunk if self._chunk_cap is None else min(chunk, self._chunk_cap)

    def _grouped_gradients(
        self, batches: list[MetaBatch], rows: list[int]
    ) -> tuple[list[Params], list[Stats]]:
        grads: list[Params] = []
        stats: list[Stats] = []
        chunk, start = self._row_chunk(batches), 0
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
            grads += chunk_grads
            stats += chunk_stats
            start = stop
        return grads, stats

    def _grouped_chunk(
        self, batches: list[MetaBatch], rows: list[int]
    ) -> tuple[list[Params], list[Stats]]:
        batch, owner, counts = self._merged(batches)
        stacked = self._stacked(rows)
        task_params = {name: p.index_select(0, owner) for name, p in stacked.items()}
        loss, task_stats = backends.grouped_outer_losses(self.learner, task_params, batch, self.ops)
        # The sum over rows of each row's mean task loss: each row's own gradient.
        weights = counts.to(loss.dtype).reciprocal().index_select(0, owner)
        leaves = [p for r in rows for p in self._rows[r].params.values()]
        flat = torch.autograd.grad((loss * weights).sum(), leaves, materialize_grads=True)
        names = list(self._rows[rows[0]].params)
        grads = [
            dict(zip(names, flat[i * len(names) : (i + 1) * len(names)], strict=True))
            for i in range(len(rows))
        ]
        splits = counts.tolist()
        per_row = {name: task_stats[name].split(splits) for name in STATS}
        return grads, [{name: per_row[name][i] for name in STATS} for i in range(len(rows))]


class MetaLearner:
    """One student: a :class:`Population` of one row, with the single student's calls.

    Args:
        config: Network shape, learner, Adam, device and precision.
        seed: Seed of the private generator that initialises the meta-parameters, or the
            generator itself (parameters are drawn on its device). The global torch RNG
            is never touched. An int seed draws on the CPU, so it gives the same initial
            network on every device.

    Attributes:
        population: The population of one it is.
    """

    def __init__(self, config: StudentConfig, seed: int | torch.Generator = 0) -> None:
        self.population = Population(config, [seed])

    @property
    def config(self) -> StudentConfig:
        """The configuration."""
        return self.population.config

    @property
    def learner(self) -> Learner:
        """The learner."""
        return self.population.learner

    @property
    def device(self) -> torch.device:
        """The device it runs on."""
        return self.population.device

    @property
    def dtype(self) -> torch.dtype:
        """The precision of its parameters."""
        return self.population.dtype

    @property
    def params(self) -> Params:
        """The meta-parameters: leaf tensors by name."""
        return self.population.row_params(0)

    @property
    def optimizer(self) -> torch.optim.Adam:
        """Adam over :attr:`params`."""
        return self.population.row_optimizer(0)

    @property
    def meta_steps(self) -> int:
        """Meta-steps taken so far."""
        return self.population.meta_steps[0]

    def meta_gradient(self, batch: MetaBatch, batching: str | None = None) -> dict[str, Tensor]:
        """The meta-gradient on ``batch`` (see :meth:`Population.meta_gradient`); no step."""
        grads, _ = self.population._gradients(self.population._prepare([batch]), [0], batching)
        return grads[0]

    def meta_step(self, batch: MetaBatch) -> dict[str, float]:
        """One meta-training step (see :meth:`Population.meta_step`)."""
        return self.population.meta_step([batch])[0]

    def evaluate(
        self,
        batch: MetaBatch,
        inner_steps: int | None = None,
        chunk_size: int = 32,
        batching: str | None = None,
    ) -> Evaluation:
        """Adapt to each task of ``batch`` (see :meth:`Population.evaluate`)."""
        return self.population.evaluate([batch], None, inner_steps, chunk_size, batching)[0]

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: config, meta-parameters, Adam state, meta-steps."""
        return self.population.row_state_dict(0)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (see :meth:`Population.load_row`)."""
        self.population.load_row(0, state)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`state_dict` to ``path`` atomically."""
        self.population.save_row(0, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | None = None) -> MetaLearner:
        """A student rebuilt from a file written by :meth:`save` (or by
        :meth:`Population.save_row`, or before learners existed).

        Args:
            path: The checkpoint.
            device: Overrides the saved config's device (e.g. ``"cpu"`` to open a
                checkpoint written on a GPU machine); ``None`` keeps it.
        """
        state = torch.load(path, map_location="cpu", weights_only=True)
        fields = upgrade_checkpoint_config(state["config"])
        if device is not None:
            fields["device"] = device
        student = cls(StudentConfig(**fields))
        student.load_state_dict(state)
        return student


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
