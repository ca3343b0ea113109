"""An SB3 ``VecEnv`` over a Gymnasium ``VectorEnv``: one policy trained on many students.

``train_sb3_teacher(..., n_envs=16)`` builds ``gym.make_vec(env_id, num_envs=16)``
(whose students train as one population) and hands it to SB3 through
:func:`sb3_vec_env`, since SB3 takes no Gymnasium vector env.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

INSTALL_HINT = "pip install metacurriculum[sb3]"


def sb3_vec_env(venv: VectorEnv) -> Any:
    """A Gymnasium ``VectorEnv`` as an SB3 ``VecEnv`` (SB3 takes no Gymnasium vector env).

    The vector env must autoreset in the same step (``AutoresetMode.SAME_STEP``, as
    ``gym.make_vec`` of a meta-curriculum id does): a done sub-env's returned
    observation is then already its next episode's, and its last one goes to
    ``info["terminal_observation"]`` with ``info["TimeLimit.truncated"]``, as SB3
    expects. Infos become one dict per sub-env (the ended episode's info for a done
    sub-env; its reset info goes to ``reset_infos``). ``seed()`` seeds the next
    ``reset`` (sub-env ``i`` with ``seed + i``); ``env_method`` and ``get_attr``
    reach the sub-envs through the vector env's ``call`` and ``get_attr``.

    Raises:
        ValueError: If the vector env autoresets in another mode.
    """
    mode = venv.metadata.get("autoreset_mode")
    if mode != AutoresetMode.SAME_STEP:
        raise ValueError(
            f"the vector env autoresets in mode {mode!r}; SB3 needs AutoresetMode.SAME_STEP "
            "(gym.make_vec of a meta-curriculum id gives it; for vectorization_mode='sync' "
            "pass vector_kwargs={'autoreset_mode': AutoresetMode.SAME_STEP})."
        )
    return _vec_env_class()(venv)


def _sub_info(info: Mapping[str, Any], i: int) -> dict[str, Any]:
    """Sub-env ``i``'s own entries of a Gymnasium vector info (``_``-masks respected)."""
    out = {}
    for key, value in info.items():
        if key.startswith("_") or key in ("final_obs", "final_info"):
            continue
        mask = info.get(f"_{key}")
        if mask is not None and not mask[i]:
            continue
        out[key] = _sub_info(value, i) if isinstance(value, Mapping) else value[i]
    return out


@functools.cache
def _vec_env_class() -> type:
    try:
        from stable_baselines3.common.vec_env import VecEnv
    except ImportError as error:
        raise ImportError(f"SB3 teachers need stable-baselines3: {INSTALL_HINT}") from error

    class GymnasiumVecEnv(VecEnv):
        """SB3's ``VecEnv`` over a Gymnasium ``VectorEnv`` with SAME_STEP autoreset."""

        def __init__(self, venv: VectorEnv) -> None:
            self.venv = venv  # before VecEnv.__init__, which reads render_mode through get_attr
            super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
            self._actions: Any = None

        def reset(self) -> np.ndarray:
            seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
            if any(options != self._options[0] for options in self._options):
                raise ValueError("set_options() must give every sub-env the same options.")
            obs, info = self.venv.reset(seed=seeds, options=self._options[0] or None)
            self.reset_infos = [_sub_info(info, i) for i in range(self.num_envs)]
            self._reset_seeds()
            self._reset_options()
            return obs

        def step_async(self, actions: np.ndarray) -> None:
            self._actions = actions

        def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
            obs, rewards, terminated, truncated, info = self.venv.step(self._actions)
            dones = np.logical_or(terminated, truncated)
            infos = []
            for i in range(self.num_envs):
                own = _sub_info(info, i)
                if dones[i]:
                    self.reset_infos[i] = own
                    own = _sub_info(info["final_info"], i)
                    own["terminal_observation"] = info["final_obs"][i]
                    own["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
                infos.append(own)
            return obs, np.asarray(rewards, dtype=np.float32), dones, infos

        def close(self) -> None:
            self.venv.close()

        def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
            indices = list(self._get_indices(indices))
            if attr_name == "render_mode":
                return [self.venv.render_mode] * len(indices)
            values = self.venv.get_attr(attr_name)
            return [values[i] for i in indices]

        def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
            indices = list(self._get_indices(indices))
            values = list(self.venv.get_attr(attr_name))
            for i in indices:
                values[i] = value
            self.venv.set_attr(attr_name, values)

        def env_method(
            self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any
        ) -> list[Any]:
            results = self.venv.call(method_name, *method_args, **method_kwargs)
            return [results[i] for i in self._get_indices(indices)]

        def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
            return [False] * len(list(self._get_indices(indices)))

    return GymnasiumVecEnv
