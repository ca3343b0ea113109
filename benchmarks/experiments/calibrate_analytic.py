"""Fit the calibrated analytic profile to measured runs of the MAML student.

The model (:class:`~metacurriculum.envs.analytic_profiles.CalibratedStudent`): one
amount of training ``u``, 0 at first; a meta-step on tasks of ``n`` classes adds ``k *
g(n)`` (the mean over its tasks, ``g(n_max) = 1``), and the normalised loss of an ``n``-way
task is ``b_n + (a_n - b_n) * exp(-u)``: from ``a_n`` before training towards ``b_n``.
``g`` says how much a task of ``n`` classes teaches the hardest tasks, relative to them.
Each run's recorded tasks (``steps.jsonl``'s ``n_way``) drive the model; the fit
(``scipy.optimize.least_squares``) matches its normalised target loss (the 8 fixed
5-way tasks) and its validation loss at ω (expected over the two class counts around
ω) after every env step, over every run given. The residuals' spread is the
measurement error, which the profile draws per task::

    metacurriculum bench --preset reduced --teachers none,linear,random --seeds 0,1 \\
        --workers 1 --threads 1 --out runs/calib
    python -m metacurriculum.benchmarks.experiments.calibrate_analytic runs/calib --out docs/analytic

Writes ``calibration.json`` (the parameters, per-run errors) and prints a Markdown table.
Needs scipy (``pip install metacurriculum[stats]``).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from metacurriculum.benchmarks.run_folders import read_steps


def load(root: Path) -> list[dict[str, Any]]:
    """Every finished run under ``root``: its teacher, seed, settings and steps."""
    runs = []
    for done in sorted(root.glob("*/*/seed_*/done.json")):
        folder = done.parent
        config = json.loads((folder / "config.json").read_text())
        evaluation = json.loads((folder / "evaluation.json").read_text())
        runs.append(
            {
                "teacher": folder.parent.name,
                "seed": int(folder.name.removeprefix("seed_")),
                "settings": config["env_settings"],
                "steps": read_steps(folder / "steps.jsonl"),
                "test_loss": float(evaluation["loss_mean"][-1]),
            }
        )
    if not runs:
        raise FileNotFoundError(f"no finished run under {root}; run the bench command first.")
    return runs


def unpack(theta: np.ndarray, n_values: np.ndarray) -> dict[str, Any]:
    """Parameter vector -> ``k``, ``g``, ``a``, ``b`` (per number of classes)."""
    m = len(n_values)
    return {
        "k": float(math.exp(theta[0])),
        "g": np.append(theta[1:m], 1.0),
        "a": theta[m : 2 * m],
        "b": theta[2 * m : 3 * m],
    }


def predict(params: dict[str, Any], run: dict[str, Any], n_values: np.ndarray) -> dict[str, Any]:
    """The model's normalised target and validation losses after every step of ``run``."""
    index = {int(n): i for i, n in enumerate(n_values)}
    u, target, val = 0.0, [], []
    for row in run["steps"]:
        tasks = [index[int(n)] for n in row.get("n_way") or []]
        if tasks:
            u += params["k"] * float(np.mean(params["g"][tasks])) * len(tasks) / run["meta_batch"]
        loss = params["b"] + (params["a"] - params["b"]) * math.exp(-u)
        target.append(loss[-1])
        omega = float(row["omega"])
        low = min(max(math.floor(omega), int(n_values[0])), int(n_values[-1]))
        frac = min(max(omega - low, 0.0), 1.0)
        high = min(low + 1, int(n_values[-1]))
        val.append((1 - frac) * loss[index[low]] + frac * loss[index[high]])
    return {"target": np.array(target), "val": np.array(val), "u": u}


