"""Stable-Baselines3 models as teachers, and training them so that they learn a curriculum.

:func:`train_sb3_teacher` trains PPO, A2C, SAC or DQN with the settings of
:data:`SB3_ALGOS`, which learn a curriculum on the analytic students (measured by
``benchmarks/experiments/sb3_teachers.py``): SB3's defaults (PPO's 2048-step rollouts, DQN's target
update every 10,000 steps, gamma 0.99 on a flat reward) learn nothing within a useful
budget. Training is watched as SB3 users expect: a progress bar, SB3's logger (and
TensorBoard with ``tensorboard_log``), callbacks, checkpoints, and the policy evaluated
as a teacher on held-out seeds beside ``none`` and ``random``
(:mod:`~metacurriculum.teachers.sb3_callbacks`), with a warning when it beats neither.
SB3 is an optional dependency (``pip install metacurriculum[sb3]``), imported only
inside the functions that need it.

One policy can learn from many students at once: ``train_sb3_teacher(..., n_envs=16)``
builds ``gym.make_vec(env_id, num_envs=16)`` (whose students train as one population)
and hands it to SB3 through :func:`~metacurriculum.teachers.sb3_vec.sb3_vec_env`.
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
from gymnasium.vector import VectorEnv

from metacurriculum.teachers.base import Action, register_teacher
from metacurriculum.teachers.sb3_vec import sb3_vec_env

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
            same_bounds = not isinstance(env_space, spaces.Box) or (
                np.array_equal(model_space.low, env_space.low)
                and np.array_equal(model_space.high, env_space.high)
            )
            if (
                type(model_space) is not type(env_space)
                or model_space.shape != env_space.shape
                or not same_bounds
            ):
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
    """An SB3 algorithm and the settings with which it learns a curriculum.

    Attributes:
        cls: the class name in ``stable_baselines3``.
        action_space: the action space it needs (``spaces.Box``, ``spaces.Discrete``),
            or ``None`` when it takes both.
        defaults: constructor arguments, overridable in :func:`train_sb3_teacher`.
        env_kwargs: the env settings it was tuned with (the reward, the action type),
            applied when :func:`train_sb3_teacher` makes the env from an id.
    """

    cls: str
    action_space: type | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def load_class(self) -> type:
        """The algorithm's class; SB3 is imported here."""
        try:
            sb3 = importlib.import_module("stable_baselines3")
        except ImportError as error:
            raise ImportError(f"SB3 teachers need stable-baselines3: {INSTALL_HINT}") from error
        return getattr(sb3, self.cls)


#: Algorithms by name, with the settings that learn a curriculum on the analytic students
#: (``benchmarks/experiments/sb3_teachers.py`` measures them; the README has the numbers). All run on
#: the CPU: the policies are small MLPs, the GPU is the student's. The reward is the
#: log-odds of the target loss (``reward="target_logit"``) for PPO, A2C and SAC: with
#: the default ``target`` reward PPO at gamma 0.95 learns nothing (the loss is flat until
#: the student nears the hardest tasks). DQN learns from ``target`` at gamma 0.99.
#: ``benchmarks/experiments/sb3_teachers.py`` trains PPO and A2C on 4 students at once (``n_envs=4``).
SB3_ALGOS: dict[str, SB3Algo] = {
    # One 256-step rollout per sub-env (an analytic episode is 250 steps), 10 epochs of
    # minibatches of 256; a short horizon (gamma 0.95): the reward is dense.
    "ppo": SB3Algo(
        "PPO",
        None,
        {
            "n_steps": 256,
            "batch_size": 256,
            "n_epochs": 10,
            "gamma": 0.95,
            "gae_lambda": 0.9,
            "policy_kwargs": {"net_arch": [64, 64], "log_std_init": -1.5},
        },
        {"reward": "target_logit"},
    ),
    # An update every 32 steps per sub-env, with Adam at 1e-4 and normalised advantages
    # (with SB3's RMSprop at 7e-4 the policy's mean ran to the top of ω and stayed).
    "a2c": SB3Algo(
        "A2C",
        None,
        {
            "n_steps": 32,
            "learning_rate": 1e-4,
            "use_rms_prop": False,
            "normalize_advantage": True,
            "gamma": 0.95,
            "gae_lambda": 0.9,
            "policy_kwargs": {"net_arch": [64, 64], "log_std_init": -1.5},
        },
        {"reward": "target_logit"},
    ),
    # Learns from step 1000 on (four episodes of random actions), one gradient step per
    # env step, choosing ω itself (action_type="omega"), a small fixed entropy bonus. The
    # weakest of the four: it beats none and random but ends far from the hand-made
    # schedules (README); change actions, the automatic entropy, gSDE, a lower target
    # entropy and reward normalisation did worse.
    "sac": SB3Algo(
        "SAC",
        spaces.Box,
        {
            "learning_starts": 1000,
            "buffer_size": 50_000,
            "batch_size": 256,
            "train_freq": 1,
            "gradient_steps": 1,
            "gamma": 0.95,
            "ent_coef": 0.005,
            "policy_kwargs": {"net_arch": [64, 64]},
        },
        {"reward": "target_logit", "action_type": "omega"},
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
            "policy_kwargs": {"net_arch": [32, 32]},
        },
        {"reward": "target", "action_type": "discrete"},
    ),
}


