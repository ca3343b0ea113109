"""The learning-speed benchmark's pieces on a tiny workload: records, resume, table."""

from __future__ import annotations

import json

import pytest

from metacurriculum.benchmarks.experiments import learning_speed as bench

TINY = bench.LearningSpeedConfig(
    ways=3,
    q_query=1,
    eval_q_query=2,
    meta_batch=2,
    hidden=4,
    depth=2,
    steps=(1, 2),
    seeds=(0,),
    inits=("torch", "xavier"),
    learners=("maml",),
    learner_settings=(("inner_steps", 1),),
    eval_tasks=3,
)


def test_runs_record_each_checkpoint_and_resume_from_the_file(tmp_path, monkeypatch):
    out = tmp_path / "speed.jsonl"
    records = bench.benchmark(TINY, out, progress=False)
    assert [(r["init"], r["meta_step"]) for r in records] == [
        ("torch", 1),
        ("torch", 2),
        ("xavier", 1),
        ("xavier", 2),
    ]
    assert all(0.0 <= r["accuracy"] <= 1.0 and r["loss"] > 0 for r in records)
    # Same seed, same task stream: the two inits start from different weights only.
    assert (
        records[0]["accuracy"] != records[2]["accuracy"] or records[0]["loss"] != records[2]["loss"]
    )

    def no_run(*args, **kwargs):
        raise AssertionError("a finished run was recomputed")

    monkeypatch.setattr(bench, "run", no_run)
    assert bench.benchmark(TINY, out, progress=False) == records
    # Another workload in the same file is not mistaken for this one.
    other = bench.LearningSpeedConfig(**{**TINY.__dict__, "hidden": 5})
    assert bench.load_records(out, other) == []


def test_table_gives_mean_ci_and_the_reference():
    records = [
        {"learner": "maml", "init": "torch", "seed": s, "meta_step": 100, "accuracy": a}
        for s, a in ((0, 0.84), (1, 0.86))
    ]
    table = bench.table(records, ways=5)
    cited = "98.7 ± 0.4% (Finn et al., 2017, Table 1)"
    assert f"| maml | torch | 100 | 2 | 85.0% ± 12.7% | 84.0%, 86.0% | 85.7% | {cited} |" in table
    assert "| maml | torch | 100 | 1 | 84.0% (one seed) | 84.0% | 85.7% |" in bench.table(
        records[:1], ways=5
    )
    assert bench.table([{**r, "learner": "anil"} for r in records], ways=5).endswith("| – |")


def test_a_damaged_results_file_names_itself(tmp_path):
    out = tmp_path / "speed.jsonl"
    out.write_text(json.dumps({"init": "torch"}) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"speed.jsonl:2 is not JSON"):
        bench.load_records(out, TINY)
