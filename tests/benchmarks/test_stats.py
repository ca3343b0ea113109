"""Statistics over seeds on known numbers: IQM, bootstrap CIs, Welch's test, the table."""

from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from metacurriculum.benchmarks import stats, tables
from metacurriculum.benchmarks.stats import Run


def fake_run(
    teacher: str,
    seed: int,
    final_loss: float | None,
    env_id: str = "Env-v0",
    diverged: bool = False,
    accuracy: float | None = ...,
    budget: int = 100,
) -> Run:
    """A finished run with the given final loss (accuracy = 1 - loss / 10 unless given)."""
    if accuracy is ...:
        accuracy = None if final_loss is None else 1 - final_loss / 10
    loss_curve = [3.0, 2.0, final_loss]
    config = {
        "env_id": env_id,
        "teacher": teacher,
        "seed": seed,
        "eval_tasks": 10,
        "eval_seed": 0,
        "env_settings": {"n_max": 5, "budget": budget, "divergence_threshold": 100.0},
    }
    summary = {"final_loss": final_loss, "final_accuracy": accuracy, "initial_loss": 3.0}
    summary |= {"initial_accuracy": 0.2, "target_loss_auc": None if final_loss is None else 2.0}
    summary |= {"diverged": diverged, "train_seconds": 1.5 + seed, "finished": f"T{seed}"}
    evaluation = {"loss_mean": loss_curve, "accuracy_mean": [0.2, 0.5, accuracy]}
    return Run(Path(f"/nowhere/{env_id}/{teacher}/seed_{seed}"), config, summary, evaluation)


def test_iqm_is_the_mean_of_the_middle_half():
    values = [100.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, -50.0]
    assert stats.iqm(values) == pytest.approx(np.mean([2.0, 3.0, 4.0, 5.0]))
    assert stats.iqm(values) == pytest.approx(scipy_stats.trim_mean(values, 0.25))
    assert stats.iqm([1.0, 2.0, 4.0]) == pytest.approx(7 / 3)  # too few to trim


def test_bootstrap_ci_contains_the_statistic_and_is_reproducible():
    values = np.array([0.8, 1.1, 0.9, 1.3, 1.0, 0.7, 1.2])
    low, high = stats.bootstrap_ci(values, np.mean)
    assert low < values.mean() < high
    assert (low, high) == stats.bootstrap_ci(values, np.mean)  # seeded
    low, high = stats.bootstrap_ci(values, stats._iqm_axis)
    assert low <= stats.iqm(values) <= high
    noisy = np.random.default_rng(0).normal(size=20)
    assert stats.bootstrap_ci(noisy, np.mean, seed=1) != stats.bootstrap_ci(noisy, np.mean)


