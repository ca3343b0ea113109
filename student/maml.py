"""The MAML student: meta-training steps, evaluation curves, and checkpoints.

``MAML`` holds the network's parameters as a dict of leaf tensors and an Adam
meta-optimiser over them. A meta-step adapts a copy of the parameters to each
task of a meta-batch with ``inner_steps`` SGD steps on its support set,
measures the adapted parameters' loss on its query set, and takes an Adam step
on the gradient of the mean of those losses over tasks (through the inner
loop: second-order, or first-order with ``first_order=True``).

Batch norm always uses the statistics of the batch it normalises, as in MAML:
the support set's during the inner loop and the query set's for the query
loss.

The tasks of a meta-batch run one of three ways (``config.batching``), all
equal to the plain reference in float64: a per-task loop
(:mod:`~metacurriculum.student.adaptation`, the CPU default), one
``torch.func.vmap`` call (same module), or grouped ops
(:mod:`~metacurriculum.student.grouped`, the CUDA default).

Example:
    >>> student = MAML(StudentConfig(n_max=5, device="cpu"), seed=0)
    >>> metrics = student.meta_step(meta_batch)  # {"student/query_loss": ...}
    >>> curve = student.evaluate(validation_batch).query_loss  # before and after each step
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from metacurriculum.student.adaptation import (
    InnerLoop,
    TaskStats,
    loop_curves,
    loop_meta_gradient,
    vmap_curves,
    vmap_meta_gradient,
)
from metacurriculum.student.batch import MetaBatch
from metacurriculum.student.config import StudentConfig, resolve_batching
from metacurriculum.student.grouped import grouped_curves, grouped_meta_gradient
from metacurriculum.student.network import init_params

# Fields that fix the parameters' shapes: a checkpoint only loads into a student that agrees.
_SHAPE_FIELDS = ("n_max", "in_channels", "image_size", "hidden", "depth")


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


def check_same_shape(saved: dict[str, Any], config: StudentConfig, into: str, fix: str) -> None:
    """Raise unless a saved student's network shape (:data:`_SHAPE_FIELDS`) equals ``config``'s.

    Args:
        saved: The saved student's config, as a dict.
        config: The config of what it is loaded into.
        into: What it is loaded into, for the message (``"one"``, ``"a population"``).
        fix: The end of the message, saying what to do (``"."`` for nothing more).
    """
    for name in _SHAPE_FIELDS:
        if saved[name] != getattr(config, name):
            raise ValueError(
                f"Cannot load a student with {name}={saved[name]} into {into} with "
                f"{name}={getattr(config, name)}{fix}"
            )


class MAML:
    """A MAML meta-learner on MAML's Omniglot conv net, trained with Adam.

    Args:
        config: Network shape, hyper-parameters, device and precision.
        seed: Seed of the private generator that initialises the parameters, or
            the generator itself (parameters are drawn on its device). The global
            torch RNG is never touched. An int seed draws on the CPU, so that it
            gives the same initial network on every device.

    Attributes:
        config: The configuration.
        params: The meta-parameters, leaf tensors by name.
        optimizer: Adam over ``params``.
        meta_steps: Meta-steps taken so far.
    """

    def __init__(self, config: StudentConfig, seed: int | torch.Generator = 0) -> None:
        if isinstance(seed, torch.Generator):
            generator = seed
        elif isinstance(seed, int) and not isinstance(seed, bool):
            generator = torch.Generator().manual_seed(seed)
        else:
            raise TypeError(f"MAML seed must be an int or a torch.Generator, got {seed!r}.")
        self.config = config
        self.device = config.torch_device
        self.dtype = config.torch_dtype
        self.params = {
            name: value.to(self.device).requires_grad_()
            for name, value in init_params(config, generator).items()
        }
        self.optimizer = torch.optim.Adam(self.params.values(), lr=config.meta_lr)
        self.meta_steps = 0

    def meta_gradient(self, batch: MetaBatch, batching: str | None = None) -> dict[str, Tensor]:
        """The gradient of the mean post-adaptation query loss; no optimiser step.

        Args:
            batch: The meta-batch (moved to the student's device and dtype).
            batching: ``"loop"``, ``"vmap"``, ``"grouped"`` or ``"auto"``; ``None``
                uses the config's. Every choice gives the same gradient (up to
                rounding); they differ in speed and memory.

        Returns:
            The meta-gradient per parameter name.
        """
        return self._meta_gradient(batch, batching)[0]

    def meta_step(self, batch: MetaBatch) -> dict[str, float]:
        """One meta-training step: adapt to every task, then an Adam step on the meta-gradient.

        Args:
            batch: The meta-batch (moved to the student's device and dtype).

        Returns:
            ``student/query_loss`` and ``student/query_acc`` (after adaptation),
            ``student/support_loss`` (before adaptation), each a mean over tasks,
            and ``student/grad_norm``, the meta-gradient's L2 norm.
        """
        grads, stats = self._meta_gradient(batch, None)
        for name, p in self.params.items():
            p.grad = grads[name]
        grad_norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads.values()]))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.meta_steps += 1
        values = torch.stack(
            [
                stats["query_loss"].mean(),
                stats["query_acc"].mean(),
                stats["support_loss"].mean(),
                grad_norm,
            ]
        ).tolist()
        names = ("query_loss", "query_acc", "support_loss", "grad_norm")
        return {f"student/{name}": value for name, value in zip(names, values, strict=True)}

    def evaluate(
        self,
        batch: MetaBatch,
        inner_steps: int | None = None,
        chunk_size: int = 32,
        batching: str | None = None,
    ) -> Evaluation:
        """Adapt to each task and record its query loss and accuracy after every inner step.

        The meta-parameters are not changed. Use meta-validation or meta-test
        tasks; this is the curve of the paper's Figure 1.

        Args:
            batch: The tasks (any number: they are processed in chunks).
            inner_steps: Inner steps to take; ``None`` uses ``config.inner_steps``.
            chunk_size: Tasks per vectorized call on the vmap and grouped paths
                (the loop takes one at a time); lower it if memory runs short.
            batching: ``"loop"``, ``"vmap"``, ``"grouped"`` or ``"auto"``; ``None``
                uses the config's.

        Returns:
            The curves, ``inner_steps + 1`` points each.
        """
        steps = self.config.inner_steps if inner_steps is None else inner_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"evaluate(inner_steps={inner_steps!r}) must be an int >= 0.")
        if chunk_size < 1:
            raise ValueError(f"evaluate(chunk_size={chunk_size!r}) must be >= 1.")
        inner = dataclasses.replace(self._inner_loop(), steps=steps)
        batch = self._prepare(batch)
        batching = self._batching(batching)
        if batching == "vmap":
            losses, accuracies = vmap_curves(self.params, batch, inner, chunk_size)
        elif batching == "grouped":
            losses, accuracies = grouped_curves(self.params, batch, inner, chunk_size)
        else:
            losses, accuracies = loop_curves(self.params, batch, inner)
        return Evaluation.from_curves(losses, accuracies, batch.n_way)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: config, parameters, Adam state, meta-step count."""
        return {
            "config": dataclasses.asdict(self.config),
            "params": {name: p.detach().clone() for name, p in self.params.items()},
            "optimizer": self.optimizer.state_dict(),
            "meta_steps": self.meta_steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore parameters, Adam state and meta-step count from :meth:`state_dict`.

        The student keeps its own config (device, dtype, hyper-parameters); the
        saved network shape must match it.

        Raises:
            ValueError: If the saved network shape differs from this student's.
        """
        check_same_shape(
            state["config"],
            self.config,
            "one",
            "; build the student from the saved config (MAML.load does).",
        )
        with torch.no_grad():
            for name, p in self.params.items():
                p.copy_(state["params"][name])
        self.optimizer.load_state_dict(state["optimizer"])
        self.meta_steps = int(state["meta_steps"])

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`state_dict` to ``path`` atomically (a temporary file, then a rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(handle, "wb") as file:
                torch.save(self.state_dict(), file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | None = None) -> MAML:
        """A student rebuilt from a file written by :meth:`save`.

        Args:
            path: The checkpoint.
            device: Overrides the saved config's device (e.g. ``"cpu"`` to open a
                checkpoint written on a GPU machine); ``None`` keeps it.
        """
        state = torch.load(path, map_location="cpu", weights_only=True)
        fields = dict(state["config"])
        if device is not None:
            fields["device"] = device
        student = cls(StudentConfig(**fields))
        student.load_state_dict(state)
        return student

    def _batching(self, batching: str | None) -> str:
        return resolve_batching(self.config.batching if batching is None else batching, self.device)

    def _inner_loop(self) -> InnerLoop:
        config = self.config
        return InnerLoop(config.inner_lr, config.inner_steps, config.first_order, config.bn_eps)

    def _prepare(self, batch: MetaBatch) -> MetaBatch:
        return prepare_batch(self.config, batch)

    def _meta_gradient(
        self, batch: MetaBatch, batching: str | None
    ) -> tuple[dict[str, Tensor], TaskStats]:
        batch = self._prepare(batch)
        batching = self._batching(batching)
        if batching == "vmap":
            return vmap_meta_gradient(self.params, batch, self._inner_loop())
        if batching == "grouped":
            return grouped_meta_gradient(self.params, batch, self._inner_loop())
        return loop_meta_gradient(self.params, batch, self._inner_loop())
