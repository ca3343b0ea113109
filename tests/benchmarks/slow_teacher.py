"""Registers ``"slow-random"``: the random teacher, sleeping ``delay`` seconds a step.

Only benchmark subprocesses import it (``--import slow_teacher``, with this folder on
``PYTHONPATH``), so that a run can be killed midway; the test process never registers
it, and the registry other tests parametrize over stays as the package ships it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from metacurriculum.teachers import RandomTeacher, register_teacher


@register_teacher("slow-random")
@dataclass(eq=False)
class SlowRandomTeacher(RandomTeacher):
    """The random teacher, sleeping ``delay`` seconds per step (so a run can be killed midway)."""

    delay: float = 0.05

    def choose_omega(self, observation: np.ndarray, info: Mapping[str, Any]) -> float:
        time.sleep(self.delay)
        return super().choose_omega(observation, info)