def _algo(algo: str) -> SB3Algo:
    if algo not in SB3_ALGOS:
        raise ValueError(f"algo={algo!r} is unknown; choose one of {sorted(SB3_ALGOS)}.")
    return SB3_ALGOS[algo]


def _make_envs(
    env: gym.Env | VectorEnv | str, n_envs: int, env_kwargs: Mapping[str, Any]
) -> tuple[gym.Env | VectorEnv, Any]:
    """The training env and a maker of the evaluation env (``None`` when it cannot be
    rebuilt: an env without a registered spec)."""
    if isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs < 1:
        raise ValueError(f"n_envs={n_envs!r} must be an integer >= 1.")
    if isinstance(env, str):
        from metacurriculum.envs import make_env

        env_id = env
        env = (
            make_env(env_id, **env_kwargs)
            if n_envs == 1
            else gym.make_vec(env_id, num_envs=n_envs, **env_kwargs)
        )
        return env, functools.partial(make_env, env_id, **env_kwargs)
    if isinstance(env, VectorEnv):
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
    spec = getattr(env, "spec", None)
    if spec is None or spec.id not in gym.registry:
        return env, None
    from metacurriculum.envs import make_env

    vector_only = ("max_episode_steps", "num_envs", "vectorization_mode", "vector_kwargs")
    settings = {k: v for k, v in (spec.kwargs or {}).items() if k not in vector_only}
    return env, functools.partial(make_env, spec.id, **settings)


def _check_action_space(algo: str, spec: SB3Algo, env: gym.Env | VectorEnv) -> None:
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


