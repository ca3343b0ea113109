"""Every registered teacher chooses the same ω as before vector ω (one-parameter envs).

``teacher_trajectories_v0.json`` was written by ``record_teacher_trajectories.py`` on
the code before teachers learnt vectors: analytic env, 60 steps, seed 2, both action
types. The analytic student's numbers are exact, so the comparison is exact.
"""

import json
from pathlib import Path

import pytest
from record_teacher_trajectories import trajectory  # on sys.path through conftest.py

RECORDED = json.loads((Path(__file__).parent / "teacher_trajectories_v0.json").read_text())


@pytest.mark.parametrize("key", sorted(RECORDED))
def test_teacher_trajectory_unchanged(key):
    name, action_type = key.split("/")
    assert trajectory(name, action_type) == RECORDED[key]
