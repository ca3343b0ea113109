"""Stable-Baselines3 models as teachers, and training them with settings for expensive envs.

Every env step of a meta-curriculum env trains a student for ``update_rate``
meta-steps, so an episode is a few hundred expensive steps: SB3's defaults (PPO's
2048-step rollouts, DQN's target update every 10,000 steps) would never update within
a useful budget. :data:`SB3_ALGOS` holds settings sized for such envs. SB3 is an
optional dependency (``pip install metacurriculum[sb3]``), imported only here, inside
the functions that need it.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from metacurriculum.teachers.base import Action, register_teacher

INSTALL_HINT = "pip install metacurriculum[sb3]"

logger = logging.getLogger(__name__)


class SB3Teacher:
    """Any model with ``predict(observation, deterministic=...)`` (an SB3 model) as a teacher.

    Args:
        model: the trained model; its policy stays on the device it was loaded to.
        deterministic: act on the policy's mode rather than sampling from it.
    """

    def __init__(self, model: Any, deterministic: bool = True) -> None:
        if not callable(getattr(model, "predict", None)):
            raise TypeError(
                f"{type(model).__name__} has no predict(observation, deterministic=...) method."
            )
        self.model = model
        self.deterministic = deterministic

    def reset(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        seed: int | None = None,
    ) -> None:
        """Check that the model was trained on spaces of this shape; ``seed`` is unused
        (a deterministic policy needs none; a stochastic one samples through torch)."""
        for kind, env_space in (("observation", observation_space), ("action", action_space)):
            model_space = getattr(self.model, f"{kind}_space", None)
            if model_space is None:
                continue
            if type(model_space) is not type(env_space) or model_space.shape != env_space.shape:
                raise ValueError(
                    f"the model was trained on {kind} space {model_space}, the env has {env_space}; "
                    "make the env with the settings the model was trained on (history, action_type)."
                )

    def act(self, observation: np.ndarray, info: Mapping[str, Any]) -> Action:
        """The model's action for ``observation``; ``info`` is not used."""
        action, _ = self.model.predict(observation, deterministic=self.deterministic)
        if np.ndim(action) == 0:
            return int(action)
        return action

    def __repr__(self) -> str:
        return f"SB3Teacher({type(self.model).__name__}, deterministic={self.deterministic})"


@dataclass(frozen=True)
class SB3Algo:
    """An SB3 algorithm and its defaults for envs of a few hundred expensive steps.

    Attributes:
        cls: the class name in ``stable_baselines3``.
        action_space: the action space it needs (``spaces.Box``, ``spaces.Discrete``),
            or ``None`` when it takes both.
        defaults: constructor arguments, overridable in :func:`train_sb3_teacher`.
    """

    cls: str
    action_space: type | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def load_class(self) -> type:
        """The algorithm's class; SB3 is imported here."""
        try:
            sb3 = importlib.import_module("stable_baselines3")
        except ImportError as error:
            raise ImportError(f"SB3 teachers need stable-baselines3: {INSTALL_HINT}") from error
        return getattr(sb3, self.cls)


def _tiny_mlp() -> dict[str, Any]:
    return {"net_arch": [32, 32]}


#: Algorithms by name. All run on the CPU: the policies are tiny MLPs, the GPU is the student's.
SB3_ALGOS: dict[str, SB3Algo] = {
    # 32-step rollouts (8 updates in a 250-step episode), 2 minibatches of 16, 4 epochs.
    "ppo": SB3Algo(
        "PPO", None, {"n_steps": 32, "batch_size": 16, "n_epochs": 4, "policy_kwargs": _tiny_mlp()}
    ),
    # An update every 8 steps.
    "a2c": SB3Algo("A2C", None, {"n_steps": 8, "policy_kwargs": _tiny_mlp()}),
    # Learns from step 16 on, one gradient step per env step; the buffer holds every step.
    "sac": SB3Algo(
        "SAC",
        spaces.Box,
        {
            "learning_starts": 16,
            "buffer_size": 10_000,
            "batch_size": 32,
            "train_freq": 1,
            "gradient_steps": 1,
            "policy_kwargs": _tiny_mlp(),
        },
    ),
    # Target network every 25 steps; ε decays over the first 30% of training to 0.05.
    "dqn": SB3Algo(
        "DQN",
        spaces.Discrete,
        {
            "learning_starts": 16,
            "buffer_size": 10_000,
            "batch_size": 32,
            "train_freq": 1,
            "gradient_steps": 1,
            "target_update_interval": 25,
            "exploration_fraction": 0.3,
            "exploration_final_eps": 0.05,
            "policy_kwargs": _tiny_mlp(),
        },
    ),
}


