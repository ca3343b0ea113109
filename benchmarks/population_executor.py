"""The ``population`` executor: the pending runs of an env stepped together, as one population.

Pending runs that share an env id, its settings and the evaluation form populations
of at most ``BenchConfig.population`` runs (``None``: all of them). A population is
one :class:`~metacurriculum.envs.MetaCurriculumVectorEnv` whose sub-env ``i`` is run
``i``, reset with the run's seed; each run keeps a teacher of its own, reset with its
sub-env's spaces and its seed, and acting on its sub-env's observation and ``info``.
The MAML students of the sub-envs train as the rows of one
:class:`~metacurriculum.student.Population` (on CUDA in grouped convolutions).

Each run is a :class:`~metacurriculum.benchmarks.episode.RunEpisode`, the per-run half
of :func:`~metacurriculum.benchmarks.episode.execute_run`'s loop: the same files
and, since a sub-env equals the single env with its seed and actions, the same
numbers (up to the floating-point rounding of batched ops; on the CPU's default loop
path, the same bits). A run's episode ends when its sub-env's does: at the budget, or
earlier when its student diverges; its student is saved and evaluated right then,
before the vector env's autoreset replaces it. A run whose teacher raises or returns
an action its env refuses (NaN, the wrong shape) fails alone, as it would in its own
process. A sub-env that has ended or whose run failed keeps being stepped with a
"stay" action until the population is done, and nothing of it is recorded. Resume is per run: a population holds only the
pending runs.

An env id whose vector entry point is not the package's (an env of your own) runs
one run after another, as the ``inline`` executor does.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from metacurriculum.benchmarks.episode import RunEpisode
from metacurriculum.benchmarks.executors import InlineExecutor, Job, RunEvents
from metacurriculum.benchmarks.plan import RunSpec
from metacurriculum.envs.vector_env import MetaCurriculumVectorEnv
from metacurriculum.registration import VECTOR_ENTRY_POINT

__all__ = ["PopulationExecutor", "populations"]

logger = logging.getLogger("metacurriculum.benchmarks")


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
    """The action that leaves ω as it is: for a sub-env whose run is over or failed.

    ``"omega"`` actions set ω itself, so there no fixed action stays; such a sub-env's
    last ω is of no interest (nothing of it is recorded), its space's low corner will do.
    """
    if isinstance(space, spaces.Discrete):
        return 1
    if isinstance(space, spaces.MultiDiscrete):
        return np.ones(space.shape, dtype=space.dtype)
    if isinstance(space, spaces.Box) and np.all(space.low <= 0) and np.all(space.high >= 0):
        return np.zeros(space.shape, dtype=space.dtype)
    return np.asarray(space.low, dtype=space.dtype)


def _batchable(action: Any, space: spaces.Space) -> Any:
    """A checked action in the shape of ``space``, so that the population's actions stack
    (a teacher may return a float for a one-dimensional ``Box``)."""
    if isinstance(space, spaces.Discrete):
        return action
    return np.asarray(action).reshape(space.shape)


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
                if gym.spec(population[0].registered_id).vector_entry_point != VECTOR_ENTRY_POINT:
                    InlineExecutor().run(population, job, events)
                else:
                    _Population(population, job.out, events).run()
        finally:
            torch.set_num_threads(before)


class _Population:
    """One population's episode: the vector env, and a :class:`RunEpisode` per run.

    The loop is the vector form of :func:`~metacurriculum.benchmarks.episode.execute_run`:
    each run's episode turns its sub-env's observation and ``info`` into its action
    (checked against its own sub-env), records its steps and evaluates its student.
    A run that fails (its teacher raises or returns an action its env refuses) is
    reported failed and its sub-env gets the "stay" action from then on, before the
    vector env checks any action: the other runs go on.
    """

    def __init__(self, specs: Sequence[RunSpec], out: str, events: RunEvents) -> None:
        self.specs, self.out, self.events = list(specs), out, events
        self.episodes: list[RunEpisode | None] = [None] * len(self.specs)
        self.live: set[int] = set()  # runs whose episode goes on
        self.evaluated: dict[int, BaseException | None] = {}  # ended runs: evaluation error

    def run(self) -> None:
        specs = self.specs
        with contextlib.ExitStack() as stack:
            self.live = set(range(len(specs)))
            for i, spec in enumerate(specs):
                episode = self._guard(
                    i, RunEpisode, spec, self.out, self.events.step, self.events.phase
                )
                if episode is not None:
                    self.episodes[i] = stack.enter_context(episode)
            if not self.live:
                return
            settings = specs[0].env_settings()
            logger.info(
                "a population of %d runs of %s: loading the data and building its vector env",
                len(specs),
                specs[0].env_id,
            )
            try:
                envs = MetaCurriculumVectorEnv(
                    len(specs), settings, max_episode_steps=settings.episode_steps
                )
            except Exception as error:  # the env fails every run of the population
                self._fail_all(error)
                return
            stack.callback(envs.close)
            for i in sorted(self.live):
                self.episodes[i].record.start()
            self.started = time.perf_counter()
            try:
                obs, info = envs.reset(seed=[spec.seed for spec in specs])
            except Exception as error:  # the env fails every run of the population
                self._fail_all(error)
                return
            self.action_spaces = envs.get_attr("action_space")
            infos = [_own(info, i) for i in range(len(specs))]
            for i in sorted(self.live):
                self._guard(i, self.episodes[i].reset, envs.envs[i], infos[i])
            envs.on_episode_end = self._ended
            self._loop(envs, obs, infos)

    def _loop(self, envs: MetaCurriculumVectorEnv, obs: np.ndarray, infos: list[dict]) -> None:
        actions = [_stay(space) for space in self.action_spaces]
        while self.live:
            for i in range(len(actions)):
                live = i in self.live
                action = (
                    self._guard(i, self.episodes[i].act, obs[i].copy(), infos[i]) if live else None
                )
                # A failed run's sub-env stays where it is: the vector env never sees the
                # action that failed it. So does an ended run's restarted sub-env: at the
                # easiest ω, where the steps it must still take until the others end (under a
                # compute budget runs end at different steps) cost least.
                actions[i] = (
                    _batchable(action, self.action_spaces[i])
                    if i in self.live
                    else _stay(self.action_spaces[i])
                )
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
                episode = self.episodes[i]  # an ended run's clock stopped before its evaluation
                wall_s = episode.record.train_seconds or wall
                self._guard(i, episode.step, infos[i], actions[i], float(rewards[i]), wall_s)
                if ended and i in self.live:
                    self._finish(i, infos[i], bool(terminated[i]))

    def _ended(self, i: int, sub_env: gym.Env) -> None:
        """Sub-env ``i``'s episode has ended: save and evaluate its student now."""
        if i not in self.live:
            return
        try:
            self.episodes[i].evaluate(sub_env)
        except Exception as error:
            self.evaluated[i] = error
        else:
            self.evaluated[i] = None

    def _finish(self, i: int, info: dict[str, Any], terminated: bool) -> None:
        self.live.discard(i)
        error = self.evaluated.get(i)
        if error is None:
            try:
                summary = self.episodes[i].finish(info, terminated)
            except Exception as failure:
                error = failure
        if error is not None:
            self.events.failed(self.specs[i], error)
        else:
            self.events.finished(self.specs[i], summary)

    def _guard(self, i: int, call: Any, *args: Any) -> Any:
        """``call(*args)`` for run ``i``; a failure fails that run alone (``None``)."""
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
