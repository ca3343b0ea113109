"""Baselines without a curriculum: plain MAML on the hardest tasks, and domain randomisation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from metacurriculum.teachers.base import OmegaTeacher, register_teacher


@register_teacher("none")
@dataclass(eq=False)
class NoCurriculumTeacher(OmegaTeacher):
    """Plain MAML on the hardest distribution: ω = ``omega_max`` from the first step on
    (the hardest corner, ``info["omega_hardest"]``, for a vector ω).

    The paper's comparison ("standard MAML"). With ``Box`` actions the first action
    jumps to the top; with ``Discrete`` ones it climbs one ``omega_step`` per step.
    """

    vector = True

    def choose_omega(self, observation: np.ndarray, info: Mapping[str, Any]) -> Any:
        return info.get("omega_hardest", info["omega_max"])


@register_teacher("random")
@dataclass(eq=False)
class RandomTeacher(OmegaTeacher):
    """Domain randomisation: ω uniform in ``[omega_min, omega_max]`` at every step (uniform
    over the box for a vector ω; OpenAI et al. 2019's baseline).

    Draws from the teacher's own generator (seeded by ``reset``). With ``Discrete``
    actions each step moves one ``omega_step`` towards a fresh uniform draw.
    """

    vector = True

    def choose_omega(self, observation: np.ndarray, info: Mapping[str, Any]) -> Any:
        return self.rng.uniform(info["omega_min"], info["omega_max"])
