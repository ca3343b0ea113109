"""What the runs of a benchmark cost, and their results at equal compute.

Every run records its compute as it goes (:mod:`metacurriculum.student.compute`: FLOPs
of the student's meta-training and of its measurements, per env step in
``steps.jsonl``, in total in ``done.json`` and ``runs.csv``, with the final evaluation's)
and its wall time (``wall_s`` per step, ``train_seconds`` and ``eval_seconds`` in
``done.json``). Runs of the same meta-steps need not have spent the same compute: a task
of 2 classes costs a tenth of one of 20, so a curriculum that starts easy has spent less
at any meta-step. Two ways to compare at equal compute:

- run with a ``compute_budget`` (``--env-kwargs compute_budget=matched``: every teacher
  gets the compute of ``budget`` meta-steps at the hardest ω, plain MAML's); the final
  scores are then at equal compute, up to one env step's overrun;
- or read runs of a meta-step budget at the compute ``C`` that every run of the env
  reached, the least any of them spent in meta-training (:func:`equal_compute`): the
  target loss there (:data:`COMPUTE_METRICS`' ``target_at_compute``, interpolated between
  the env steps around ``C``) and the mean target loss up to it (``target_auc_compute``,
  the area under the target loss over compute up to ``C``, divided by ``C``). Both use
  the fixed hardest validation tasks that training measures (the final evaluation is
  made once, at a run's end).

The tables (:mod:`~metacurriculum.benchmarks.tables`) give each env a section of both,
and ``compute.png`` (:mod:`~metacurriculum.benchmarks.plots`) the target loss over
compute.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from metacurriculum.benchmarks.run_folders import DamagedRunError

if TYPE_CHECKING:
    from metacurriculum.benchmarks.stats import Run

#: The metrics at equal compute ``C`` (:func:`equal_compute`): name -> what it is.
COMPUTE_METRICS = {
    "target_at_compute": "the target loss at the equal compute C",
    "target_auc_compute": "the mean target loss over compute up to C (its AUC / C)",
}
#: ``done.json`` keys of a run's compute, in FLOPs.
FLOPS_KEYS = ("train_flops", "measure_flops", "eval_flops")


def compute_curve(run: Run) -> tuple[np.ndarray, np.ndarray] | None:
    """``(train FLOPs, target loss)`` at every env step of ``run`` from the reset on, or
    ``None`` for a run that recorded no compute (made before it was recorded, read from a
    ``runs.csv``, or a student that reports none)."""
    try:
        steps = run.steps
    except (DamagedRunError, OSError):
        return None
    flops = steps.get("train_flops")
    if flops is None or not np.all(np.isfinite(flops)):
        return None
    return flops, steps["target_loss"]


def spent(run: Run) -> float:
    """The FLOPs of ``run``'s meta-training (NaN when it recorded none)."""
    value = run.summary.get("train_flops")
    return math.nan if value is None else float(value)


def equal_compute(runs: Sequence[Run]) -> float:
    """``C``: the least meta-training compute any of ``runs`` spent (the runs of one env
    that did not diverge), so that every one of them reached it; NaN when none recorded
    its compute."""
    values = [spent(r) for r in runs if compute_curve(r) is not None]
    values = [v for v in values if math.isfinite(v) and v > 0]
    return min(values) if values else math.nan


def at_compute(run: Run, budget: float) -> dict[str, float]:
    """``run``'s :data:`COMPUTE_METRICS` at ``budget`` FLOPs of meta-training (NaN where it
    recorded no compute, did not reach ``budget``, or a loss is not finite)."""
    nan = dict.fromkeys(COMPUTE_METRICS, math.nan)
    curve = compute_curve(run)
    if curve is None or not math.isfinite(budget) or budget <= 0:
        return nan
    flops, loss = curve
    if flops[-1] < budget or not np.all(np.isfinite(loss)):
        return nan
    at = float(np.interp(budget, flops, loss))
    inside = flops < budget
    x = np.concatenate([flops[inside], [budget]])
    y = np.concatenate([loss[inside], [at]])
    return {"target_at_compute": at, "target_auc_compute": float(np.trapezoid(y, x) / budget)}


def flops_text(value: float) -> str:
    """FLOPs for a table: ``"2.78e14"`` (``"—"`` for NaN)."""
    return "—" if not math.isfinite(value) else f"{value:.3g}"


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def cost_rows(runs: Sequence[Run], teachers: Sequence[str], baseline: str) -> list[list[str]]:
    """Per teacher (in ``teachers``' order) of one env: seeds, mean meta-steps, mean FLOPs of
    meta-training (and relative to ``baseline``'s), of measurements and of the final
    evaluation, mean training and evaluation seconds; over the runs that did not diverge."""
    kept = {t: [r for r in runs if r.teacher == t and not r.diverged] for t in teachers}
    base = _mean([spent(r) for r in kept.get(baseline, [])])
    rows = []
    for teacher in teachers:
        members = kept[teacher]
        train = _mean([spent(r) for r in members])
        cells = [teacher, str(len(members))]
        cells.append(_number(_mean([_summary(r, "meta_steps") for r in members]), 0))
        cells += [
            flops_text(train),
            "—" if not math.isfinite(train / base) else f"{train / base:.2f}",
        ]
        cells += [flops_text(_mean([_summary(r, k) for r in members])) for k in FLOPS_KEYS[1:]]
        cells += [
            _number(_mean([_summary(r, k) for r in members]), 1)
            for k in ("train_seconds", "eval_seconds")
        ]
        rows.append(cells)
    return rows


def _summary(run: Run, key: str) -> float:
    value = run.summary.get(key)
    return math.nan if value is None else float(value)


def _number(value: float, digits: int) -> str:
    return "—" if not math.isfinite(value) else f"{value:.{digits}f}"


def budget_text(runs: Sequence[Run]) -> str:
    """What ended the runs' episodes: ``"budget 1000 meta-steps"``, or their compute budget
    (with the FLOPs it came to), or ``"mixed budgets"``."""
    settings = {_budget_setting(r) for r in runs}
    if len(settings) > 1:
        return "mixed budgets (see below)"
    meta_steps, compute = settings.pop()
    if compute is None:
        return f"budget {meta_steps} meta-steps"
    flops = {r.summary.get("compute_budget") for r in runs} - {None}
    resolved = f" = {flops_text(float(flops.pop()))} FLOPs" if len(flops) == 1 else ""
    if compute == "matched":
        return (
            f"compute budget 'matched'{resolved} of meta-training: what {meta_steps} "
            "meta-steps at the hardest ω cost, every teacher's episode ending when it has "
            "spent that"
        )
    return f"compute budget {flops_text(float(compute))} FLOPs of meta-training"


def _budget_setting(run: Run) -> tuple[Any, Any]:
    settings = run.config.get("env_settings", {})
    return settings.get("budget"), settings.get("compute_budget")
