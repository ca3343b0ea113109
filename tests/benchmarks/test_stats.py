"""Statistics over seeds on known numbers: IQM, bootstrap CIs, Welch's test, the table."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from metacurriculum.benchmarks import intervals, stats, tables
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


def test_summarize_gives_one_row_per_teacher_sorted_by_mean():
    runs = [fake_run("none", s, loss) for s, loss in enumerate([2.0, 2.2, 2.1, 2.3])]
    runs += [fake_run("adaptive", s, loss) for s, loss in enumerate([1.0, 1.2, 1.1, 1.4])]
    runs += [fake_run("random", 0, 2.1), fake_run("random", 1, None)]  # one diverged
    rows = stats.summarize(runs)
    assert [r.teacher for r in rows] == ["adaptive", "random", "none"]
    adaptive, random_, none = rows
    mean, robust, versus = adaptive.metrics["loss"]
    assert mean.value == pytest.approx(1.175)
    assert robust.value == pytest.approx(np.mean([1.1, 1.2]))  # 4 seeds: one trimmed per end
    assert mean.low <= mean.value <= mean.high
    expected = scipy_stats.ttest_rel([1.0, 1.2, 1.1, 1.4], [2.0, 2.2, 2.1, 2.3])
    assert versus.paired_t_p == pytest.approx(expected.pvalue)
    assert versus.difference.value == pytest.approx(1.175 - 2.15)
    assert versus.improvement_probability == 1.0  # every adaptive run below every none run
    assert adaptive.metrics["accuracy"].versus.improvement_probability == 1.0
    assert adaptive.metrics["accuracy"][0].value == pytest.approx(1 - mean.value / 10)
    assert random_.seeds == 1 and math.isnan(random_.metrics["loss"].versus.paired_t_p)
    assert random_.metrics["loss"].mean.value == 2.1 and math.isnan(
        random_.metrics["loss"].mean.low
    )
    assert none.metrics["loss"].versus is None  # the baseline is not tested against itself


def test_p_values_are_holm_adjusted_over_the_teachers_compared_with_the_baseline():
    base = [2.0, 2.2, 2.1, 2.3, 2.05, 2.4]
    runs = [fake_run("none", s, loss) for s, loss in enumerate(base)]
    shifts = {"a": [0.1, 0.3, 0.2, 0.25, 0.15, 0.2], "b": [0.05, -0.1, 0.1, 0.0, 0.02, 0.3]}
    shifts["c"] = [-0.2, -0.1, -0.3, -0.25, -0.15, -0.4]
    for teacher, shift in shifts.items():
        runs += [
            fake_run(teacher, s, b + d) for s, (b, d) in enumerate(zip(base, shift, strict=True))
        ]
    rows = {r.teacher: r.metrics["loss"].versus for r in stats.summarize(runs)}
    raw = [rows[t].paired_t_p for t in shifts]
    np.testing.assert_allclose([rows[t].paired_t_holm for t in shifts], intervals.holm(raw))
    assert all(rows[t].paired_t_holm >= rows[t].paired_t_p for t in shifts)
    wilcoxon = [rows[t].wilcoxon_p for t in shifts]
    assert all(math.isfinite(w) for w in wilcoxon)  # 6 pairs: Wilcoxon is reported
    np.testing.assert_allclose([rows[t].wilcoxon_holm for t in shifts], intervals.holm(wilcoxon))


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
    assert float(table[0]["loss_mean"]) == pytest.approx(1.1)
    assert table[0]["loss_iqm"] == "nan"  # 3 seeds: no IQM
    columns = {"loss_mean_low", "loss_iqm_high", "loss_welch_p_vs_none", "accuracy_iqm"}
    columns |= {"loss_diff_vs_none_low", "loss_paired_t_p_holm_vs_none"}
    columns |= {"loss_improvement_probability_vs_none", "loss_zero_variance_vs_none"}
    assert columns <= set(table[0])
    with open(tmp_path / "runs.csv") as f:
        assert len(list(csv.DictReader(f))) == 7
    text = (tmp_path / "results.md").read_text()
    assert "### Env-v0" in text and "### Other-v0" in text
    assert "| static | 3 | 0 | 1.1000 [" in text and "| none | 3 | 0 |" in text
    assert "Holm-adjusted" in text and "t-interval" in text


def test_band_handles_one_seed_and_ragged_runs():
    one = np.array([[1.0, 2.0, 3.0]])
    mean, low, high = stats.band(one)
    np.testing.assert_array_equal(mean, low)
    np.testing.assert_array_equal(mean, high)
    ragged = stats.stack([np.array([1.0, 2.0, 3.0]), np.array([3.0, 4.0])])
    mean, low, high = stats.band(ragged)
    np.testing.assert_allclose(mean, [2.0, 3.0, 3.0])
    half = scipy_stats.t.ppf(0.975, 1) * scipy_stats.sem([1.0, 3.0])
    np.testing.assert_allclose(low, [2.0 - half, 3.0 - half, 3.0])  # the last point: one run


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
    assert "mixed budgets (see below)" in text
    assert "differ in their settings" in text
    assert "- env_settings.budget: 200 (none); 400 (adaptive, static)" in text
    same = [fake_run("none", s, 2.0) for s in range(2)]
    tables.write_results(stats.summarize(same), same, tmp_path)
    text = (tmp_path / "results.md").read_text()
    assert "budget 100 meta-steps" in text and "differ in their settings" not in text


def test_runs_csv_holds_numbers_not_timings_and_relative_folders(tmp_path):
    runs = [fake_run("none", s, 2.0 + s / 10) for s in range(2)]
    tables.write_results(stats.summarize(runs), runs, tmp_path)
    with open(tmp_path / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows[1]["folder"] == "Env-v0/none/seed_1"
    assert not {"train_seconds", "finished"} & set(rows[0])


def test_paired_tests_pair_the_seeds_both_teachers_have():
    runs = [fake_run("none", s, loss) for s, loss in enumerate([2.0, 2.3, 2.1, 2.6, 1.9])]
    runs += [fake_run("adaptive", s, loss) for s, loss in enumerate([1.6, 2.0, 1.9, 2.0])]
    runs[4] = fake_run("none", 4, 2.2, diverged=True)  # left out: no pair for seed 4 either
    runs[3] = fake_run("none", 3, 2.6)
    rows = {r.teacher: r for r in stats.summarize(runs)}
    loss = rows["adaptive"].metrics["loss"].versus
    paired_none, paired_adaptive = [2.0, 2.3, 2.1, 2.6], [1.6, 2.0, 1.9, 2.0]
    assert loss.pairs == 4
    assert loss.paired_t_p == pytest.approx(
        scipy_stats.ttest_rel(paired_adaptive, paired_none).pvalue
    )
    assert math.isnan(loss.wilcoxon_p)  # 4 pairs: Wilcoxon cannot say anything
    assert loss.paired_t_p < loss.welch_p  # pairing removes what the seeds share
    assert rows["none"].metrics["loss"].versus is None


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
        "target_auc_paired_t_p_holm_vs_none",
        "accuracy_pairs",
    ):
        assert column in row
    assert float(row["initial_accuracy_mean"]) == pytest.approx(0.2)
    assert float(row["target_auc_mean"]) == pytest.approx(2.0)
    assert row["loss_pairs"] == "3"
    text = (tmp_path / "results.md").read_text()
    assert "**Sample efficiency: the target-loss AUC" in text and "**Before adaptation**" in text
    assert "| static | 0.2000 [0.2000, 0.2000] |" not in text  # the loss comes first
    assert "| static | 3.0000 [3.0000, 3.0000] | 0.2000 [0.2000, 0.2000] |" in text
