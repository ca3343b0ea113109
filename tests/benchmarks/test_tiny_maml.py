"""One small benchmark on the real MAML student (MetaCurriculum-Tiny-v0).

Needs the real Omniglot data at ``$METACURRICULUM_DATA`` (the shared data folder):
``METACURRICULUM_DATA=../shared/data python -m pytest tests/benchmarks``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from bench_helpers import run_numbers

from metacurriculum.benchmarks import BenchmarkError, run_benchmark
from metacurriculum.envs import MetaCurriculumEnv

TINY = "MetaCurriculum-Tiny-v0"


@pytest.fixture(scope="module")
def omniglot_data() -> Path:
    """The data root; fails (never skips) without it, as the env tests do."""
    root = Path(os.environ.get("METACURRICULUM_DATA", "")).expanduser()
    if not (root / "omniglot" / "images_background.npz").is_file():
        pytest.fail(
            "this test needs the real Omniglot data: set METACURRICULUM_DATA to the shared "
            "data folder, e.g. METACURRICULUM_DATA=../shared/data python -m pytest",
            pytrace=False,
        )
    return root


def test_tiny_maml_run_is_reproduced_after_an_interruption(
    omniglot_data, tiny_config, monkeypatch, tmp_path
):
    torch = pytest.importorskip("torch")
    from metacurriculum.student import MetaLearner

    settings = {"envs": (TINY,), "teachers": ("adaptive",), "seeds": (0,), "env_kwargs": {}}
    settings |= {"eval_tasks": 6, "threads": 1}
    clean = tiny_config(**settings, out=str(tmp_path / "clean"))
    (spec,) = run_benchmark(clean)
    folder = spec.folder(clean.out)
    summary = json.loads((folder / "done.json").read_text())
    assert summary["meta_steps"] == 16 and summary["env_steps"] == 8
    assert 0.0 <= summary["final_accuracy"] <= 1.0
    student = MetaLearner.load(folder / "student.pt", device="cpu")
    assert all(torch.isfinite(p).all() for p in student.params.values())

    broken = tiny_config(**settings, out=str(tmp_path / "broken"))
    step, calls = MetaCurriculumEnv.step, {"n": 0}

    def failing_step(self, action):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt  # Ctrl-C midway through the run
        return step(self, action)

    monkeypatch.setattr(MetaCurriculumEnv, "step", failing_step)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(broken)
    monkeypatch.setattr(MetaCurriculumEnv, "step", step)
    assert not (spec.folder(broken.out) / "done.json").exists()
    run_benchmark(broken)
    assert run_numbers(spec.folder(broken.out)) == run_numbers(folder)
    broken.eval_tasks = 7
    with pytest.raises(BenchmarkError, match="eval_tasks"):
        run_benchmark(broken)
