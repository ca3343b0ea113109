"""runs.csv read back, and its export to rliable's score format."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats
from test_stats import fake_run  # on sys.path through conftest.py

from metacurriculum.benchmarks import intervals, stats, tables
from metacurriculum.benchmarks.scores import rliable_scores, runs_from_csv


@pytest.fixture
def benchmark(tmp_path):
    """Two envs; 'adaptive' diverged on seed 2 of Env-v0; 'static' ran on Env-v0 only."""
    runs = []
    for env in ("Env-v0", "Other-v0"):
        runs += [fake_run("none", s, 2.0 + s / 10, env_id=env) for s in range(3)]
        runs += [
            fake_run("adaptive", s, 1.5 + s / 10, env_id=env, diverged=(env, s) == ("Env-v0", 2))
            for s in range(3)
        ]
    tables.write_results(stats.summarize(runs), runs, tmp_path)
    return tmp_path


def test_rliable_scores_are_runs_by_tasks_per_teacher(benchmark):
    with pytest.warns(UserWarning, match=r"'adaptive': seeds \[2\] are left out"):
        scores = rliable_scores(benchmark)
    assert sorted(scores) == ["adaptive", "none"]
    assert scores["none"].shape == (3, 2) and scores["none"].dtype == np.float64
    np.testing.assert_allclose(scores["none"][:, 0], [0.8, 0.79, 0.78])  # 1 - loss / 10
    assert scores["adaptive"].shape == (2, 2)  # seed 2 diverged on Env-v0
    loss = rliable_scores(benchmark / "runs.csv", "final_loss", negate=True, envs=["Other-v0"])
    np.testing.assert_allclose(loss["adaptive"][:, 0], [-1.5, -1.6, -1.7])


def test_rliable_scores_give_rliables_probability_of_improvement(benchmark):
    """rliable's own formula on the exported arrays gives the table's P(better)."""
    scores = rliable_scores(benchmark, envs=["Other-v0"])
    x, y = scores["adaptive"][:, 0], scores["none"][:, 0]
    rliable = scipy_stats.mannwhitneyu(x, y, alternative="greater").statistic / (x.size * y.size)
    assert rliable == intervals.improvement_probability(x, y) == 1.0


def test_rliable_scores_name_what_is_wrong(benchmark, tmp_path):
    with pytest.raises(ValueError, match="metric='loss' is not a numeric column"):
        rliable_scores(benchmark, "loss")
    runs = [fake_run("none", 0, 2.0), fake_run("none", 0, 2.0, env_id="Other-v0")]
    runs.append(fake_run("static", 0, 1.0))
    tables.write_results(stats.summarize(runs), runs, tmp_path / "partial")
    with pytest.raises(ValueError, match=r"'static' has no finished run on \['Other-v0'\]"):
        rliable_scores(tmp_path / "partial")
    with pytest.raises(FileNotFoundError, match="give a benchmark's folder or its runs"):
        rliable_scores(tmp_path / "nowhere.csv")


def test_runs_from_csv_give_the_same_numbers(benchmark):
    runs = runs_from_csv(benchmark)
    assert len(runs) == 12 and sum(r.diverged for r in runs) == 1
    first = runs[0]
    assert (first.env_id, first.teacher, first.seed) == ("Env-v0", "adaptive", 0)
    assert first.score("final_loss") == 1.5 and first.score("target_loss_auc") == 2.0
