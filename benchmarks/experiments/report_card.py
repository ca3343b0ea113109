"""The report card: every registered teacher on every analytic profile, one table.

Each profile (:mod:`metacurriculum.envs.analytic_profiles`) is built so that a known kind
of teacher wins on it; the report card runs every registered teacher (but ``sb3``, which
needs a trained model) on every profile from the same seeds, scores each run as the
harness does (the final evaluation's loss after adaptation on unseen tasks of the
hardest distribution, the same tasks for every teacher), and writes one table: the mean
final loss of each teacher on each profile, its rank, and per profile the winner, the
teachers that should win by construction, the runner-up's gap and a paired t-test of
the winner against it. Runs are in this process (the students answer in microseconds;
ALP-GMM's fits take most of the time)::

    python -m metacurriculum.benchmarks.experiments.report_card --seeds 5 --out docs/report_card

Writes ``report_card.json`` (every episode) and ``report_card.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

import metacurriculum  # noqa: F401 - registers the ids
from metacurriculum.teachers import list_teachers, make_teacher
from metacurriculum.teachers.evaluation import run_episode


@dataclass(frozen=True)
class Profile:
    """A profile of the report card.

    Attributes:
        env_id: its registered id.
        name: its column header.
        lesson: what it teaches, in a few words.
        expected: the teachers that should win on it by construction.
    """

    env_id: str
    name: str
    lesson: str
    expected: tuple[str, ...]


PROFILES: tuple[Profile, ...] = (
    Profile(
        "MetaCurriculum-AnalyticEasyFirst-v0",
        "easy-first",
        "tasks just beyond the skill teach most",
        ("static", "adaptive", "adaptive-paper"),
    ),
    Profile(
        "MetaCurriculum-AnalyticHardest-v0",
        "hardest",
        "the hardest tasks teach most: a curriculum can only lose",
        ("none",),
    ),
    Profile(
        "MetaCurriculum-AnalyticForgetting-v0",
        "forgetting",
        "skills decay unless practised",
        ("random", "adr"),
    ),
    Profile(
        "MetaCurriculum-AnalyticNoisy-v0",
        "noisy",
        "measurements from few tasks, each with a large error",
        ("linear",),
    ),
    Profile(
        "MetaCurriculum-AnalyticCalibrated-v0",
        "calibrated",
        "fitted to the MAML student at the reduced settings",
        ("none", "random", "linear", "target-bandit", "mixture"),
    ),
    Profile(
        "MetaCurriculum-AnalyticLocal-v0",
        "local (3-d ω)",
        "competence is local; the target is one corner",
        ("linear", "adaptive"),
    ),
)


def report_card_teachers() -> list[str]:
    """Every registered teacher but ``sb3`` (it needs a trained model) and the Syllabus
    teachers when Syllabus is not installed."""
    from importlib.util import find_spec

    syllabus = find_spec("syllabus") is not None
    return [
        name
        for name in list_teachers()
        if name != "sb3" and (syllabus or not name.startswith("syllabus"))
    ]


def run_profile(
    profile: Profile, teachers: Sequence[str], seeds: Sequence[int], eval_tasks: int
) -> dict[str, list[float] | None]:
    """Final losses per teacher on ``profile`` (``None`` for a teacher that cannot steer
    its ω: a one-coordinate teacher on a vector ω)."""
    env = gym.make(profile.env_id)
    out: dict[str, list[float] | None] = {}
    for name in tqdm(teachers, desc=profile.name, leave=False):
        try:
            episodes = [
                run_episode(env, make_teacher(name), seed, eval_tasks=eval_tasks) for seed in seeds
            ]
        except ValueError as error:
            if "vector" not in str(error):
                raise
            out[name] = None
            continue
        out[name] = [episode.test_loss for episode in episodes]
    return out


def paired_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided paired t-test p-value (NaN without scipy, with one pair or equal pairs)."""
    try:
        from scipy import stats
    except ImportError:
        return math.nan
    if len(a) < 2 or np.allclose(a, b):
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_rel(a, b).pvalue)


def table(results: dict[str, dict[str, list[float] | None]], seeds: Sequence[int]) -> str:
    """Markdown: teachers x profiles (mean final loss, rank), then the winners."""
    profiles = [p for p in PROFILES if p.env_id in results]
    teachers = list(next(iter(results.values())))
    means = {
        p.env_id: {t: float(np.mean(v)) for t, v in results[p.env_id].items() if v is not None}
        for p in profiles
    }
    ranks = {
        env_id: {t: i + 1 for i, t in enumerate(sorted(m, key=m.get))}
        for env_id, m in means.items()
    }
    lines = [
        f"Mean final loss over {len(seeds)} seeds (lower is better) and rank per profile; "
        "bold: the winner; —: a one-coordinate teacher on a vector ω.",
        "",
        "| teacher | " + " | ".join(p.name for p in profiles) + " |",
        "|---|" + "---:|" * len(profiles),
    ]
    for teacher in teachers:
        cells = []
        for p in profiles:
            if teacher not in means[p.env_id]:
                cells.append("—")
                continue
            text = f"{means[p.env_id][teacher]:.3f} ({ranks[p.env_id][teacher]})"
            cells.append(f"**{text}**" if ranks[p.env_id][teacher] == 1 else text)
        lines.append(f"| {teacher} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| profile | what it teaches | should win | winner | runner-up | gap | p (paired t) |",
    ]
    lines.append("|---|---|---|---|---|---:|---:|")
    for p in profiles:
        order = sorted(means[p.env_id], key=means[p.env_id].get)
        first, second = order[0], order[1]
        gap = means[p.env_id][second] - means[p.env_id][first]
        p_value = paired_p(results[p.env_id][first], results[p.env_id][second])
        held = "" if first in p.expected else " (not as expected)"
        lines.append(
            f"| {p.name} | {p.lesson} | {', '.join(p.expected)} | {first}{held} | {second} "
            f"| {gap:.4f} | {p_value:.3g} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    parser.add_argument("--teachers", help="comma-separated (default: every registered one)")
    parser.add_argument("--profiles", help="comma-separated column names (default: all)")
    parser.add_argument("--eval-tasks", type=int, default=100)
    parser.add_argument("--out", default="runs/report_card")
    args = parser.parse_args(argv)
    teachers = args.teachers.split(",") if args.teachers else report_card_teachers()
    chosen = args.profiles.split(",") if args.profiles else [p.name for p in PROFILES]
    seeds = list(range(args.seeds))
    start, cpu = time.perf_counter(), time.process_time()
    results: dict[str, Any] = {}
    for profile in PROFILES:
        if profile.name in chosen:
            results[profile.env_id] = run_profile(profile, teachers, seeds, args.eval_tasks)
    text = table(results, seeds)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "seeds": seeds,
        "eval_tasks": args.eval_tasks,
        "profiles": [asdict(p) for p in PROFILES if p.env_id in results],
        "final_loss": results,
        "wall_s": time.perf_counter() - start,
        "cpu_s": time.process_time() - cpu,
    }
    (out / "report_card.json").write_text(json.dumps(record, indent=1) + "\n")
    (out / "report_card.md").write_text(text + "\n")
    print(text)
    print(f"{record['wall_s']:.0f} s wall, {record['cpu_s']:.0f} s CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
