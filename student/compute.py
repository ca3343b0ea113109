"""The compute of a student's work: floating-point operations, counted by torch.

The unit is the FLOP as :class:`torch.utils.flop_counter.FlopCounterMode` counts it:
the matrix products and convolutions of the forward and backward passes (a
multiply-add is 2 FLOPs; a second-order learner's double backward is counted too).
Elementwise work (batch norm, ReLU, pooling, the loss, Adam's update) is not: on the
conv net it is under 1% of the count (a 3x3 convolution of 64 filters costs about
1150 FLOPs per output value, batch norm and ReLU a handful).

A task's FLOPs are counted, not estimated: its learner (with its settings, on its
network) runs once under ``FlopCounterMode`` on a task of the size asked for (``n``
classes, ``n * k`` support and ``n * q`` query images; zeros, as FLOPs do not depend on
the values), on the CPU in float32 and channels-first, as the ``loop`` back-end runs
one exact task. That is the student's work wherever it runs: the ``grouped`` and
``vmap`` back-ends also compute on the padding of a batch that mixes ``n`` (overhead of
the kernels, not charged), and the CPU's channels-last layout makes a second-order
learner's first convolution a patch product whose double backward counts about 4% less.
Three kinds of work are counted (:data:`KINDS`):

- ``"meta_step"``: a task's share of a meta-step, its outer loss and the gradient of it
  with respect to the meta-parameters (:meth:`Learner.outer_losses` and its backward);
- ``"measure"``: a post-adaptation measurement (the env's validation and target
  measurements: :meth:`Learner.curves` with ``final_only``);
- ``"evaluate"``: the final evaluation's whole adaptation curve.

A task's FLOPs are a quadratic polynomial in ``n`` at fixed ``k`` and ``q`` (the conv
body and the head are linear in the number of images, ``n (k + q)``; ProtoNets'
prototypes and distances add ``n^2`` terms), so :func:`task_flops` counts ``n = 1, 2,
3`` and checks the quadratic through them by a fourth count at ``n = 4``: where it holds
(every learner here), every ``n`` follows exactly, in integers; where it does not (a
learner of your own with other terms), each ``n`` is counted on its own. Counts are
kept per process, and the quadratics of the registered ids' students ship in
:data:`~metacurriculum.student.flop_table.COUNTED` (recounted by the tests), so that
the analytic envs report their compute without importing torch and a run needs no
count at its start.

Example:
    >>> compute = StudentCompute.of(StudentConfig(n_max=20), k_shot=1, q_query=15)
    >>> compute.meta_step([20] * 8)  # a meta-step of 8 twenty-way tasks (MAML, Table I)
    277652275200
    >>> compute.meta_step([2] * 8) / compute.meta_step([20] * 8)
    0.1
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from metacurriculum.student.flop_table import COUNTED

if TYPE_CHECKING:
    from metacurriculum.student.config import StudentConfig

__all__ = ["KINDS", "StudentCompute", "count_task_flops", "network_fields", "task_flops"]

#: The kinds of work counted (see the module's docstring).
KINDS = ("meta_step", "measure", "evaluate")
#: The sizes counted to fix a task's quadratic in ``n``, and the one that checks it.
FIT_SIZES = (1, 2, 3)
CHECK_SIZE = 4
#: The fields of a :class:`StudentConfig` that a task's FLOPs depend on.
NETWORK_FIELDS = ("n_max", "in_channels", "image_size", "hidden", "depth", "learner")

_lock = threading.Lock()
#: (network key, kind, k, q) -> the quadratic's values at n = 1, 2, 3, or None (not quadratic).
_fits: dict[tuple[Any, ...], tuple[int, int, int] | None] = {}
#: (network key, kind, n, k, q) -> counted FLOPs.
_counts: dict[tuple[Any, ...], int] = {}


def network_fields(
    n_max: int,
    hidden: int,
    depth: int,
    learner: str,
    learner_kwargs: Mapping[str, Any],
    in_channels: int = 1,
    image_size: int = 28,
) -> dict[str, Any]:
    """What a task's FLOPs depend on: the network's shape and the learner with every one of
    its settings (as a :class:`StudentConfig` resolves them), as JSON-able values."""
    return {
        "n_max": int(n_max),
        "in_channels": int(in_channels),
        "image_size": int(image_size),
        "hidden": int(hidden),
        "depth": int(depth),
        "learner": str(learner),
        "learner_kwargs": dict(learner_kwargs),
    }


def network_key(fields: Mapping[str, Any]) -> str:
    """The key of a network in the caches and in :data:`COUNTED`: its fields as sorted JSON."""
    return json.dumps(dict(fields), sort_keys=True)


def count_task_flops(
    fields: Mapping[str, Any], kind: str, n: int, k_shot: int, q_query: int
) -> int:
    """Count, with ``FlopCounterMode``, the FLOPs of one task of ``kind`` (see :data:`KINDS`)
    with ``n`` classes, ``n * k_shot`` support and ``n * q_query`` query images, for the
    network and learner of ``fields`` (:func:`network_fields`).

    This runs the task (on the CPU, zeros as images; imports torch); :func:`task_flops`
    caches it and needs four counts per kind and task shape.

    Raises:
        ValueError: for an unknown ``kind`` or sizes below 1.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from metacurriculum.student.backends import Ops
    from metacurriculum.student.config import StudentConfig
    from metacurriculum.student.settings import LEARNERS

    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not one of {KINDS}.")
    for name, value in (("n", n), ("k_shot", k_shot), ("q_query", q_query)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be an integer >= 1.")
    config = StudentConfig(
        **fields, device="cpu", dtype="float32", memory_format="contiguous", batching="loop"
    )
    learner = LEARNERS.lookup(config.learner).build(config.settings)
    init = learner.init_params(config, torch.Generator().manual_seed(0))
    params = {name: p.unsqueeze(0).requires_grad_() for name, p in init.items()}
    tasks = _zero_task(config, n, n * k_shot, n * q_query)
    ops = Ops(config.bn_eps)
    with FlopCounterMode(display=False) as counter, torch.enable_grad():
        if kind == "meta_step":
            loss, _ = learner.outer_losses(params, tasks, ops)
            torch.autograd.grad(loss.sum(), list(params.values()), materialize_grads=True)
        else:
            detached = {name: p.detach() for name, p in params.items()}
            learner.curves(detached, tasks, ops, learner.eval_steps, final_only=kind == "measure")
    return int(counter.get_total_flops())


def _zero_task(config: StudentConfig, n: int, support: int, query: int) -> Any:
    """One unpadded task of zeros: ``support`` and ``query`` images, labels 0."""
    import torch

    from metacurriculum.student.backends import Tasks

    image = (config.in_channels, config.image_size, config.image_size)
    support_x, query_x = torch.zeros(1, support, *image), torch.zeros(1, query, *image)
    support_y = torch.zeros(1, support, dtype=torch.long)
    query_y = torch.zeros(1, query, dtype=torch.long)
    n_way = torch.full((1,), n, dtype=torch.long)
    return Tasks(support_x, support_y, None, query_x, query_y, None, n_way, n, n)


def _counted(fields: Mapping[str, Any], key: str, kind: str, n: int, k: int, q: int) -> int:
    entry = (key, kind, n, k, q)
    if entry not in _counts:
        _counts[entry] = count_task_flops(fields, kind, n, k, q)
    return _counts[entry]


def fit(fields: Mapping[str, Any], kind: str, k_shot: int, q_query: int) -> list[int] | None:
    """A task's FLOPs at ``n = 1, 2, 3`` when they fix a quadratic that a count at ``n = 4``
    confirms, else ``None``: counted now (what :data:`COUNTED` holds)."""
    key = network_key(fields)
    values = [_counted(fields, key, kind, n, k_shot, q_query) for n in FIT_SIZES]
    check = _counted(fields, key, kind, CHECK_SIZE, k_shot, q_query)
    return values if quadratic(values, CHECK_SIZE) == check else None


def task_flops(fields: Mapping[str, Any], kind: str, n: int, k_shot: int, q_query: int) -> int:
    """The FLOPs of one task of ``kind`` with ``n`` classes (see :func:`count_task_flops`):
    from the quadratic of :data:`COUNTED` or of this process's counts (counted at ``n =
    1..4`` once per network, kind and ``k_shot``/``q_query``), exact for every ``n``; or
    counted for each ``n`` where the quadratic does not hold."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r} must be an integer >= 1 (a task's classes).")
    key = network_key(fields)
    fit_key = (key, kind, k_shot, q_query)
    with _lock:
        if fit_key not in _fits:
            shipped = _shipped().get(fit_key)
            found = shipped if shipped is not None else fit(fields, kind, k_shot, q_query)
            _fits[fit_key] = None if found is None else tuple(found)  # type: ignore[assignment]
        values = _fits[fit_key]
        if values is None:
            return _counted(fields, key, kind, n, k_shot, q_query)
    return quadratic(values, n)


def _shipped() -> dict[tuple[Any, ...], list[int]]:
    """:data:`COUNTED` by (network key, kind, k, q)."""
    return {
        (network_key(e["network"]), e["kind"], e["k_shot"], e["q_query"]): e["flops_at_n_1_2_3"]
        for e in COUNTED
    }


def quadratic(values: Iterable[int], n: int) -> int:
    """The quadratic through ``(1, a), (2, b), (3, c)`` at ``n``, by Newton's forward
    differences: exact in integers (``(n - 1)(n - 2)`` is even)."""
    a, b, c = values
    first, second = b - a, c - 2 * b + a
    return a + first * (n - 1) + second * (n - 1) * (n - 2) // 2


@dataclass(frozen=True)
class StudentCompute:
    """The FLOPs of a student's work on tasks of given sizes (see the module's docstring).

    Args:
        network: the student's network and learner (:func:`network_fields`; device and
            precision do not change the count).
        k_shot: support images per class of every task.
        q_query: query images per class of training and measurement tasks.
        eval_q_query: query images per class of the final evaluation's tasks.
    """

    network: Mapping[str, Any] = field(hash=False)
    k_shot: int = 1
    q_query: int = 15
    eval_q_query: int = 15

    @classmethod
    def of(
        cls, config: StudentConfig, k_shot: int, q_query: int, eval_q_query: int | None = None
    ) -> StudentCompute:
        """The compute of a student of ``config`` (``eval_q_query`` defaults to ``q_query``)."""
        fields = {name: getattr(config, name) for name in NETWORK_FIELDS}
        fields = network_fields(**fields, learner_kwargs=config.learner_kwargs)
        return cls(fields, k_shot, q_query, q_query if eval_q_query is None else eval_q_query)

    def meta_step(self, n_way: Iterable[int]) -> int:
        """FLOPs of meta-training on tasks of ``n_way`` classes (one entry per task, the
        tasks of any number of meta-steps)."""
        return self._sum("meta_step", n_way, self.q_query)

    def measurement(self, n_way: Iterable[int]) -> int:
        """FLOPs of post-adaptation measurements of tasks of ``n_way`` classes."""
        return self._sum("measure", n_way, self.q_query)

    def evaluation(self, n_way: Iterable[int]) -> int:
        """FLOPs of the final evaluation (every inner step's loss) of tasks of ``n_way``."""
        return self._sum("evaluate", n_way, self.eval_q_query)

    def _sum(self, kind: str, n_way: Iterable[int], q_query: int) -> int:
        counts: dict[int, int] = {}
        for n in n_way:
            counts[int(n)] = counts.get(int(n), 0) + 1
        return sum(
            tasks * task_flops(self.network, kind, n, self.k_shot, q_query)
            for n, tasks in counts.items()
        )


def table_entries(
    networks: Iterable[tuple[Mapping[str, Any], int, int, int]],
) -> list[dict[str, Any]]:
    """:data:`COUNTED`'s entries for ``(network fields, k_shot, q_query, eval_q_query)``,
    counted now (the quadratics that hold; imports torch)."""
    entries = []
    for fields, k_shot, q_query, eval_q_query in networks:
        for kind in KINDS:
            q = eval_q_query if kind == "evaluate" else q_query
            values = fit(fields, kind, k_shot, q)
            if values is not None:
                entry = {"network": dict(fields), "kind": kind, "k_shot": k_shot, "q_query": q}
                entries.append({**entry, "flops_at_n_1_2_3": values})
    return entries


def registered_networks() -> list[tuple[dict[str, Any], int, int, int]]:
    """The students of the registered ids (those the analytic ids stand in for included),
    as :func:`table_entries` takes them."""
    import gymnasium as gym

    import metacurriculum  # noqa: F401 - registers the ids
    from metacurriculum.envs.config import MetaCurriculumConfig

    found = {}
    for env_id, spec in gym.registry.items():
        if env_id.startswith("MetaCurriculum-"):
            c = MetaCurriculumConfig.from_overrides(**spec.kwargs)
            fields = network_fields(c.n_max, c.hidden, c.depth, c.learner, c.learner_kwargs)
            entry = (fields, c.k_shot, c.q_query, c.eval_q_query)
            found[json.dumps(entry, sort_keys=True)] = entry
    return list(found.values())


def write_table(path: str | None = None) -> str:
    """Count :func:`registered_networks`' entries anew and write them as
    :mod:`~metacurriculum.student.flop_table` (its docstring kept); returns the path."""
    import pprint
    from pathlib import Path

    import metacurriculum.student.flop_table as table

    target = Path(path or table.__file__)
    entries = pprint.pformat(table_entries(registered_networks()), sort_dicts=False, width=96)
    head = f'"""{table.__doc__}"""\n\nfrom typing import Any\n\n'
    target.write_text(f"{head}COUNTED: list[dict[str, Any]] = {entries}\n")
    return str(target)


if __name__ == "__main__":  # python -m metacurriculum.student.compute: COUNTED, counted anew
    print(f"wrote {write_table()}; format it with `ruff format` before committing")
