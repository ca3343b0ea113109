"""Helpers of the benchmark tests: tiny settings and run comparison."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ANALYTIC = "MetaCurriculum-Analytic-v0"
#: Analytic env settings that make a run take milliseconds: 10 env steps.
TINY_ANALYTIC = {"budget": 40, "n_max": 5, "inner_steps": 3}


def run_numbers(folder: Path) -> dict[str, Any]:
    """What must be equal between two runs of one spec: steps (without wall time) and evaluation."""
    steps = [json.loads(line) for line in (folder / "steps.jsonl").read_text().splitlines()]
    for step in steps:
        step.pop("wall_s")
    return {"steps": steps, "evaluation": json.loads((folder / "evaluation.json").read_text())}
