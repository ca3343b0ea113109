"""Run a teacher for whole episodes and score the students it leaves: the one evaluation
loop of the SB3 training callbacks and the in-process benchmarks.

A teacher's score on a seed is the harness's: the final evaluation of the trained student
on unseen tasks of the hardest distribution (``env.evaluate_test``), the mean loss after
the last inner step; the same ``eval_seed`` gives every teacher the same tasks. The
episode's return (the env's own reward) and its last normalised target loss come along.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from metacurriculum.teachers.base import make_teacher


@dataclass(frozen=True)
class Episode:
    """One episode of a teacher.

    Attributes:
        seed: the env's and the teacher's seed.
        test_loss: the final evaluation's mean loss after adaptation (NaN when not run).
        target_loss: the normalised loss on the fixed hardest tasks at the episode's end.
        episode_return: the sum of the env's rewards.
        steps: env steps taken.
        diverged: the student diverged (the episode terminated).
        omegas: ω after every step (a float, or a list for a vector ω).
    """

    seed: int
    test_loss: float
    target_loss: float
    episode_return: float
    steps: int
    diverged: bool
    omegas: list[Any] = field(repr=False)


def run_episode(
    env: gym.Env, teacher: Any, seed: int, eval_tasks: int = 100, eval_seed: int = 0
) -> Episode:
    """Run ``teacher`` on ``env`` for one episode from ``seed`` and evaluate the student.

    Args:
        env: a meta-curriculum env (wrappers allowed).
        teacher: anything with ``reset`` and ``act`` (:class:`~metacurriculum.teachers.Teacher`).
        seed: seeds ``env.reset`` and the teacher's ``reset``.
        eval_tasks: unseen tasks of the final evaluation; 0 skips it (``test_loss`` NaN).
        eval_seed: seed of the final evaluation's tasks.
    """
    obs, info = env.reset(seed=seed)
    teacher.reset(env.observation_space, env.action_space, seed=seed)
    total, steps, omegas = 0.0, 0, []
    terminated = truncated = False
    while not (terminated or truncated):
        obs, reward, terminated, truncated, info = env.step(teacher.act(obs, info))
        total += float(reward)
        steps += 1
        omega = info["omega"]
        omegas.append(omega.tolist() if isinstance(omega, np.ndarray) else float(omega))
    test_loss = math.nan
    if eval_tasks > 0:
        curves = env.unwrapped.evaluate_test(num_tasks=eval_tasks, seed=eval_seed)
        test_loss = float(np.mean(curves.loss[:, -1]))
    return Episode(
        seed=seed,
        test_loss=test_loss,
        target_loss=float(info["target_loss_normalized"]),
        episode_return=total,
        steps=steps,
        diverged=bool(info["diverged"]),
        omegas=omegas,
    )


def evaluate_teacher(
    env: gym.Env,
    teacher: Any,
    seeds: Sequence[int],
    eval_tasks: int = 100,
    eval_seed: int = 0,
    **teacher_kwargs: Any,
) -> list[Episode]:
    """:func:`run_episode` from every seed of ``seeds``; ``teacher`` is a teacher or a
    registered name (built with ``teacher_kwargs``)."""
    if isinstance(teacher, str):
        teacher = make_teacher(teacher, **teacher_kwargs)
    return [run_episode(env, teacher, seed, eval_tasks, eval_seed) for seed in seeds]
