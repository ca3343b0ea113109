"""Fixtures of the benchmark tests: tiny benchmark configs on the analytic student."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # `import bench_helpers` in any import mode

from bench_helpers import ANALYTIC, TINY_ANALYTIC

from metacurriculum.benchmarks import BenchConfig


@pytest.fixture
def tiny_config(tmp_path) -> Callable[..., BenchConfig]:
    """``tiny_config(**fields)``: an in-process benchmark of the analytic student, 10 env steps a run."""

    def build(**fields) -> BenchConfig:
        settings = {
            "envs": (ANALYTIC,),
            "teachers": ("none", "random", "adaptive"),
            "seeds": (0, 1),
            "env_kwargs": dict(TINY_ANALYTIC),
            "eval_tasks": 12,
            "out": str(tmp_path / "runs"),
            "workers": 1,
            "plots": False,
        }
        return BenchConfig(**{**settings, **fields})

    return build


@pytest.fixture
def faulty_teachers():
    """The module registering teachers that fail on purpose (``faulty_teacher``), for
    ``imports``; every teacher it registered is unregistered afterwards."""
    from metacurriculum.teachers.base import TEACHERS

    yield "faulty_teacher"
    module = sys.modules.pop("faulty_teacher", None)
    for name in getattr(module, "NAMES", ()):
        TEACHERS.pop(name, None)
