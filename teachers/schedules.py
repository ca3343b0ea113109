"""Fixed schedules of ω over the budget: easy to hard (``linear``) and hard to easy (``reverse``).

A schedule reads only the elapsed fraction of the budget, ``info["meta_step"] /
info["budget"]``: it is the baseline a curriculum teacher must beat to show that its
reading of the student, not the passing of time, set ω. The adaptive teacher's linear
floor (:class:`~metacurriculum.teachers.paper.AdaptiveTeacher`) is :func:`ramp`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from metacurriculum.teachers.base import OmegaTeacher, register_teacher


def elapsed(info: Mapping[str, Any]) -> float:
    """The fraction of the budget spent: ``meta_step / budget``, in ``[0, 1]``."""
    return min(float(info["meta_step"]) / max(float(info["budget"]), 1.0), 1.0)


def corners(info: Mapping[str, Any]) -> tuple[Any, Any]:
    """The easiest and hardest ω (floats for one-parameter families, else ``[d]`` arrays).

    ``info["omega_easiest"]`` and ``info["omega_hardest"]``; an info without them (a
    hand-made one) means the classes' orientation: ``omega_min`` is easiest.
    """
    easiest = info.get("omega_easiest", info["omega_min"])
    hardest = info.get("omega_hardest", info["omega_max"])
    if np.ndim(easiest) == 0:
        return float(easiest), float(hardest)
    return np.asarray(easiest, dtype=float), np.asarray(hardest, dtype=float)


def ramp(info: Mapping[str, Any], until: float) -> Any:
    """ω on the line from the easiest corner (start of the budget) to the hardest (at
    ``until``): from ``omega_min`` to ``omega_max`` for the number of classes; every
    coordinate at once for a vector ω."""
    easiest, hardest = corners(info)
    return easiest + (hardest - easiest) * min(elapsed(info) / until, 1.0)


def check_fraction(name: str, value: float) -> None:
    """Raise unless ``value`` is a fraction of the budget in ``(0, 1]``."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 < value <= 1):
        raise ValueError(f"{name}={value!r} must be in (0, 1] (a fraction of the budget).")


@register_teacher("linear")
@dataclass(eq=False)
class LinearTeacher(OmegaTeacher):
    """ω rises linearly from ``omega_min`` to ``omega_max`` at ``until`` of the budget, then stays.

    The schedule baseline (Bengio et al. 2009's easy-to-hard curriculum with a fixed
    pace). It is what the adaptive teacher with its linear floor did at the reduced
    CPU settings, where the floor set ω at almost every step; under its own name it
    shows what the schedule alone is worth. For a vector ω every coordinate moves from
    its easiest end to its hardest on the same line.

    Measured on the real student (``benchmarks/experiments/measure_reduced.py``, 'reduced'
    preset, seeds 0 and 1): test loss 0.747 and 0.760 on 100 unseen 5-way tasks,
    against 0.636 and 0.668 for ``none``: at 50 env steps the time spent on easy
    tasks did not pay back.

    Args:
        until: the fraction of the budget at which ω reaches ``omega_max`` (0.75: the
            last quarter of training on the hardest tasks, the tasks the student is
            judged on).
    """

    until: float = 0.75
    vector = True

    def __post_init__(self) -> None:
        check_fraction("until", self.until)

    def choose_omega(self, observation: np.ndarray, info: Mapping[str, Any]) -> Any:
        return ramp(info, self.until)


@register_teacher("reverse")
@dataclass(eq=False)
class ReverseTeacher(OmegaTeacher):
    """The control: ω falls linearly from ``omega_max`` to ``omega_min`` at ``until`` of the budget.

    Hard to easy, the mirror image of ``linear`` (anti-curriculum, as in Weinshall et
    al. 2018's controls). Where ``linear`` beats it, the order of the tasks mattered;
    where both match ``none``, only the time spent on the hardest tasks did.

    Measured on the real student ('reduced' preset, seed 0): test loss 0.722, between
    ``none`` (0.636) and ``linear`` (0.747).

    Args:
        until: the fraction of the budget at which ω reaches ``omega_min``.
    """

    until: float = 1.0
    vector = True

    def __post_init__(self) -> None:
        check_fraction("until", self.until)

    def choose_omega(self, observation: np.ndarray, info: Mapping[str, Any]) -> Any:
        easiest, hardest = corners(info)
        return hardest - (ramp(info, self.until) - easiest)