def _algo(algo: str) -> SB3Algo:
    if algo not in SB3_ALGOS:
        raise ValueError(f"algo={algo!r} is unknown; choose one of {sorted(SB3_ALGOS)}.")
    return SB3_ALGOS[algo]


def train_sb3_teacher(
    algo: str,
    env: gym.Env | str,
    total_timesteps: int,
    seed: int | None = None,
    path: str | Path | None = None,
    progress: bool = False,
    **overrides: Any,
) -> Any:
    """Train an SB3 model as a teacher, with the settings of :data:`SB3_ALGOS`.

    Args:
        algo: ``"ppo"``, ``"a2c"``, ``"sac"`` (``Box`` actions) or ``"dqn"``
            (``Discrete`` actions: make the env with ``action_type="discrete"``).
        env: the env, or an env id for ``gym.make``.
        total_timesteps: env steps to train for (PPO and A2C round up to whole rollouts).
        seed: seeds the model (its policy initialisation and sampling).
        path: where to save the model (a ``.zip``); nothing is saved when ``None``.
        progress: show a progress bar of the env steps (tqdm).

    On Ctrl-C the model trained so far is saved next to ``path`` as
    ``<stem>.interrupted.zip`` before the interrupt propagates.
        **overrides: constructor arguments that replace the defaults, e.g. ``gamma=0.9``.

    Returns:
        The trained model; ``SB3Teacher(model)`` (or ``as_teacher``) makes it a teacher.
    """
    spec = _algo(algo)
    if isinstance(env, str):
        env = gym.make(env)
    if spec.action_space is not None and not isinstance(env.action_space, spec.action_space):
        needed = "discrete" if spec.action_space is spaces.Discrete else "continuous"
        raise ValueError(
            f"{algo.upper()} needs a {spec.action_space.__name__} action space, the env has "
            f"{env.action_space}; make the env with action_type={needed!r}."
        )
    if not isinstance(total_timesteps, int) or total_timesteps < 1:
        raise ValueError(f"total_timesteps={total_timesteps!r} must be an integer >= 1.")
    settings = {"device": "cpu", "verbose": 0, **spec.defaults, **overrides}
    model = spec.load_class()("MlpPolicy", env, seed=seed, **settings)
    try:
        model.learn(total_timesteps=total_timesteps, callback=_progress_bar() if progress else None)
    except KeyboardInterrupt:
        if path is not None:  # keep what was learnt; the full path stays for a finished model
            partial = Path(path).with_name(f"{Path(path).stem}.interrupted.zip")
            model.save(str(partial))
            logger.warning("interrupted after %d env steps; saved %s", model.num_timesteps, partial)
        raise
    if path is not None:
        model.save(str(path))
    return model


def _progress_bar() -> Any:
    """An SB3 callback drawing a tqdm bar of env steps (SB3's own needs ``rich`` too)."""
    from stable_baselines3.common.callbacks import BaseCallback
    from tqdm.auto import tqdm

    class ProgressBar(BaseCallback):
        def _on_training_start(self) -> None:
            total = self.locals.get("total_timesteps")
            self.bar = tqdm(total=total, desc="teacher training", unit="env step")

        def _on_step(self) -> bool:
            self.bar.update(self.training_env.num_envs)
            return True

        def _on_training_end(self) -> None:
            self.bar.close()

    return ProgressBar()


@register_teacher("sb3")
def load_sb3_teacher(path: str | Path, algo: str = "ppo", deterministic: bool = True) -> SB3Teacher:
    """Load a model saved by :func:`train_sb3_teacher` (or ``model.save``) as a teacher.

    Args:
        path: the saved ``.zip``.
        algo: the algorithm it was trained with (a key of :data:`SB3_ALGOS`).
        deterministic: act on the policy's mode.
    """
    cls = _algo(algo).load_class()
    if not Path(path).exists() and not Path(f"{path}.zip").exists():
        raise FileNotFoundError(f"no saved model at {path!s} (nor {path!s}.zip).")
    return SB3Teacher(cls.load(str(path), device="cpu"), deterministic=deterministic)
