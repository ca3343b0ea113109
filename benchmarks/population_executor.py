"""The ``population`` executor: the pending runs of an env stepped together, as one population.

Pending runs that share an env id, its settings and the evaluation form populations
of at most ``BenchConfig.population`` runs (``None``: all of them). A population is
one :class:`~metacurriculum.envs.MetaCurriculumVectorEnv` whose sub-env ``i`` is run
``i``, reset with the run's seed; each run keeps a teacher of its own, reset with its
sub-env's spaces and its seed, and acting on its sub-env's observation and ``info``.
The MAML students of the sub-envs train as the rows of one
:class:`~metacurriculum.student.Population` (on CUDA in grouped convolutions).

Each run's folder is written by :class:`~metacurriculum.benchmarks.harness.RunRecord`,
as :func:`~metacurriculum.benchmarks.harness.execute_run` writes it: the same files
and, since a sub-env equals the single env with its seed and actions, the same
numbers (up to the floating-point rounding of batched ops; on the CPU's default loop
path, the same bits). A run's episode ends when its sub-env's does: at the budget, or
earlier when its student diverges; its student is saved and evaluated right then,
before the vector env's autoreset replaces it. A sub-env that has ended or whose
teacher failed keeps being stepped with a "stay" action until the population is done,
and nothing of it is recorded. Resume is per run: a population holds only the
pending runs.

An env id whose vector entry point is not the package's (an env of your own) runs
one run after another, as the ``inline`` executor does.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from metacurriculum.benchmarks.executors import InlineExecutor, Job, RunEvents
from metacurriculum.benchmarks.harness import RunRecord, RunSpec
from metacurriculum.envs.vector_env import MetaCurriculumVectorEnv
from metacurriculum.registration import VECTOR_ENTRY_POINT

__all__ = ["PopulationExecutor", "populations"]


def populations(pending: Sequence[RunSpec], size: int | None) -> list[list[RunSpec]]:
    """``pending`` grouped by env id, env settings and evaluation, in chunks of ``size``
    runs at most (``None``: one chunk per group), in the order the runs come."""
    groups: dict[str, list[RunSpec]] = {}
    for spec in pending:
        key = json.dumps(
            [spec.env_id, dict(spec.env_kwargs), spec.eval_tasks, spec.eval_seed],
            sort_keys=True,
            default=str,
        )
        groups.setdefault(key, []).append(spec)
    chunks = []
    for group in groups.values():
        step = size or len(group)
        chunks += [group[i : i + step] for i in range(0, len(group), step)]
    return chunks


def _own(info: dict[str, Any], i: int) -> dict[str, Any]:
    """Sub-env ``i``'s info out of a vector env's info, with Python scalars as the
    single env gives them."""
    out = {}
    for key, value in info.items():
        if key.startswith("_") or not info[f"_{key}"][i]:
            continue
        item = _own(value, i) if isinstance(value, dict) else value[i]
        out[key] = item.item() if isinstance(item, np.generic) else item
    return out


def _stay(space: spaces.Space) -> Any:
    """The action that leaves ω as it is: for a sub-env whose run is over."""
    if isinstance(space, spaces.Discrete):
        return 1
    return np.zeros(space.shape, dtype=space.dtype)


class PopulationExecutor:
    """Runs populations of runs in this process, on ``job.threads`` torch threads; the
    population size is ``job.config.population`` (``None``: every pending run of an env)."""

    def run(self, pending: Sequence[RunSpec], job: Job, events: RunEvents) -> None:
        """See :meth:`~metacurriculum.benchmarks.executors.Executor.run`."""
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(job.threads)
        try:
            for population in populations(pending, job.config.population):
                if gym.spec(population[0].env_id).vector_entry_point != VECTOR_ENTRY_POINT:
                    InlineExecutor().run(population, job, events)
                else:
                    _Population(population, job.out, events).run()
        finally:
            torch.set_num_threads(before)


class _Population:
    """One population's episode: the vector env, a teacher and a record per run."""

    def __init__(self, specs: Sequence[RunSpec], out: str, events: RunEvents) -> None:
        self.specs, self.out, self.events = list(specs), out, events
        self.live: set[int] = set()  # runs whose episode goes on
        self.evaluated: dict[int, BaseException | None] = {}  # ended runs: evaluation error

    def run(self) -> None:
        from metacurriculum.teachers import make_teacher

        specs = self.specs
        with contextlib.ExitStack() as stack:
            self.records = [stack.enter_context(RunRecord(spec, self.out)) for spec in specs]
            settings = specs[0].env_settings()
            envs = MetaCurriculumVectorEnv(
                len(specs), settings, max_episode_steps=settings.episode_steps
            )
            stack.callback(envs.close)
            self.teachers = [None] * len(specs)
            self.live = set(range(len(specs)))
            for i, spec in enumerate(specs):
                self.teachers[i] = self._guard(
                    i, lambda s=spec: make_teacher(s.teacher, **s.teacher_kwargs)
                )
            for record in self.records:
                record.start()
            self.started = time.perf_counter()
            try:
                obs, info = envs.reset(seed=[spec.seed for spec in specs])
            except Exception as error:  # the env fails every run of the population
                self._fail_all(error)
                return
            self.action_spaces = envs.get_attr("action_space")
            observation_spaces = envs.get_attr("observation_space")
            infos = [_own(info, i) for i in range(len(specs))]
            for i in sorted(self.live):
                self._guard(i, self._reset_teacher, i, observation_spaces[i], infos[i])
            envs.on_episode_end = self._ended
            self._loop(envs, obs, infos, int(settings.budget))

    def _reset_teacher(self, i: int, observation_space: spaces.Space, info: dict) -> None:
        self.teachers[i].reset(observation_space, self.action_spaces[i], seed=self.specs[i].seed)
        self.records[i].reset(info)

    def _loop(
        self, envs: MetaCurriculumVectorEnv, obs: np.ndarray, infos: list[dict], budget: int
    ) -> None:
        actions = [_stay(space) for space in self.action_spaces]
        while self.live:
            for i in sorted(self.live):
                actions[i] = self._guard(i, self.teachers[i].act, obs[i].copy(), infos[i])
                if i not in self.live:
                    actions[i] = _stay(self.action_spaces[i])
            if not self.live:
                return
            self.evaluated.clear()
            try:
                obs, rewards, terminated, truncated, info = envs.step(np.stack(actions))
            except Exception as error:
                self._fail_all(error)
                return
            wall = time.perf_counter() - self.started
            for i in sorted(self.live):
                ended = bool(terminated[i] or truncated[i])
                infos[i] = _own(info["final_info"] if ended else info, i)
                record = self.records[i]  # an ended run's clock stopped before its evaluation
                record.step(infos[i], actions[i], float(rewards[i]), record.train_seconds or wall)
                self.events.step(self.specs[i], int(infos[i]["meta_step"]), budget)
                if ended:
                    self._finish(i, infos[i], bool(terminated[i]))

    def _ended(self, i: int, sub_env: gym.Env) -> None:
        """Sub-env ``i``'s episode has ended: save and evaluate its student now."""
        if i not in self.live:
            return
        self.records[i].end_training()
        try:
            self.records[i].evaluate(sub_env)
        except Exception as error:
            self.evaluated[i] = error
        else:
            self.evaluated[i] = None

    def _finish(self, i: int, info: dict[str, Any], terminated: bool) -> None:
        self.live.discard(i)
        error = self.evaluated.get(i)
        if error is None:
            try:
                summary = self.records[i].finish(info, terminated, self.teachers[i])
            except Exception as failure:
                error = failure
        if error is not None:
            self.events.failed(self.specs[i], error)
        else:
            self.events.finished(self.specs[i], summary)

    def _guard(self, i: int, call: Any, *args: Any) -> Any:
        """``call(*args)`` for run ``i``; a failure fails that run alone."""
        try:
            result = call(*args)
        except Exception as error:  # one failed run must not stop the others
            self.live.discard(i)
            self.events.failed(self.specs[i], error)
            return None
        return result

    def _fail_all(self, error: BaseException) -> None:
        for i in sorted(self.live):
            self.events.failed(self.specs[i], error)
        self.live.clear()
