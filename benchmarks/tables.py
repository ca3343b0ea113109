"""The results files of a benchmark: ``results.md``, ``results.csv`` and ``runs.csv``.

``report(root)`` reads the finished runs under ``root``
(:func:`~metacurriculum.benchmarks.stats.load_runs`), summarizes them over seeds
(:func:`~metacurriculum.benchmarks.stats.summarize`) and writes:

- ``results.md``: per env a table of the final loss, of the final accuracy and of the
  sample efficiency (each teacher's mean and IQM with their intervals, its difference
  from ``none`` with its interval, the probability of improvement and Holm-adjusted
  p-values), and the scores before adaptation; the header states the evaluation, the
  budget, the statistics and the divergence rule, and lists the settings in which its
  runs differ, if any; footnotes say why a cell is "—";
- ``results.csv``: a row per env and teacher, with every estimate and p-value
  (unadjusted, Holm-adjusted and Welch's);
- ``runs.csv``: a row per run, its numbers only (no timings), so that a resumed
  benchmark writes the same bytes as an uninterrupted one. A vector ω's final value is
  its JSON list (``final_omega``) and a column per coordinate (``final_omega/<name>``).

Each file is written atomically. ``report`` also reads a ``runs.csv`` back
(:func:`~metacurriculum.benchmarks.scores.runs_from_csv`) when the run folders are gone.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from metacurriculum.benchmarks.atomic import write_atomic
from metacurriculum.benchmarks.costs import budget_text, cost_rows, flops_text
from metacurriculum.benchmarks.intervals import (
    MIN_IQM_SEEDS,
    MIN_WILCOXON_PAIRS,
    Comparison,
    Estimate,
)
from metacurriculum.benchmarks.scores import runs_from_csv
from metacurriculum.benchmarks.stats import (
    BASELINE,
    DIVERGENCE_RULE,
    Run,
    TeacherResult,
    load_runs,
    summarize,
)


def _num(value: float, digits: int = 4) -> str:
    return "nan" if math.isnan(value) else f"{value:.{digits}f}"


def _p(value: float) -> str:
    if math.isnan(value):
        return "—"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


#: Settings that may differ between the runs of one table without changing their numbers.
NOT_COMPARED = frozenset({"env_settings.data_root", "env_settings.download"})


def differing_settings(runs: Sequence[Run]) -> dict[str, dict[str, list[str]]]:
    """Settings that differ between ``runs`` (of one env): ``{setting: {value: teachers}}``.

    Settings are the env settings (dotted, ``"env_settings.budget"``), ``eval_tasks`` and
    ``eval_seed``; the teachers' own kwargs differ by design and are not compared.
    """
    values: dict[str, dict[str, set[str]]] = {}
    for run in runs:
        flat = {f"env_settings.{k}": v for k, v in run.config.get("env_settings", {}).items()}
        flat |= {k: run.config.get(k) for k in ("eval_tasks", "eval_seed")}
        for key, value in flat.items():
            if key not in NOT_COMPARED:
                values.setdefault(key, {}).setdefault(json.dumps(value), set()).add(run.teacher)
    return {
        key: {value: sorted(teachers) for value, teachers in sorted(found.items())}
        for key, found in sorted(values.items())
        if len(found) > 1
    }


def hardest_corner(runs: Sequence[Run]) -> str:
    """``" at the hardest corner of family 'f' (name value, ...)"`` for a family other than
    ``classes`` (its final evaluation is there), else ``""``."""
    from metacurriculum.envs import MetaCurriculumConfig, make_family

    settings = runs[0].config.get("env_settings", {})
    if settings.get("family", "classes") == "classes":
        return ""
    try:
        family = make_family(MetaCurriculumConfig.from_overrides(**settings))
    except (TypeError, ValueError) as error:  # a family not registered in this process
        return f" at the hardest corner of family {settings['family']!r} ({error})"
    corner = ", ".join(f"{n} {v:g}" for n, v in zip(family.names, family.hardest, strict=True))
    return f" at the hardest corner of family {settings['family']!r} ({corner})"


#: The tables of an env in ``results.md``: metric -> its heading.
TABLES = {
    "loss": "Final loss on the unseen tasks (lower is better)",
    "accuracy": "Final accuracy on the unseen tasks (higher is better)",
    "target_auc": (
        "Sample efficiency: the target-loss AUC, the area under the target loss over "
        "training divided by the meta-steps (lower is better: the hardest tasks learnt sooner)"
    ),
}


def _setting(runs: Sequence[Run], differ: dict[str, Any], key: str) -> str:
    if key in differ:
        return "mixed (see below)"
    section, _, name = key.rpartition(".")
    config = runs[0].config.get(section, {}) if section else runs[0].config
    return str(config[name]) if name in config else "(not recorded)"


def _header(env_runs: Sequence[Run], differ: dict[str, Any], baseline: str) -> str:
    if not any(r.evaluation for r in env_runs):
        evaluation = (
            "Read back from runs.csv, without the run folders: the evaluation settings are "
            "not in it (see the command that made the runs). "
        )
    else:
        steps = {len(r.curve("loss")) - 1 for r in env_runs}
        evaluation = (
            f"Final evaluation: {_setting(env_runs, differ, 'eval_tasks')} unseen "
            f"{_setting(env_runs, differ, 'env_settings.n_max')}-way tasks"
            f"{hardest_corner(env_runs)} (eval seed {_setting(env_runs, differ, 'eval_seed')}), "
            f"after {steps.pop() if len(steps) == 1 else 'mixed'} inner steps; "
            f"{budget_text(env_runs)}. "
        )
    return (
        f"{evaluation}Over the seeds that did not diverge: the mean with its 95% t-interval "
        "and the IQM (interquartile mean) with Yuen's 95% trimmed-mean interval. Against "
        f"{baseline!r}, over the seeds both have (a seed gives every teacher the same initial "
        f"student and evaluation tasks): Δ = teacher − {baseline!r} with its paired 95% "
        f"t-interval; P(better): rliable's probability of improvement, the chance that a run "
        f"of the teacher scores better than a run of {baseline!r} (ties count half; 0.5 is "
        "no difference); p: the paired t-test and the Wilcoxon signed-rank test, each "
        f"**Holm-adjusted** over the teachers compared with {baseline!r} in that table "
        "(unadjusted and Welch's p in results.csv). Rows by mean final loss. "
        f"{DIVERGENCE_RULE}"
    )


def markdown(rows: Sequence[TeacherResult], runs: Sequence[Run], baseline: str = BASELINE) -> str:
    """The results as markdown: per env a table per metric of :data:`TABLES` and the scores
    before adaptation, saying how many runs diverged and, when the runs were made with
    different settings, which; footnotes say why a cell is "—"."""
    out = []
    for env_id in dict.fromkeys(r.env_id for r in rows):
        env_runs = [r for r in runs if r.env_id == env_id]
        env_rows = [r for r in rows if r.env_id == env_id]
        differ = differing_settings(env_runs)
        out += [f"### {env_id}", "", _header(env_runs, differ, baseline), ""]
        if differ:
            out.append("**The runs of this table differ in their settings:**")
            for key, found in differ.items():
                pairs = "; ".join(f"{v} ({', '.join(t)})" for v, t in found.items())
                out.append(f"- {key}: {pairs}")
            out.append("")
        notes: set[str] = set()
        for metric, heading in TABLES.items():
            out += [f"**{heading}**", "", *_metric_table(env_rows, metric, baseline, notes), ""]
        out += _compute_section(env_rows, env_runs, baseline, notes)
        out += [
            "**Before adaptation** (inner step 0 on the same unseen tasks)",
            "",
            "| teacher | loss mean [95% CI] | accuracy mean [95% CI] |",
            "|---|---|---|",
        ]
        for row in env_rows:
            cells = [
                _estimate(row.metrics[m].mean, notes) for m in ("initial_loss", "initial_accuracy")
            ]
            out.append(f"| {row.teacher} | " + " | ".join(cells) + " |")
        out += ["", *[f"{NOTES[n]}" for n in NOTES if n in notes], ""]
    return "\n".join(out)


#: The heading of the compute section's cost table.
COST_HEADING = (
    "**Compute**: per teacher, means over the seeds that did not diverge: meta-steps, the "
    "FLOPs of meta-training (and their ratio to {baseline!r}'s), of the measurements after "
    "every env step and of the final evaluation, as torch's FlopCounterMode counts the "
    "student's work (matrix products and convolutions, forward and backward; "
    "metacurriculum.student.compute), and the seconds of wall time of training and of the "
    "final evaluation."
)
#: The headings of the compute metrics' tables (``{c}``: the equal compute, in FLOPs).
COMPUTE_TABLES = {
    "target_at_compute": (
        "**Target loss at equal compute** C = {c} FLOPs of meta-training, the least any run "
        "of this env spent (every run reached it), read on the fixed hardest validation "
        "tasks that training measures, interpolated between the env steps around C (lower "
        "is better)"
    ),
    "target_auc_compute": (
        "**Mean target loss over compute up to C**: the area under the target loss over "
        "meta-training FLOPs from 0 to C, divided by C (lower is better: the hardest tasks "
        "learnt for less compute)"
    ),
}


def _compute_section(
    rows: Sequence[TeacherResult], runs: Sequence[Run], baseline: str, notes: set[str]
) -> list[str]:
    """An env's compute: what each teacher's runs cost, and (from their steps) the target
    loss at equal compute; nothing for runs that recorded no compute."""
    if not any(r.summary.get("train_flops") is not None for r in runs):
        return []
    out = [
        COST_HEADING.format(baseline=baseline),
        "",
        f"| teacher | seeds | meta-steps | training FLOPs | × {baseline} | measurement FLOPs "
        "| evaluation FLOPs | training s | evaluation s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cells in cost_rows(runs, [row.teacher for row in rows], baseline):
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    budget = rows[0].equal_compute if rows else math.nan
    if math.isfinite(budget):
        for metric, heading in COMPUTE_TABLES.items():
            lines = _metric_table(rows, metric, baseline, notes)
            out += [heading.format(c=flops_text(budget)), "", *lines, ""]
    return out


#: Footnotes of :func:`markdown`, each printed under an env's tables when it applies.
NOTES = {
    "one-seed": '- "[—]": one seed; an interval needs two.',
    "iqm": (
        f'- IQM "—": fewer than {MIN_IQM_SEEDS} seeds. The IQM trims int(0.25 n) seeds from '
        "each end, none below 4, where it would only repeat the mean."
    ),
    "wilcoxon": (
        f'- Wilcoxon "—": fewer than {MIN_WILCOXON_PAIRS} pairs. Its smallest possible '
        "two-sided p is 2 / 2^n (0.25 at 3 pairs, 0.0625 at 5): it cannot reject anything "
        "at 0.05 below 6."
    ),
    "zero-variance": (
        '- "no variance": the teacher differs from the baseline by the same amount on every '
        "seed (Δ, exact on these seeds; 0 for identical scores). A test has no spread to "
        "measure that difference against, so none is reported: it is neither significant nor "
        "insignificant, and more seeds, not a p-value, would tell whether it holds."
    ),
    "no-pairs": '- p "—" with fewer than 2 pairs: nothing to test.',
}


def _metric_table(
    rows: Sequence[TeacherResult], metric: str, baseline: str, notes: set[str]
) -> list[str]:
    lines = [
        f"| teacher | seeds | diverged | mean [95% CI] | IQM [95% CI] | pairs "
        f"| Δ vs {baseline} [95% CI] | P(better than {baseline}) | p paired t (Holm) "
        "| p Wilcoxon (Holm) |",
        "|---|---:|---:|---|---|---:|---|---:|---:|---:|",
    ]
    for row in rows:
        result = row.metrics[metric]
        if math.isnan(result.iqm.value) and row.seeds:
            notes.add("iqm")
        cells = [row.teacher, str(row.seeds), str(row.diverged), _estimate(result.mean, notes)]
        cells.append("—" if math.isnan(result.iqm.value) else _estimate(result.iqm, notes))
        cells += _comparison_cells(result.versus, notes)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _comparison_cells(versus: Comparison | None, notes: set[str]) -> list[str]:
    if versus is None:
        return ["—"] * 5
    cells = [str(versus.pairs), _estimate(versus.difference, notes)]
    cells.append(_num(versus.improvement_probability, 2))
    if versus.zero_variance:
        notes.add("zero-variance")
        return [*cells, "no variance", "no variance"]
    if versus.pairs < 2:
        notes.add("no-pairs")
    elif versus.pairs < MIN_WILCOXON_PAIRS:
        notes.add("wilcoxon")
    return [*cells, _p(versus.paired_t_holm), _p(versus.wilcoxon_holm)]


def _estimate(e: Estimate, notes: set[str] | None = None) -> str:
    if math.isnan(e.value):
        return "—"
    if math.isnan(e.low):
        if notes is not None:
            notes.add("one-seed")
        return f"{_num(e.value)} [—]"
    return f"{_num(e.value)} [{_num(e.low)}, {_num(e.high)}]"


#: ``done.json`` keys left out of ``runs.csv``: they differ between two executions of a run.
#: Summary keys left out of ``runs.csv``: timings and bookkeeping (digests), not results.
NOT_IN_RUNS_CSV = (
    "train_seconds",
    "eval_seconds",
    "finished",
    "config_digest",
    "student_digest",
    "diverged",
)


def write_results(
    rows: Sequence[TeacherResult], runs: Sequence[Run], out: str | Path, *, runs_csv: bool = True
) -> list[Path]:
    """Write ``results.csv`` (a row per env and teacher), ``runs.csv`` (a row per run) and
    ``results.md`` to ``out``; returns their paths.

    ``runs.csv`` holds a run's numbers, ``diverged`` by :data:`DIVERGENCE_RULE` (and
    ``stopped_on_divergence``, the env's own flag) and its folder relative to the
    benchmark's root, not timings: a resumed benchmark writes the same bytes. Every file
    is written atomically (:func:`~metacurriculum.benchmarks.atomic.write_atomic`): a
    crash or a full disk leaves the previous file whole. ``runs_csv=False`` leaves
    ``runs.csv`` as it is (the runs were read from it).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = [_csv_row(row) for row in rows]
    per_run = [
        {
            "env_id": r.env_id,
            "teacher": r.teacher,
            "seed": r.seed,
            "diverged": r.diverged,
            "stopped_on_divergence": bool(r.summary.get("diverged")),
            **{k: v for k, v in r.summary.items() if k not in NOT_IN_RUNS_CSV},
            "folder": r.name,
        }
        for r in runs
    ]
    paths = [_write_csv(out / "results.csv", table)]
    if runs_csv:
        paths.append(_write_csv(out / "runs.csv", per_run))
    paths.append(write_atomic(out / "results.md", markdown(rows, runs)))
    return paths


