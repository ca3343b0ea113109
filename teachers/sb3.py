"""Stable-Baselines3 models as teachers, and training them with settings for expensive envs.

Every env step of a meta-curriculum env trains a student for ``update_rate``
meta-steps, so an episode is a few hundred expensive steps: SB3's defaults (PPO's
2048-step rollouts, DQN's target update every 10,000 steps) would never update within
a useful budget. :data:`SB3_ALGOS` holds settings sized for such envs. SB3 is an
optional dependency (``pip install metacurriculum[sb3]``), imported only here, inside
the functions that need it.

One policy can learn from many students at once: ``train_sb3_teacher(..., n_envs=16)``
builds ``gym.make_vec(env_id, num_envs=16)`` (whose students train as one population)
and hands it to SB3 through :func:`sb3_vec_env`, an SB3 ``VecEnv`` over any Gymnasium
``VectorEnv`` with ``AutoresetMode.SAME_STEP``.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv

from metacurriculum.teachers.base import Action, register_teacher

INSTALL_HINT = "pip install metacurriculum[sb3]"

logger = logging.getLogger(__name__)


class SB3Teacher:
    """Any model with ``predict(observation, deterministic=...)`` (an SB3 model) as a teacher.

    Args:
        model: the trained model; its policy stays on the device it was loaded to.
        deterministic: act on the policy's mode rather than sampling from it.
    """

    #: A policy acts in whatever action space it was trained on, vector ω included.
    vector = True

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
    env: gym.Env | VectorEnv | str,
    total_timesteps: int,
    seed: int | None = None,
    path: str | Path | None = None,
    progress: bool = False,
    n_envs: int = 1,
    **overrides: Any,
) -> Any:
    """Train an SB3 model as a teacher, with the settings of :data:`SB3_ALGOS`.

    Args:
        algo: ``"ppo"``, ``"a2c"``, ``"sac"`` (``Box`` actions) or ``"dqn"``
            (``Discrete`` actions: make the env with ``action_type="discrete"``).
        env: the env, an env id (``gym.make``, or ``gym.make_vec`` when ``n_envs > 1``),
            or a Gymnasium ``VectorEnv`` with SAME_STEP autoreset (``gym.make_vec``'s).
        total_timesteps: env steps to train for, summed over sub-envs (PPO and A2C
            round up to whole rollouts of ``n_steps`` per sub-env).
        seed: seeds the model (its policy initialisation and sampling) and, through
            SB3, the envs' first reset (sub-env ``i`` gets ``seed + i``).
        path: where to save the model (a ``.zip``); nothing is saved when ``None``.
        progress: show a progress bar of the env steps (tqdm).
        n_envs: students trained at once, one policy acting for all: with an env id,
            ``gym.make_vec(env, num_envs=n_envs)``; with a vector env, its ``num_envs``
            (or leave it at 1).
        **overrides: constructor arguments that replace the defaults, e.g. ``gamma=0.9``.

    On Ctrl-C the model trained so far is saved next to ``path`` as
    ``<stem>.interrupted.zip`` before the interrupt propagates.

    Returns:
        The trained model; ``SB3Teacher(model)`` (or ``as_teacher``) makes it a teacher.
    """
    spec = _algo(algo)
    if isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs < 1:
        raise ValueError(f"n_envs={n_envs!r} must be an integer >= 1.")
    if isinstance(env, str):
        env = gym.make(env) if n_envs == 1 else gym.make_vec(env, num_envs=n_envs)
    elif isinstance(env, VectorEnv):
        if n_envs not in (1, env.num_envs):
            raise ValueError(
                f"n_envs={n_envs} but the vector env has num_envs={env.num_envs}; "
                "leave n_envs at 1 for a vector env."
            )
    elif n_envs != 1:
        raise ValueError(
            f"n_envs={n_envs} needs an env id or a gym.make_vec env, got the single env "
            f"{env}; pass its id, or gym.make_vec(id, num_envs={n_envs})."
        )
    action_space = env.single_action_space if isinstance(env, VectorEnv) else env.action_space
    if spec.action_space is not None and not isinstance(action_space, spec.action_space):
        needed = "discrete" if spec.action_space is spaces.Discrete else "continuous"
        fix = f"make the env with action_type={needed!r}"
        if isinstance(action_space, spaces.MultiDiscrete) or (
            isinstance(action_space, spaces.Box)
            and action_space.shape[0] > 1
            and needed == "discrete"
        ):  # a vector ω: its discrete actions are MultiDiscrete, which DQN does not take
            fix = "this env's ω is a vector; use PPO or A2C (any action type) or SAC (continuous)"
        raise ValueError(
            f"{algo.upper()} needs a {spec.action_space.__name__} action space, the env has "
            f"{action_space}; {fix}."
        )
    if not isinstance(total_timesteps, int) or total_timesteps < 1:
        raise ValueError(f"total_timesteps={total_timesteps!r} must be an integer >= 1.")
    settings = {"device": "cpu", "verbose": 0, **spec.defaults, **overrides}
    cls = spec.load_class()
    if isinstance(env, VectorEnv):
        from stable_baselines3.common.vec_env import VecMonitor

        env = VecMonitor(sb3_vec_env(env))  # episode returns for SB3's logs
    model = cls("MlpPolicy", env, seed=seed, **settings)
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


#: Entries of a saved model that acting never uses, with what stands in for them: they
#: are not unpickled (a pickled schedule often fails under another Python version; and
#: it is code). ``_setup_model`` rebuilds what it needs from the plain settings.
NOT_NEEDED_TO_ACT: dict[str, Any] = {
    "lr_schedule": lambda _: 0.0,
    "clip_range": lambda _: 0.0,
    "exploration_schedule": None,
    "rollout_buffer_class": None,
    "replay_buffer_class": None,
    "train_freq": 1,
}


def _model_archive(path: Path) -> None:
    """Raise ``ValueError`` unless ``path`` looks like a saved SB3 model: a zip holding a
    ``data`` JSON object and ``policy.pth`` (checked before anything in it is loaded)."""
    import zipfile

    fix = "save one with `metacurriculum train-teacher` or model.save(path)"
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            text = archive.read("data") if "data" in names else None
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise ValueError(
            f"{path} is not a saved SB3 model (not a whole zip: {error}); {fix}."
        ) from None
    missing = sorted({"data", "policy.pth"} - names)
    if missing:
        raise ValueError(f"{path} is a zip without {missing}: not a saved SB3 model; {fix}.")
    try:
        data = json.loads(text)
    except ValueError as error:  # UnicodeDecodeError included
        raise ValueError(f"{path} holds damaged settings ('data': {error}); {fix}.") from None
    if not isinstance(data, dict) or "policy_class" not in data:
        raise ValueError(
            f"{path}: its 'data' lacks the policy class: not a saved SB3 model; {fix}."
        )


@register_teacher("sb3")
def load_sb3_teacher(path: str | Path, algo: str = "ppo", deterministic: bool = True) -> SB3Teacher:
    """Load a model saved by :func:`train_sb3_teacher` (or ``model.save``) as a teacher.

    **Loading runs code stored in the file**: SB3 unpickles the model's policy class and
    spaces with cloudpickle (as SB3's documentation warns). Load only files you trust.
    Of the file only what acting needs is unpickled: :data:`NOT_NEEDED_TO_ACT` (the
    training schedules and buffer classes) is not. The file's layout is checked before
    anything in it is loaded.

    Args:
        path: the saved ``.zip`` (``path + ".zip"`` when ``path`` is not a file, as
            SB3's ``save`` names it).
        algo: the algorithm it was trained with (a key of :data:`SB3_ALGOS`).
        deterministic: act on the policy's mode.

    Raises:
        FileNotFoundError: when there is no file at ``path``.
        ValueError: when the file is not a saved model of ``algo`` (not a zip, damaged,
            saved by another algorithm); the message names the file and the fix.
    """
    cls = _algo(algo).load_class()
    path = Path(path)
    if not path.is_file() and Path(f"{path}.zip").is_file():
        path = Path(f"{path}.zip")  # SB3's convention: model.save("ppo") writes ppo.zip
    if not path.is_file():
        raise FileNotFoundError(f"no saved model at {path} (nor {path}.zip).")
    _model_archive(path)
    try:
        model = cls.load(path, device="cpu", custom_objects=NOT_NEEDED_TO_ACT)
    except (KeyError, AssertionError, ValueError, TypeError, AttributeError, RuntimeError) as error:
        raise ValueError(
            f"{path} could not be loaded as an SB3 {algo.upper()} model "
            f"({type(error).__name__}: {error}); was it saved by {algo.upper()}? Pass its "
            "algo=, or save it again with `metacurriculum train-teacher`."
        ) from None
    return SB3Teacher(model, deterministic=deterministic)
