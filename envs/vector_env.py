"""``gym.make_vec``'s env: N meta-curriculum envs whose students train as one population.

Every registered id has this class as its ``vector_entry_point``::

    envs = gym.make_vec("MetaCurriculum-Omniglot20-v0", num_envs=16)
    obs, info = envs.reset(seed=0)  # sub-env i is seeded with 0 + i
    obs, rewards, terminated, truncated, info = envs.step(envs.action_space.sample())

``vectorization_mode="sync"`` still gives Gymnasium's ``SyncVectorEnv`` of
single envs, which steps the students one after another.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array, iterate

from metacurriculum.envs.config import MetaCurriculumConfig
from metacurriculum.envs.meta_env import MetaCurriculumEnv


class MetaCurriculumVectorEnv(VectorEnv):
    """``num_envs`` :class:`~metacurriculum.envs.MetaCurriculumEnv` s stepped together.

    Each sub-env is an ordinary ``MetaCurriculumEnv`` (same spaces, rewards,
    observation, info and episode end; see its docstring). With a meta-learner
    (``student="learner"``, any ``learner``), the sub-envs' students are the rows of one
    :class:`~metacurriculum.student.Population`: a vector step runs every
    sub-env's ``update_rate`` meta-steps and its measurements in batched calls
    (on CUDA the R x T tasks in grouped convolutions; on the CPU one student after
    another, measured fastest there), and hands each sub-env its results
    (:meth:`MetaCurriculumEnv.record_step`). The analytic student steps per sub-env.

    ## Equivalence and seeding

    Sub-env ``i`` of ``reset(seed=s)`` is seeded with ``s + i`` (a list gives one
    seed per sub-env; ``None`` leaves each unseeded), as Gymnasium's
    ``SyncVectorEnv`` does. Its trajectory for given actions equals the single env's
    with that seed and those actions: the same numbers up to floating-point
    rounding of the batched ops (the tests hold float64 runs to 1e-9). A sub-env's
    students, tasks and noise never depend on the other sub-envs or on ``num_envs``.

    ## Spaces

    ``single_observation_space`` and ``single_action_space`` are the single env's;
    ``observation_space`` and ``action_space`` are Gymnasium's batched forms
    (``Box`` with a leading ``num_envs`` axis; ``MultiDiscrete`` for the discrete
    action type).

    ## Autoreset: ``AutoresetMode.SAME_STEP``

    A sub-env whose episode ends (terminated: its student diverged; truncated: the
    budget or ``max_episode_steps`` is spent) is reset in the same ``step`` call,
    without a seed (it goes on with its own generator, as ``env.reset()`` does): the
    step returns the new episode's first observation and reset info for it, and
    the ended episode's last observation and info in ``info["final_obs"]`` (an
    object array, ``None`` elsewhere) and ``info["final_info"]``, each with its
    ``"_"`` mask.

    ## Info

    Gymnasium's vector form: each key of the single env's info holds a
    ``num_envs`` array (``n_way``, a list per sub-env, an object array) and
    ``"_" + key`` a bool mask of the sub-envs that set it.

    Args:
        num_envs: The number of sub-envs, an int >= 1.
        config: The sub-envs' settings; keyword ``overrides`` replace fields.
        max_episode_steps: Truncate each sub-env's episode after this many steps
            (``gym.make_vec`` passes the registered value, as ``gym.make`` wraps a
            single env in a ``TimeLimit``); ``None`` (or ``-1``, as in ``gym.make``)
            leaves it to the budget. Under a ``compute_budget`` pass ``-1``: a limit
            may cut a compute-budgeted episode short (a warning says so).
        render_mode: ``None`` or ``"ansi"`` (``render()`` returns one string per sub-env).
        chunk_size: Students per grouped call of the population; ``None`` fits
            them to the device's free memory.

    Attributes:
        on_episode_end: ``None``, or a callable ``on_episode_end(i, sub_env)`` called
            when sub-env ``i``'s episode has ended, before the SAME_STEP autoreset
            replaces its student: the one moment its trained student can still be
            saved or evaluated (the harness's population executor does both).
    """

    metadata = {  # noqa: RUF012 - Gymnasium convention
        "render_modes": ["ansi"],
        "render_fps": 4,
        "autoreset_mode": AutoresetMode.SAME_STEP,
    }

    def __init__(
        self,
        num_envs: int = 1,
        config: MetaCurriculumConfig | None = None,
        *,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        chunk_size: int | None = None,
        **overrides: Any,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)):
            raise TypeError(f"num_envs={num_envs!r} must be an int >= 1.")
        if num_envs < 1:
            raise ValueError(f"num_envs={num_envs} must be >= 1: the number of sub-envs.")
        if max_episode_steps == -1 and not isinstance(max_episode_steps, bool):
            max_episode_steps = None  # gym.make's "no time limit"
        if max_episode_steps is not None and (
            isinstance(max_episode_steps, bool)
            or not isinstance(max_episode_steps, int)
            or max_episode_steps < 1
        ):
            raise ValueError(
                f"max_episode_steps={max_episode_steps!r} must be None, -1 (no limit) or an "
                "int >= 1."
            )
        self.num_envs = int(num_envs)
        self.envs = [
            MetaCurriculumEnv(config, render_mode=render_mode, **overrides)
            for _ in range(self.num_envs)
        ]
        self.config = self.envs[0].config
        self.render_mode = render_mode
        self.max_episode_steps = max_episode_steps
        if max_episode_steps is not None and self.config.compute_budget is not None:
            warnings.warn(
                f"the sub-envs end their episodes on compute_budget="
                f"{self.config.compute_budget!r}, but max_episode_steps={max_episode_steps} "
                "(the registered time limit, under gym.make_vec) may cut them short; pass "
                "max_episode_steps=-1.",
                stacklevel=2,
            )
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self.envs[0].action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.students = None
        if self.config.student == "learner":
            from metacurriculum.envs.learner_student import LearnerStudents

            self.students = LearnerStudents(self.config, self.num_envs, chunk_size=chunk_size)
            for i, env in enumerate(self.envs):
                env.student_factory = lambda config, seed, i=i: self.students.attach(i, seed)
        self._elapsed = np.zeros(self.num_envs, dtype=np.int64)
        self._started = False
        self.on_episode_end: Callable[[int, MetaCurriculumEnv], None] | None = None

    # -- Gymnasium VectorEnv API ---------------------------------------------------

    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every sub-env: sub-env ``i`` with ``seed + i`` (see the class docstring).

        ``options`` go to every sub-env's ``reset`` (e.g. ``{"omega": 5.0}``).
        """
        if options and "reset_mask" in options:
            raise ValueError(
                "reset(options={'reset_mask': ...}) is for AutoresetMode.DISABLED; this env "
                "autoresets in SAME_STEP mode, so reset() always resets every sub-env."
            )
        seeds = self._seeds(seed)
        if isinstance(seed, (int, np.integer)):
            super().reset(seed=int(seed))
        observations, infos = [], {}
        for i, single_seed in enumerate(seeds):
            obs, info = self._reset_one(i, single_seed, options)
            observations.append(obs)
            infos = self._add_info(infos, info, i)
        self._started = True
        return self._batch(observations), infos

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every sub-env with its action; ended episodes reset in the same call."""
        if not self._started:
            raise RuntimeError("call reset() before step().")
        actions = list(iterate(self.action_space, actions))
        if len(actions) != self.num_envs:
            raise ValueError(f"got {len(actions)} actions for {self.num_envs} sub-envs.")
        # Every action is checked (and its ω computed) before any student trains.
        omegas = [env.omega_for_action(a) for env, a in zip(self.envs, actions, strict=True)]
        if self.students is not None:
            for env in self.envs:
                env._require_running()
            results = self.students.step(range(self.num_envs), omegas, self.config.update_rate)
        observations, infos = [], {}
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminated = np.zeros(self.num_envs, dtype=np.bool_)
        truncated = np.zeros(self.num_envs, dtype=np.bool_)
        for i, (env, action) in enumerate(zip(self.envs, actions, strict=True)):
            if self.students is not None:
                obs, rewards[i], terminated[i], truncated[i], info = env.record_step(
                    omegas[i], results[i]
                )
            else:
                obs, rewards[i], terminated[i], truncated[i], info = env.step(action)
            self._elapsed[i] += 1
            if self.max_episode_steps is not None:
                truncated[i] |= self._elapsed[i] >= self.max_episode_steps
            if terminated[i] or truncated[i]:
                infos = self._add_info(infos, {"final_obs": obs, "final_info": info}, i)
                if self.on_episode_end is not None:
                    self.on_episode_end(i, env)
                obs, info = self._reset_one(i, None, None)
            observations.append(obs)
            infos = self._add_info(infos, info, i)
        return self._batch(observations), rewards, terminated, truncated, infos

    def render(self) -> tuple[str | None, ...] | None:
        """One ``render()`` per sub-env (``render_mode="ansi"``), else ``None``."""
        if self.render_mode is None:
            return None
        return tuple(env.render() for env in self.envs)

    def close_extras(self, **kwargs: Any) -> None:
        for env in self.envs:
            env.close()
        self.students = None

    # -- sub-env access (as SyncVectorEnv) ---------------------------------------------

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Call method ``name`` of every sub-env (or read attribute ``name``); one result each.

        E.g. ``call("evaluate_test", num_tasks=200)`` or ``call("save_student", path)``
        (a path per sub-env: use :meth:`call_each`).
        """
        results = []
        for env in self.envs:
            attribute = getattr(env, name)
            results.append(attribute(*args, **kwargs) if callable(attribute) else attribute)
        return tuple(results)

    def call_each(self, name: str, arguments: Sequence[tuple[Any, ...]]) -> tuple[Any, ...]:
        """Call method ``name`` of sub-env ``i`` with ``*arguments[i]``."""
        if len(arguments) != self.num_envs:
            raise ValueError(f"got {len(arguments)} argument tuples for {self.num_envs} sub-envs.")
        return tuple(
            getattr(env, name)(*args) for env, args in zip(self.envs, arguments, strict=True)
        )

    def get_attr(self, name: str) -> tuple[Any, ...]:
        """Attribute ``name`` of every sub-env (e.g. ``"omega"``, ``"meta_step"``)."""
        return tuple(getattr(env, name) for env in self.envs)

    def set_attr(self, name: str, values: Any) -> None:
        """Set attribute ``name`` of every sub-env: one value each (a list or tuple), or one for all."""
        if not isinstance(values, (list, tuple)):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError(f"got {len(values)} values for {self.num_envs} sub-envs.")
        for env, value in zip(self.envs, values, strict=True):
            setattr(env, name, value)

    # -- helpers -------------------------------------------------------------------

    def _seeds(self, seed: int | Sequence[int | None] | None) -> list[int | None]:
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            return [int(seed) + i for i in range(self.num_envs)]
        seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(
                f"reset(seed=...) got {len(seeds)} seeds for num_envs={self.num_envs}; "
                "give one per sub-env, a single int (sub-env i gets seed + i) or None."
            )
        return seeds

    def _reset_one(
        self, i: int, seed: int | None, options: dict[str, Any] | None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        env = self.envs[i]
        obs, info = env.reset(seed=seed, options=options)  # its student: row i, fresh
        self._elapsed[i] = 0
        return obs, info

    def _batch(self, observations: list[np.ndarray]) -> np.ndarray:
        out = create_empty_array(self.single_observation_space, self.num_envs)
        return concatenate(self.single_observation_space, observations, out)