def _csv_row(row: TeacherResult) -> dict[str, Any]:
    """``results.csv``'s row of a teacher: every estimate, comparison and p-value."""
    line: dict[str, Any] = {"env_id": row.env_id, "teacher": row.teacher, "seeds": row.seeds}
    line["diverged"] = row.diverged
    line["equal_compute_flops"] = row.equal_compute
    for metric, result in row.metrics.items():
        for stat, e in (("mean", result.mean), ("iqm", result.iqm)):
            line |= {f"{metric}_{stat}": e.value, f"{metric}_{stat}_low": e.low}
            line[f"{metric}_{stat}_high"] = e.high
        v = result.versus
        vs = f"vs_{BASELINE}"
        d = v.difference if v else Estimate(math.nan, math.nan, math.nan)
        line |= {f"{metric}_diff_{vs}": d.value, f"{metric}_diff_{vs}_low": d.low}
        line[f"{metric}_diff_{vs}_high"] = d.high
        line[f"{metric}_improvement_probability_{vs}"] = (
            v.improvement_probability if v else math.nan
        )
        line[f"{metric}_paired_t_p_{vs}"] = v.paired_t_p if v else math.nan
        line[f"{metric}_paired_t_p_holm_{vs}"] = v.paired_t_holm if v else math.nan
        line[f"{metric}_wilcoxon_p_{vs}"] = v.wilcoxon_p if v else math.nan
        line[f"{metric}_wilcoxon_p_holm_{vs}"] = v.wilcoxon_holm if v else math.nan
        line[f"{metric}_welch_p_{vs}"] = v.welch_p if v else math.nan
        line[f"{metric}_zero_variance_{vs}"] = v.zero_variance if v else ""
        line[f"{metric}_pairs"] = v.pairs if v else 0
    return line


def _write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    fields = list(dict.fromkeys(key for row in rows for key in row))  # runs of older versions
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=fields)
    writer.writeheader()
    writer.writerows([{k: _cell(v) for k, v in row.items()} for row in rows])
    return write_atomic(path, text.getvalue())


def _cell(value: Any) -> Any:
    """A CSV cell: lists (a vector ω) as JSON, ``[20.0, 60.0, 0.5]``; the rest as it is."""
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def report(root: str | Path, out: str | Path | None = None) -> str:
    """Aggregate the finished runs under ``root``; write the results to ``out`` (default
    ``root``) and return the markdown tables.

    ``root`` may also be a ``runs.csv`` (of a benchmark whose run folders are not at
    hand): its runs' final numbers give every table; ``results.md`` and ``results.csv``
    go beside it (or to ``out``) and the ``runs.csv`` itself is left as it is.
    """
    root = Path(root)
    from_csv = root.is_file() and root.suffix == ".csv"
    runs = runs_from_csv(root) if from_csv else load_runs(root)
    rows = summarize(runs)
    default = root.parent if from_csv else root
    write_results(rows, runs, default if out is None else out, runs_csv=not from_csv)
    return markdown(rows, runs)