def fit(runs: list[dict[str, Any]], n_values: np.ndarray) -> dict[str, Any]:
    """Least-squares fit of the model to every run; the parameters and the errors."""
    from scipy.optimize import least_squares

    for run in runs:
        run["meta_batch"] = int(run["settings"].get("meta_batch", 8))
    measured_t = [np.array([r["target_loss_normalized"] for r in run["steps"]]) for run in runs]
    measured_v = [np.array([r["val_loss_normalized"] for r in run["steps"]]) for run in runs]

    def residuals(theta: np.ndarray) -> np.ndarray:
        params = unpack(theta, n_values)
        out = []
        for run, t, v in zip(runs, measured_t, measured_v, strict=True):
            predicted = predict(params, run, n_values)
            out.extend([predicted["target"] - t, predicted["val"] - v])
        return np.concatenate(out)

    m = len(n_values)
    start = np.concatenate(
        [[math.log(0.01)], np.full(m - 1, 1.0), np.full(m, 0.8), np.full(m, 0.4)]
    )
    low = np.concatenate([[math.log(1e-5)], np.zeros(m - 1), np.zeros(m), np.zeros(m)])
    high = np.concatenate([[math.log(1.0)], np.full(m - 1, 5.0), np.full(m, 2.0), np.full(m, 2.0)])
    result = least_squares(residuals, start, bounds=(low, high))
    params = unpack(result.x, n_values)
    per_run = []
    for run, t, v in zip(runs, measured_t, measured_v, strict=True):
        predicted = predict(params, run, n_values)
        per_run.append(
            {
                "teacher": run["teacher"],
                "seed": run["seed"],
                "target_rmse": float(np.sqrt(np.mean((predicted["target"] - t) ** 2))),
                "val_rmse": float(np.sqrt(np.mean((predicted["val"] - v) ** 2))),
                "final_target_measured": float(np.mean(t[-5:])),
                "final_target_model": float(np.mean(predicted["target"][-5:])),
                "test_loss_measured": run["test_loss"],
            }
        )
    target_res = np.concatenate(
        [predict(params, r, n_values)["target"] - t for r, t in zip(runs, measured_t, strict=True)]
    )
    val_res = np.concatenate(
        [predict(params, r, n_values)["val"] - v for r, v in zip(runs, measured_v, strict=True)]
    )
    settings = runs[0]["settings"]
    return {
        "n_values": [int(n) for n in n_values],
        "k": params["k"],
        "g": [float(x) for x in params["g"]],
        "a": [float(x) for x in params["a"]],
        "b": [float(x) for x in params["b"]],
        "target_rmse": float(np.sqrt(np.mean(target_res**2))),
        "val_rmse": float(np.sqrt(np.mean(val_res**2))),
        # A measurement averages its tasks: per-task error = the residual's spread x sqrt(tasks).
        "task_noise_target": float(np.std(target_res) * math.sqrt(settings.get("target_tasks", 8))),
        "task_noise_val": float(np.std(val_res) * math.sqrt(settings.get("val_tasks", 4))),
        "runs": per_run,
    }


def table(result: dict[str, Any]) -> str:
    """Markdown: the fitted parameters and each run's error."""
    n = result["n_values"]
    lines = [
        f"k = {result['k']:.4f} per meta-step; per number of classes {n}: "
        f"g = {[round(x, 3) for x in result['g']]}, a = {[round(x, 3) for x in result['a']]}, "
        f"b = {[round(x, 3) for x in result['b']]}",
        f"RMSE over every step: target {result['target_rmse']:.3f}, validation "
        f"{result['val_rmse']:.3f} (normalised loss); per-task error drawn by the profile: "
        f"target {result['task_noise_target']:.3f}, validation {result['task_noise_val']:.3f}",
        "",
        "| teacher | seed | target RMSE | validation RMSE | final target, measured | final target, model |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for run in result["runs"]:
        lines.append(
            f"| {run['teacher']} | {run['seed']} | {run['target_rmse']:.3f} | {run['val_rmse']:.3f} "
            f"| {run['final_target_measured']:.3f} | {run['final_target_model']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", help="a bench --out folder of the MAML student's runs")
    parser.add_argument("--out", help="folder for calibration.json (default: print only)")
    args = parser.parse_args(argv)
    runs = load(Path(args.runs))
    settings = runs[0]["settings"]
    n_values = np.arange(math.floor(settings.get("omega_min", 2)), settings["n_max"] + 1)
    result = fit(runs, n_values)
    text = table(result)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "calibration.json").write_text(json.dumps(result, indent=1) + "\n")
        (Path(args.out) / "calibration.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
