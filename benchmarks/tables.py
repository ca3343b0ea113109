"""The results files of a benchmark: ``results.md``, ``results.csv`` and ``runs.csv``.

``report(root)`` reads the finished runs under ``root``
(:func:`~metacurriculum.benchmarks.stats.load_runs`), summarizes them over seeds
(:func:`~metacurriculum.benchmarks.stats.summarize`) and writes:

- ``results.md``: a table per env; its header states the evaluation, the budget and the
  divergence rule, and lists the settings in which its runs differ, if any;
- ``results.csv``: a row per env and teacher, with every estimate and p-value;
- ``runs.csv``: a row per run, its numbers only (no timings), so that a resumed
  benchmark writes the same bytes as an uninterrupted one. A vector ω's final value is
  its JSON list (``final_omega``) and a column per coordinate (``final_omega/<name>``).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from metacurriculum.benchmarks.stats import (
    BASELINE,
    DIVERGENCE_RULE,
    Estimate,
    Run,
    TeacherResult,
    load_runs,
    summarize,
)


def _num(value: float, digits: int = 4) -> str:
    return "nan" if math.isnan(value) else f"{value:.{digits}f}"


def _p(value: float) -> str:
    if math.isnan(value):
        return "n/a"
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


def markdown(rows: Sequence[TeacherResult], runs: Sequence[Run], baseline: str = BASELINE) -> str:
    """The results as markdown: one table per env, saying how many runs diverged and,
    when its runs were made with different settings, which."""
    out = []
    for env_id in dict.fromkeys(r.env_id for r in rows):
        env_runs = [r for r in runs if r.env_id == env_id]
        differ = differing_settings(env_runs)

        def setting(key: str, runs: Sequence[Run] = env_runs, differ: Any = differ) -> str:
            if key in differ:
                return "mixed (see below)"
            section, _, name = key.rpartition(".")
            return str((runs[0].config[section] if section else runs[0].config)[name])

        steps = {len(r.curve("loss")) - 1 for r in env_runs}
        out += [
            f"### {env_id}",
            "",
            f"Final evaluation: {setting('eval_tasks')} unseen "
            f"{setting('env_settings.n_max')}-way tasks{hardest_corner(env_runs)} "
            f"(eval seed {setting('eval_seed')}), "
            f"after {steps.pop() if len(steps) == 1 else 'mixed'} inner steps; budget "
            f"{setting('env_settings.budget')} meta-steps. Mean and IQM over the seeds that "
            f"did not diverge, with 95% bootstrap CIs; p: Welch's t-test against {baseline!r}. "
            f"{DIVERGENCE_RULE}",
            "",
        ]
        if differ:
            out.append("**The runs of this table differ in their settings:**")
            for key, found in differ.items():
                pairs = "; ".join(f"{v} ({', '.join(t)})" for v, t in found.items())
                out.append(f"- {key}: {pairs}")
            out.append("")
        out += [
            "| teacher | seeds | diverged | loss mean [95% CI] | loss IQM [95% CI] | p (loss) "
            "| accuracy mean [95% CI] | accuracy IQM [95% CI] | p (acc.) |",
            "|---|---:|---:|---|---|---:|---|---|---:|",
        ]
        env_rows = [r for r in rows if r.env_id == env_id]
        for row in env_rows:
            cells = [row.teacher, str(row.seeds), str(row.diverged)]
            for metric in ("loss", "accuracy"):
                result = row.metrics[metric]
                cells += [
                    _estimate(result.mean),
                    _estimate(result.iqm),
                    "—" if row.teacher == baseline else _p(result.welch_p),
                ]
            out.append("| " + " | ".join(cells) + " |")
        out += ["", *_paired_and_more(env_rows, baseline), ""]
    return "\n".join(out)


def _paired_and_more(rows: Sequence[TeacherResult], baseline: str) -> list[str]:
    """The second table of an env: paired tests, pre-adaptation scores, sample efficiency."""
    lines = [
        f"Paired tests against {baseline!r} over the seeds both have (a seed gives every "
        "teacher the same initial student and the same evaluation tasks): paired t-test "
        "and Wilcoxon signed-rank. Before adaptation: the unseen tasks' loss and accuracy "
        "at inner step 0. Target-loss AUC: the area under the target loss over training "
        "divided by the meta-steps (sample efficiency, lower is better).",
        "",
        "| teacher | pairs | p paired t (loss) | p Wilcoxon (loss) | p paired t (acc.) "
        "| p Wilcoxon (acc.) | loss before adaptation [95% CI] "
        "| accuracy before adaptation [95% CI] | target-loss AUC [95% CI] | p Welch (AUC) "
        "| p paired t (AUC) | p Wilcoxon (AUC) |",
        "|---|---:|---:|---:|---:|---:|---|---|---|---:|---:|---:|",
    ]
    for row in rows:
        base = row.teacher == baseline
        loss, accuracy, auc = (row.metrics[m] for m in ("loss", "accuracy", "target_auc"))
        cells = [row.teacher, "—" if base else str(loss.pairs)]
        for result in (loss, accuracy):
            cells += [
                "—" if base else _p(result.paired_t_p),
                "—" if base else _p(result.wilcoxon_p),
            ]
        cells += [_estimate(row.metrics[m].mean) for m in ("initial_loss", "initial_accuracy")]
        cells.append(_estimate(auc.mean))
        cells += ["—" if base else _p(p) for p in (auc.welch_p, auc.paired_t_p, auc.wilcoxon_p)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _estimate(e: Estimate) -> str:
    return f"{_num(e.value)} [{_num(e.low)}, {_num(e.high)}]"


#: ``done.json`` keys left out of ``runs.csv``: they differ between two executions of a run.
NOT_IN_RUNS_CSV = ("train_seconds", "eval_seconds", "finished", "config_digest", "diverged")


def write_results(
    rows: Sequence[TeacherResult], runs: Sequence[Run], out: str | Path
) -> list[Path]:
    """Write ``results.csv`` (a row per env and teacher), ``runs.csv`` (a row per run) and
    ``results.md`` to ``out``; returns their paths.

    ``runs.csv`` holds a run's numbers, ``diverged`` by :data:`DIVERGENCE_RULE` (and
    ``stopped_on_divergence``, the env's own flag) and its folder relative to the
    benchmark's root, not timings: a resumed benchmark writes the same bytes.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = []
    for row in rows:
        line: dict[str, Any] = {"env_id": row.env_id, "teacher": row.teacher, "seeds": row.seeds}
        line["diverged"] = row.diverged
        for metric, result in row.metrics.items():
            for stat, e in (("mean", result.mean), ("iqm", result.iqm)):
                line |= {f"{metric}_{stat}": e.value, f"{metric}_{stat}_low": e.low}
                line[f"{metric}_{stat}_high"] = e.high
            line[f"{metric}_p_vs_{BASELINE}"] = result.welch_p
            line[f"{metric}_paired_t_p_vs_{BASELINE}"] = result.paired_t_p
            line[f"{metric}_wilcoxon_p_vs_{BASELINE}"] = result.wilcoxon_p
            line[f"{metric}_pairs"] = result.pairs
        table.append(line)
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
    paths = [_write_csv(out / "results.csv", table), _write_csv(out / "runs.csv", per_run)]
    (out / "results.md").write_text(markdown(rows, runs))
    return [*paths, out / "results.md"]


def _write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    fields = list(dict.fromkeys(key for row in rows for key in row))  # runs of older versions
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows([{k: _cell(v) for k, v in row.items()} for row in rows])
    return path


def _cell(value: Any) -> Any:
    """A CSV cell: lists (a vector ω) as JSON, ``[20.0, 60.0, 0.5]``; the rest as it is."""
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def report(root: str | Path, out: str | Path | None = None) -> str:
    """Aggregate the finished runs under ``root``; write the results to ``out`` (default
    ``root``) and return the markdown table."""
    runs = load_runs(root)
    rows = summarize(runs)
    write_results(rows, runs, root if out is None else out)
    return markdown(rows, runs)