@pytest.mark.parametrize(
    ("values", "expected"),
    [([0.5], (0.5, 0.5)), ([0.3, 0.3, 0.3], (0.3, 0.3)), ([], (math.nan, math.nan))],
    ids=["one-seed", "constant", "empty"],
)
def test_bootstrap_ci_degenerate_cases(values, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = stats.bootstrap_ci(values, stats._iqm_axis)
    np.testing.assert_equal(result, expected)


def test_welch_p_matches_scipy_and_handles_small_samples():
    a, b = [1.0, 1.2, 0.9, 1.1, 1.05], [1.4, 1.5, 1.35, 1.6]
    expected = scipy_stats.ttest_ind(a, b, equal_var=False).pvalue
    assert stats.welch_p(a, b) == pytest.approx(expected, rel=1e-12)
    assert math.isnan(stats.welch_p([1.0], b))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(stats.welch_p([2.0, 2.0], [2.0, 2.0]))


def test_summarize_gives_one_row_per_teacher_sorted_by_iqm():
    runs = [fake_run("none", s, loss) for s, loss in enumerate([2.0, 2.2, 2.1, 2.3])]
    runs += [fake_run("adaptive", s, loss) for s, loss in enumerate([1.0, 1.2, 1.1, 9.0])]
    runs += [fake_run("random", 0, 1.5), fake_run("random", 1, None)]  # one diverged
    rows = stats.summarize(runs)
    assert [r.teacher for r in rows] == ["adaptive", "random", "none"]
    adaptive, random_, none = rows
    mean, robust, p = adaptive.metrics["loss"][:3]
    assert mean.value == pytest.approx(np.mean([1.0, 1.2, 1.1, 9.0]))
    assert robust.value == pytest.approx(np.mean([1.1, 1.2]))
    assert mean.low <= mean.value <= mean.high
    expected = scipy_stats.ttest_ind([1.0, 1.2, 1.1, 9.0], [2.0, 2.2, 2.1, 2.3], equal_var=False)
    assert p == pytest.approx(expected.pvalue)
    assert adaptive.metrics["accuracy"][0].value == pytest.approx(1 - mean.value / 10)
    assert random_.seeds == 1 and math.isnan(random_.metrics["loss"][2])
    assert random_.metrics["loss"][1] == stats.Estimate(1.5, 1.5, 1.5)
    assert math.isnan(none.metrics["loss"][2])  # the baseline is not tested against itself


def test_results_files_and_markdown(tmp_path):
    runs = [
        fake_run(t, s, 1.0 + s / 10 + (t == "none")) for t in ("none", "static") for s in range(3)
    ]
    runs += [fake_run("none", 0, 2.0, env_id="Other-v0")]
    rows = stats.summarize(runs)
    paths = tables.write_results(rows, runs, tmp_path)
    assert [p.name for p in paths] == ["results.csv", "runs.csv", "results.md"]
    with open(tmp_path / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert {(r["env_id"], r["teacher"]) for r in table} == {
        ("Env-v0", "none"),
        ("Env-v0", "static"),
        ("Other-v0", "none"),
    }
    assert float(table[0]["loss_iqm"]) == pytest.approx(1.1)
    assert {"loss_mean_low", "loss_iqm_high", "loss_p_vs_none", "accuracy_iqm"} <= set(table[0])
    with open(tmp_path / "runs.csv") as f:
        assert len(list(csv.DictReader(f))) == 7
    text = (tmp_path / "results.md").read_text()
    assert "### Env-v0" in text and "### Other-v0" in text
    assert "| static | 3 | 0 | 1.1000 [" in text and "| none | 3 | 0 |" in text


def test_bootstrap_band_handles_one_seed_and_ragged_runs():
    one = np.array([[1.0, 2.0, 3.0]])
    mean, low, high = stats.bootstrap_band(one)
    np.testing.assert_array_equal(mean, low)
    np.testing.assert_array_equal(mean, high)
    ragged = stats.stack([np.array([1.0, 2.0, 3.0]), np.array([3.0, 4.0])])
    mean, low, high = stats.bootstrap_band(ragged)
    np.testing.assert_allclose(mean, [2.0, 3.0, 3.0])
    assert np.all(low <= mean) and np.all(mean <= high)


def test_load_runs_without_finished_runs_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="metacurriculum bench"):
        stats.load_runs(tmp_path)


@pytest.mark.parametrize(
    "diverged",
    [
        fake_run("adaptive", 3, None, accuracy=0.2),  # NaN loss, a finite accuracy
        fake_run("adaptive", 3, 4e8, accuracy=0.2),  # a finite loss far above chance
        fake_run("adaptive", 3, 1.3, diverged=True),  # training stopped on divergence
    ],
    ids=["nan-loss", "huge-finite-loss", "stopped-on-divergence"],
)
def test_diverged_runs_are_counted_apart_and_left_out_of_every_column(tmp_path, diverged):
    runs = [fake_run("none", s, loss) for s, loss in enumerate([2.0, 2.2, 2.1])]
    runs += [fake_run("adaptive", s, loss) for s, loss in enumerate([1.0, 1.2, 1.1])]
    rows = {r.teacher: r for r in stats.summarize([*runs, diverged])}
    assert diverged.diverged and not any(r.diverged for r in runs)
    adaptive = rows["adaptive"]
    assert (adaptive.seeds, adaptive.diverged) == (3, 1) and rows["none"].diverged == 0
    assert adaptive.metrics["loss"][0].value == pytest.approx(1.1)
    assert adaptive.metrics["accuracy"][0].value == pytest.approx(1 - 1.1 / 10)
    tables.write_results(list(rows.values()), [*runs, diverged], tmp_path)
    text = (tmp_path / "results.md").read_text()
    assert "| teacher | seeds | diverged |" in text and "| adaptive | 3 | 1 |" in text
    assert "Diverged runs are counted apart and left out of every statistic" in text
    with open(tmp_path / "results.csv") as f:
        assert {r["teacher"]: r["diverged"] for r in csv.DictReader(f)} == {
            "adaptive": "1",
            "none": "0",
        }
    with open(tmp_path / "runs.csv") as f:
        flags = [
            (r["seed"], r["diverged"]) for r in csv.DictReader(f) if r["teacher"] == "adaptive"
        ]
    assert sorted(flags) == [("0", "False"), ("1", "False"), ("2", "False"), ("3", "True")]


def test_results_md_names_settings_that_differ_between_runs(tmp_path):
    runs = [fake_run("none", s, 2.0 + s / 10, budget=200) for s in range(2)]
    runs += [fake_run("adaptive", s, 1.0 + s / 10, budget=400) for s in range(2)]
    runs += [fake_run("static", s, 1.5 + s / 10, budget=400) for s in range(2)]
    tables.write_results(stats.summarize(runs), runs, tmp_path)
    text = (tmp_path / "results.md").read_text()
    assert "budget mixed (see below) meta-steps" in text
    assert "differ in their settings" in text
    assert "- env_settings.budget: 200 (none); 400 (adaptive, static)" in text
    same = [fake_run("none", s, 2.0) for s in range(2)]
    tables.write_results(stats.summarize(same), same, tmp_path)
    text = (tmp_path / "results.md").read_text()
    assert "budget 100 meta-steps" in text and "differ" not in text


def test_runs_csv_holds_numbers_not_timings_and_relative_folders(tmp_path):
    runs = [fake_run("none", s, 2.0 + s / 10) for s in range(2)]
    tables.write_results(stats.summarize(runs), runs, tmp_path)
    with open(tmp_path / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows[1]["folder"] == "Env-v0/none/seed_1"
    assert not {"train_seconds", "finished"} & set(rows[0])


def test_paired_p_matches_scipy_and_handles_degenerate_pairs():
    a, b = [1.0, 1.2, 0.9, 1.1, 1.05, 0.8], [1.4, 1.5, 1.35, 1.6, 1.3, 1.2]
    t, w = stats.paired_p(a, b)
    assert t == pytest.approx(scipy_stats.ttest_rel(a, b).pvalue, rel=1e-12)
    assert w == pytest.approx(scipy_stats.wilcoxon(a, b).pvalue, rel=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert all(math.isnan(v) for v in stats.paired_p([1.0], [2.0]))
        assert all(math.isnan(v) for v in stats.paired_p([1.0, 2.0], [1.0, 2.0]))


def test_paired_tests_pair_the_seeds_both_teachers_have():
    runs = [fake_run("none", s, loss) for s, loss in enumerate([2.0, 2.3, 2.1, 2.6, 1.9])]
    runs += [fake_run("adaptive", s, loss) for s, loss in enumerate([1.6, 2.0, 1.9, 2.0])]
    runs[4] = fake_run("none", 4, 2.2, diverged=True)  # left out: no pair for seed 4 either
    runs[3] = fake_run("none", 3, 2.6)
    rows = {r.teacher: r for r in stats.summarize(runs)}
    loss = rows["adaptive"].metrics["loss"]
    paired_none, paired_adaptive = [2.0, 2.3, 2.1, 2.6], [1.6, 2.0, 1.9, 2.0]
    assert loss.pairs == 4
    assert loss.paired_t_p == pytest.approx(
        scipy_stats.ttest_rel(paired_adaptive, paired_none).pvalue
    )
    assert loss.wilcoxon_p == pytest.approx(
        scipy_stats.wilcoxon(paired_adaptive, paired_none).pvalue
    )
    assert loss.paired_t_p < loss.welch_p  # pairing removes what the seeds share
    assert math.isnan(rows["none"].metrics["loss"].paired_t_p)


def test_results_report_pre_adaptation_scores_sample_efficiency_and_paired_tests(tmp_path):
    runs = [
        fake_run(t, s, 1.0 + s / 10 + (t == "none")) for t in ("none", "static") for s in range(3)
    ]
    tables.write_results(stats.summarize(runs), runs, tmp_path)
    with open(tmp_path / "results.csv") as f:
        row = next(r for r in csv.DictReader(f) if r["teacher"] == "static")
    for column in (
        "initial_loss_mean",
        "initial_accuracy_mean",
        "target_auc_mean",
        "loss_paired_t_p_vs_none",
        "loss_wilcoxon_p_vs_none",
        "accuracy_pairs",
    ):
        assert column in row
    assert float(row["initial_accuracy_mean"]) == pytest.approx(0.2)
    assert float(row["target_auc_mean"]) == pytest.approx(2.0)
    assert row["loss_pairs"] == "3"
    text = (tmp_path / "results.md").read_text()
    assert "| teacher | pairs | p paired t (loss) | p Wilcoxon (loss) |" in text
    assert "| static | 3 |" in text and "target-loss AUC" in text