def train_sb3_teacher(
    algo: str,
    env: gym.Env | VectorEnv | str,
    total_timesteps: int,
    seed: int | None = None,
    path: str | Path | None = None,
    progress: bool = False,
    n_envs: int = 1,
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    callback: Any = None,
    eval_freq: int | None = None,
    eval_episodes: int = 5,
    checkpoint_freq: int | None = None,
    tensorboard_log: str | Path | None = None,
    verbose: int = 0,
    **overrides: Any,
) -> Any:
    """Train an SB3 model as a teacher, with the settings of :data:`SB3_ALGOS`.

    The policy is evaluated as a teacher on ``eval_episodes`` held-out seeds every
    ``eval_freq`` env steps and when training ends, beside ``none`` and ``random`` on the
    same seeds (:func:`~metacurriculum.teachers.sb3_callbacks.teacher_eval_callback`);
    each evaluation is logged (and printed with ``verbose=1``), and a policy that ends no
    better than both raises :class:`~metacurriculum.teachers.sb3_callbacks.TeacherTrainingWarning`.
    The curve is ``model.teacher_eval_curve`` (``(env steps, mean final loss)`` pairs),
    the baselines' losses ``model.teacher_eval_baselines``; both are saved with the model.

    Args:
        algo: ``"ppo"``, ``"a2c"``, ``"sac"`` (``Box`` actions) or ``"dqn"``
            (``Discrete`` actions: made from an id, the env gets ``action_type="discrete"``).
        env: the env, an env id (``metacurriculum.envs.make_env``, or ``gym.make_vec``
            when ``n_envs > 1``, with the algorithm's ``env_kwargs`` and ``env_kwargs``),
            or a Gymnasium ``VectorEnv`` with SAME_STEP autoreset (``gym.make_vec``'s).
        total_timesteps: env steps to train for, summed over sub-envs (PPO and A2C
            round up to whole rollouts of ``n_steps`` per sub-env).
        seed: seeds the model (its policy initialisation and sampling) and, through
            SB3, the envs' first reset (sub-env ``i`` gets ``seed + i``).
        path: where to save the model (a ``.zip``); nothing is saved when ``None``.
            With an evaluation, the best policy goes to ``<stem>.best.zip`` beside it.
        progress: show a progress bar of the env steps (tqdm).
        n_envs: students trained at once, one policy acting for all: with an env id,
            ``gym.make_vec(env, num_envs=n_envs)``; with a vector env, its ``num_envs``
            (or leave it at 1).
        env_kwargs: env settings over the algorithm's (:attr:`SB3Algo.env_kwargs`), for
            an env id only; a made env is used as it is.
        callback: SB3 callback(s) run beside the evaluation (e.g. SB3's own).
        eval_freq: evaluate every ``eval_freq`` env steps; ``None``: when training ends.
        eval_episodes: held-out seeds of each evaluation (10000, 10001, ...); 0 turns the
            evaluation off (and the warning with it). The env is rebuilt from its id.
        checkpoint_freq: save the model every ``checkpoint_freq`` env steps to
            ``<stem>_checkpoints/`` beside ``path`` (SB3's ``CheckpointCallback``).
        tensorboard_log: folder of TensorBoard event files (SB3's logger: losses,
            episode returns, and the evaluations as ``eval/*``); needs ``tensorboard``.
        verbose: SB3's verbosity (1: its training tables and the evaluations printed).
        **overrides: constructor arguments that replace the defaults, e.g. ``gamma=0.9``.

    On Ctrl-C the model trained so far is saved next to ``path`` as
    ``<stem>.interrupted.zip`` before the interrupt propagates.

    Returns:
        The trained model; ``SB3Teacher(model)`` (or ``as_teacher``) makes it a teacher.
    """
    from metacurriculum.teachers.sb3_callbacks import progress_bar, teacher_eval_callback

    spec = _algo(algo)
    if not isinstance(total_timesteps, int) or total_timesteps < 1:
        raise ValueError(f"total_timesteps={total_timesteps!r} must be an integer >= 1.")
    settings_env = {**spec.env_kwargs, **(env_kwargs or {})} if isinstance(env, str) else {}
    if not isinstance(env, str) and env_kwargs:
        raise ValueError(
            f"env_kwargs={dict(env_kwargs)!r} need an env id; the env {env} is made already "
            "(make it with those settings, or pass its id)."
        )
    env, make_eval_env = _make_envs(env, n_envs, settings_env)
    _check_action_space(algo, spec, env)
    cls = spec.load_class()
    if tensorboard_log is not None:
        _require_tensorboard()
    settings = {"device": "cpu", "verbose": verbose, **spec.defaults, **overrides}
    if tensorboard_log is not None:
        settings["tensorboard_log"] = str(tensorboard_log)
    if isinstance(env, VectorEnv):
        from stable_baselines3.common.vec_env import VecMonitor

        env = VecMonitor(sb3_vec_env(env))  # episode returns for SB3's logs
    model = cls("MlpPolicy", env, seed=seed, **settings)
    callbacks = [progress_bar()] if progress else []
    evaluation = None
    if eval_episodes > 0 and make_eval_env is None:
        logger.warning("no evaluation: the env has no registered id to rebuild it from")
    elif eval_episodes > 0:
        best = None if path is None else Path(path).with_name(f"{Path(path).stem}.best.zip")
        evaluation = teacher_eval_callback(
            make_eval_env,
            eval_freq,
            seeds=range(10_000, 10_000 + eval_episodes),
            best_model_path=best,
            verbose=verbose,
        )
        callbacks.append(evaluation)
    if checkpoint_freq is not None:
        from stable_baselines3.common.callbacks import CheckpointCallback

        folder = Path(path or f"teacher_{algo}").with_suffix("")
        callbacks.append(
            CheckpointCallback(
                max(checkpoint_freq // model.n_envs, 1),
                str(folder.with_name(f"{folder.name}_checkpoints")),
                name_prefix=algo,
            )
        )
    if callback is not None:
        callbacks.extend(callback if isinstance(callback, list) else [callback])
    try:
        model.learn(total_timesteps=total_timesteps, callback=callbacks, tb_log_name=algo.upper())
    except KeyboardInterrupt:
        if path is not None:  # keep what was learnt; the full path stays for a finished model
            partial = Path(path).with_name(f"{Path(path).stem}.interrupted.zip")
            model.save(str(partial))
            logger.warning("interrupted after %d env steps; saved %s", model.num_timesteps, partial)
        raise
    if evaluation is not None:  # plain data: saved with the model
        model.teacher_eval_curve = list(evaluation.curve)
        model.teacher_eval_baselines = dict(evaluation.baseline_losses)
    if path is not None:
        model.save(str(path))
    return model


def _require_tensorboard() -> None:
    try:
        importlib.import_module("tensorboard")
    except ImportError:
        raise ImportError(
            "tensorboard_log needs TensorBoard: pip install metacurriculum[tensorboard]"
        ) from None


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
