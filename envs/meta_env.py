"""The student as a Gymnasium environment: the action moves ω, the student trains at ω."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from metacurriculum.envs.compute import charged_compute
from metacurriculum.envs.config import MATCHED, MetaCurriculumConfig
from metacurriculum.envs.families import TaskFamily, make_family
from metacurriculum.envs.students import (
    AdaptationCurves,
    CurriculumStudent,
    Measurement,
    StudentStep,
    check_student,
    make_student,
    run_step,
)

#: Upper bound of the normalised losses in the observation (5x the chance-level loss).
LOSS_CLIP = 5.0


def reward_target(prev: dict[str, Measurement], now: dict[str, Measurement]) -> float:
    """Decrease of the normalised post-adaptation loss on the fixed hardest tasks."""
    return prev["target"].normalized_loss - now["target"].normalized_loss


def reward_progress(prev: dict[str, Measurement], now: dict[str, Measurement]) -> float:
    """Decrease of the normalised validation loss at the current ω (learning progress)."""
    return prev["val"].normalized_loss - now["val"].normalized_loss


#: ``target_logit`` clips normalised losses to ``[LOGIT_CLIP, 1 - LOGIT_CLIP]`` first.
LOGIT_CLIP = 1e-3


def _log_odds(normalized_loss: float) -> float:
    p = min(max(normalized_loss, LOGIT_CLIP), 1.0 - LOGIT_CLIP)
    return math.log(p / (1.0 - p))


def reward_target_logit(prev: dict[str, Measurement], now: dict[str, Measurement]) -> float:
    """Decrease of the log-odds of the normalised target loss (clipped to ``[0.001, 0.999]``).

    The same objective as ``target`` (a monotone transform of the same loss: the return
    telescopes to the change of a potential, Ng et al. 1999), but dense where the loss is
    flat: near chance and near zero the loss barely moves while the log-odds still do.
    """
    return _log_odds(prev["target"].normalized_loss) - _log_odds(now["target"].normalized_loss)


def reward_target_accuracy(prev: dict[str, Measurement], now: dict[str, Measurement]) -> float:
    """Increase of the post-adaptation accuracy on the fixed hardest tasks."""
    return now["target"].accuracy - prev["target"].accuracy


#: Rewards by name; each maps the measurements before and after a step to a float.
REWARDS: dict[str, Callable[[dict[str, Measurement], dict[str, Measurement]], float]] = {
    "target": reward_target,
    "target_logit": reward_target_logit,
    "progress": reward_progress,
    "target_accuracy": reward_target_accuracy,
}


class MetaCurriculumEnv(gym.Env):
    """A meta-learning student whose task distribution is steered by the agent (the teacher).

    One episode is one training run of a fresh student (``budget`` meta-steps). Each
    step applies the action to ω, runs ``update_rate`` meta-steps on tasks drawn at ω
    (the paper's teacher update rate), then measures the student after adaptation on
    fresh meta-validation tasks at ω and on a fixed set of meta-validation tasks of the
    hardest distribution, drawn at reset from held-out training-split classes (never
    the test classes).

    ## ω: the task family

    ω is a vector of ``d`` parameters of the task distribution, named with their bounds
    by the env's task family (``family=``, :mod:`metacurriculum.envs.families`). The
    default family, ``classes``, has one: the number of classes of a task, continuous in
    ``[omega_min, n_max]`` (``omega_min = 2`` by default); the hardest distribution is
    ``n = n_max``. ``omniglot-multi`` has three: classes, the rotation range of the
    images and their pixel noise, hardest at the top of each. The hardest corner of the
    box is the target distribution (reward, final evaluation). Each task of a
    meta-batch gets its own perturbed copy of ω (``omega_noise``, in units of each
    parameter's ``unit``; integer parameters rounded).

    ## Action space

    ``action_type="continuous"`` (default): ``Box(-1, 1, (d,), float32)``, the change of
    each coordinate in units of its range: ``ω <- clip(ω + a * (high - low), low, high)``,
    so one action reaches any ω. Actions outside ``[-1, 1]`` are clipped; NaN, strings,
    ``None``, bools and complex numbers are errors (``ValueError``, naming the action).

    ``action_type="discrete"``: ``Discrete(3)`` for one parameter, ``MultiDiscrete([3] * d)``
    for more (one choice per coordinate):

    | action | meaning                                 |
    |--------|-----------------------------------------|
    | 0      | ω <- ω - ``omega_step`` (x the unit)    |
    | 1      | keep ω                                  |
    | 2      | ω <- ω + ``omega_step`` (x the unit)    |

    A discrete action is an integer (``int``, a NumPy integer or a 0-d integer array;
    an integer array of ``d`` for ``MultiDiscrete``); anything else (``1.5``, ``"2"``,
    ``True``) is a ``ValueError`` naming it.

    ``action_type="omega"``: ``Box(low, high, (d,), float64)``, the action *is* the next ω
    (clipped to the box), at full precision: the direct path for teachers that choose ω.

    ## Observation space

    ``Box(0, high, (history + d + 1,), float32)``; normalised losses are divided by the
    chance level ``log n`` (``log 2`` for one-way tasks), so that different n compare.

    | index          | observation                                             | min | max |
    |----------------|---------------------------------------------------------|-----|-----|
    | 0 .. H-1       | normalised validation loss at ω, oldest first (H = ``history``; padded with the first value at reset) | 0 | 5 |
    | H .. H+d-1     | ω normalised: ``(ω - low) / (high - low)`` per coordinate | 0   | 1   |
    | H + d          | elapsed fraction of the budget: ``meta_step / budget`` (under a ``compute_budget``: the meta-training FLOPs spent over it) | 0 | 1 |

    ## Rewards

    Selected by ``reward=`` (see :data:`REWARDS`):

    - ``"target"`` (default): the decrease of the normalised post-adaptation loss on the
      fixed hardest tasks. Summed over an episode it telescopes to the total improvement,
      so the return is highest for the teacher that leaves the best student on the
      hardest tasks.
    - ``"target_logit"``: the decrease of the log-odds of that loss (clipped to
      ``[0.001, 0.999]``): the same objective, dense where the loss is flat (what SB3
      teachers learn from, :data:`~metacurriculum.teachers.sb3.SB3_ALGOS`).
    - ``"progress"``: the decrease of the normalised validation loss at the current ω
      (learning progress; a teacher can earn it by moving to easier tasks).
    - ``"target_accuracy"``: the increase of post-adaptation accuracy on the hardest tasks.

    ## Episode end

    Truncation when the budget of meta-steps is spent, by the env itself and by the
    registered ``max_episode_steps`` (``budget // update_rate``). When overriding
    ``budget`` or ``update_rate`` through ``gym.make``, pass the matching
    ``max_episode_steps`` too (the time limit is fixed at registration), or build the env
    with :func:`make_env`, which does.

    With ``compute_budget`` set, truncation instead after the first step at which the
    student's meta-training FLOPs (``info["train_flops"]``) reach it: a teacher that
    trains on easy, cheap tasks gets more meta-steps for the same compute. The number of
    env steps is then not known in advance, so no time limit may cut the episode:
    :func:`make_env` sets none; with ``gym.make`` pass ``max_episode_steps=-1`` (else the
    id's registered ``TimeLimit`` of ``budget // update_rate`` steps applies, which the
    env cannot see).

    Termination when the student diverges: a NaN or infinite loss, or a normalised
    validation or target loss above ``divergence_threshold`` (100 times chance by
    default). ``info["diverged"]`` is then True and the reward is
    ``divergence_penalty``; the env never raises for a diverged student.

    Once an episode has ended (terminated or truncated by the budget), ``step()``
    raises ``RuntimeError`` until ``reset()``: it never trains past the budget.

    ## Info

    ``omega`` (a float for a one-parameter family, else a ``[d]`` array), ``omega_min``,
    ``omega_max`` (the box's bounds), ``omega_hardest`` and ``omega_easiest`` (its
    hardest and easiest corners) and
    ``omega_unit``, each in the form of ``omega``; ``omega_names`` (the parameters'
    names), ``omega/<name>`` (each coordinate as a float), ``omega_step``,
    ``action_type``, ``n_way`` (n of each task trained on this step), ``train_loss``,
    ``val_loss``, ``val_accuracy``, ``val_loss_normalized``, ``target_loss``,
    ``target_accuracy``, ``target_loss_normalized``, ``meta_step``, ``budget``,
    ``diverged``; the compute spent since reset, in FLOPs as
    :mod:`metacurriculum.student.compute` counts them (``None`` for a student that reports
    none): ``train_flops`` (its meta-steps) and ``measure_flops`` (its measurements, the
    reset's included); ``compute_budget`` (in FLOPs, ``"matched"`` resolved; ``None``
    without one) and ``elapsed`` (the fraction of the episode's budget spent, the
    observation's last value).

    ## Arguments

    Every field of :class:`~metacurriculum.envs.MetaCurriculumConfig`, as keyword
    arguments (also through ``gym.make(id, **kwargs)``), or a whole ``config``; the
    learner's settings by name too (``gym.make(id, learner="anil", inner_steps=3)``).

    Attributes:
        student_factory: ``factory(config, seed) -> CurriculumStudent``, called by
            ``reset`` for each new student (default: the kind ``config.student`` names).
            The vector env points it at its population's rows.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}  # noqa: RUF012 - Gymnasium convention

    def __init__(
        self,
        config: MetaCurriculumConfig | None = None,
        render_mode: str | None = None,
        **overrides: Any,
    ) -> None:
        self.config = MetaCurriculumConfig.from_overrides(config, **overrides)
        if self.config.reward not in REWARDS:
            raise ValueError(
                f"reward={self.config.reward!r} is unknown; choose one of {sorted(REWARDS)}."
            )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode={render_mode!r} is not supported; use None or 'ansi'.")
        self.render_mode = render_mode
        self.family: TaskFamily = make_family(self.config)
        dim, history = self.family.dim, self.config.history
        if dim > 1 and self.config.omega_init is not None:
            raise ValueError(
                f"omega_init={self.config.omega_init!r} is a number, but the family "
                f"{self.config.family!r} has {dim} parameters {list(self.family.names)}; start "
                "an episode at a vector ω with env.reset(options={'omega': [...]})."
            )
        check_student(self.config)  # missing data or a bad device fail here, not at reset
        self.omega_min = self.family.public(self.family.low)
        self.omega_max = self.family.public(self.family.high)
        if self.config.action_type == "continuous":
            self.action_space: spaces.Space = spaces.Box(-1.0, 1.0, (dim,), np.float32)
        elif self.config.action_type == "omega":
            # float64: ω is taken as given, without float32 round-off
            self.action_space = spaces.Box(self.family.low, self.family.high, (dim,), np.float64)
        elif dim == 1:
            self.action_space = spaces.Discrete(3)
        else:
            self.action_space = spaces.MultiDiscrete([3] * dim)
        high = np.concatenate([np.full(history, LOSS_CLIP), np.ones(dim + 1)]).astype(np.float32)
        self.observation_space = spaces.Box(np.zeros_like(high), high, dtype=np.float32)
        self.student: CurriculumStudent | None = None
        self.student_factory: Callable[[MetaCurriculumConfig, int], CurriculumStudent] = (
            make_student
        )
        self._omega = self.family.easiest
        self.omega = self.family.public(self._omega)
        self.meta_step = 0
        #: FLOPs of this episode's meta-steps and measurements (``None``: not reported).
        self.train_flops: int | None = None
        self.measure_flops: int | None = None
        #: The compute budget in FLOPs (``"matched"`` resolved at reset), or ``None``.
        self.compute_budget: float | None = None
        self._compute: Any = None
        self._ended: str | None = None  # why the episode ended, once it has
        self._losses: deque[float] = deque(maxlen=history)
        self._last: dict[str, Measurement] = {}

    # -- Gymnasium API -------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start a fresh student; every random stream derives from the env's generator.

        ``options={"omega": w}`` starts the episode at ω = w (a number for a one-parameter
        family, else ``d`` numbers; clipped to the box) instead of ``omega_init``.
        """
        super().reset(seed=seed)
        options = options or {}
        if "omega" in options:
            start = options["omega"]
        elif self.config.omega_init is not None:
            start = self.config.omega_init
        else:
            start = self.family.easiest
        self._omega = self.family.clip(start)
        self.omega = self.family.public(self._omega)
        student_seed = int(self.np_random.integers(2**63 - 1))
        self.student = self.student_factory(self.config, student_seed)
        self.meta_step = 0
        self._ended = None
        self._start_compute()
        self._last = {
            "val": self.student.validate(self.omega),
            "target": self.student.evaluate_target(),
        }
        self._charge(measured=self._last)
        self._losses.clear()
        self._losses.extend(
            [self._clipped(self._last["val"].normalized_loss)] * self.config.history
        )
        return self._observation(), self._info({"loss": float("nan"), "n_way": []}, diverged=False)

    def step(self, action):
        student = self._require_running()
        omega = self.omega_for_action(action)
        return self.record_step(omega, run_step(student, omega, self.config.update_rate))

    def record_step(self, omega: float | np.ndarray, result: StudentStep):
        """Finish a step at ``omega`` whose student work is ``result``: what ``step`` does
        after its student trained and was measured, for a vector env that runs every
        sub-env's student together (``omega`` from :meth:`omega_for_action`).

        Returns:
            ``step``'s ``(observation, reward, terminated, truncated, info)``.
        """
        self._require_running()
        self._omega = self.family.check(omega)
        self.omega = self.family.public(self._omega)
        train = result.train
        self.meta_step += self.config.update_rate
        now = {"val": result.val, "target": result.target}
        self._charge(train["n_way"], now)
        limit = self.config.divergence_threshold
        diverged = not math.isfinite(train["loss"]) or any(
            not (m.finite and m.normalized_loss <= limit) for m in now.values()
        )
        if diverged:
            reward = self.config.divergence_penalty
        else:
            reward = float(REWARDS[self.config.reward](self._last, now))
            self._last = now
            self._losses.append(self._clipped(now["val"].normalized_loss))
        if self.compute_budget is not None:
            truncated = self.train_flops >= self.compute_budget
            spent = f"the compute budget of {self.compute_budget:.4g} FLOPs is spent"
        else:
            truncated = self.meta_step + self.config.update_rate > self.config.budget
            spent = f"the budget of {self.config.budget} meta-steps is spent"
        if diverged:
            self._ended = f"the student diverged at meta-step {self.meta_step}"
        elif truncated:
            self._ended = spent
        info = self._info(train, diverged=diverged, measured=now)
        return self._observation(), reward, diverged, truncated and not diverged, info

    def evaluate_test(self, num_tasks: int = 200, seed: int = 0) -> AdaptationCurves:
        """The final evaluation: adapt the current student to unseen tasks of the hardest
        distribution, drawn from held-out classes (Omniglot's evaluation alphabets,
        MNIST's held-out images), and report loss and accuracy before adaptation and
        after each inner step. The same ``seed`` gives the same tasks for every teacher.
        """
        return self._require_student().evaluate_test(num_tasks, seed)

    def save_student(self, path: str) -> None:
        """Write the current student's state to ``path`` (atomically)."""
        self._require_student().save(path)

    def _require_student(self) -> CurriculumStudent:
        if self.student is None:
            raise RuntimeError("call reset() first: the env has no student yet.")
        return self.student

    def _require_running(self) -> CurriculumStudent:
        student = self._require_student()
        if self._ended is not None:
            raise RuntimeError(
                f"the episode has ended ({self._ended}); call reset() before step(), as after "
                "any Gymnasium episode."
            )
        return student

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        last = self._last.get("val")
        loss = "n/a" if last is None else f"{last.normalized_loss:.3f}"
        omega = ", ".join(f"{w:.2f}" for w in self._omega)
        return f"meta-step {self.meta_step}/{self.config.budget}  omega {omega}  val loss/chance {loss}"

    # -- helpers -------------------------------------------------------------------

    def omega_for_action(self, action) -> float | np.ndarray:
        """The ω that ``action`` leads to from the current one (in ``info["omega"]``'s form),
        without stepping: checks the action as ``step`` does.

        Raises:
            ValueError: for an action that is not one of the action space's (naming it).
        """
        family, low, high = self.family, self.family.low, self.family.high
        dim = family.dim
        if self.config.action_type == "discrete":
            if (
                not self.action_space.contains(action)
                or isinstance(action, (bool, np.bool_))
                or (dim > 1 and np.asarray(action).dtype.kind not in "iu")
            ):
                choices = "the integer" if dim == 1 else f"an integer array of {dim}, each"
                raise ValueError(
                    f"discrete action must be {choices} 0 (down), 1 (stay) or 2 (up) of "
                    f"{self.action_space}, got {action!r} ({type(action).__name__})."
                )
            moves = np.asarray(action, dtype=np.int64).reshape(-1) - 1
            omega = self._omega + moves * self.config.omega_step * family.unit
        else:
            what = "ω" if self.config.action_type == "omega" else "continuous action"
            if not _is_real(action):
                raise ValueError(
                    f"{what} must be a real number or an array of {dim} (the action space is "
                    f"{self.action_space}), got {action!r} ({type(action).__name__})."
                )
            a = np.asarray(action, dtype=np.float64).reshape(-1)
            if a.size != dim:
                raise ValueError(
                    f"{what} must hold {dim} value(s), one per parameter "
                    f"{list(family.names)}, got {action!r} of shape {np.shape(action)}."
                )
            if not np.all(np.isfinite(a)):
                bounds = "in the ω box" if self.config.action_type == "omega" else "in [-1, 1]"
                raise ValueError(
                    f"action {action!r} is not finite; a teacher must output numbers {bounds}."
                )
            if self.config.action_type == "omega":
                omega = a
            else:
                omega = self._omega + np.clip(a, -1.0, 1.0) * (high - low)
        return family.public(np.clip(omega, low, high))

    def _start_compute(self) -> None:
        """A new student: its compute model, the budget in FLOPs, nothing spent yet."""
        compute = charged_compute(self.student, self.config)
        self._compute = compute
        self.train_flops = self.measure_flops = None if compute is None else 0
        budget = self.config.compute_budget
        if budget is None:
            self.compute_budget = None
            return
        if compute is None:
            raise ValueError(
                f"compute_budget={budget!r} needs a student that reports its compute, but the "
                f"{self.config.student!r} student's compute is None (see CurriculumStudent); "
                "drop compute_budget or give the student a compute."
            )
        if budget == MATCHED:
            hardest = np.tile(self.family.hardest, (self.config.meta_batch, 1))
            per_step = compute.meta_step(self.family.n_way(hardest).tolist())
            budget = per_step * self.config.budget
        self.compute_budget = budget

    def _charge(self, n_way: Any = (), measured: dict[str, Measurement] | None = None) -> None:
        """Add the FLOPs of meta-steps on tasks of ``n_way`` classes and of the
        ``measured`` measurements to this episode's."""
        if self._compute is None:
            return
        self.train_flops += self._compute.meta_step(n_way)
        if measured:
            tasks = [n for m in measured.values() for n in m.n_way]
            self.measure_flops += self._compute.measurement(tasks)

    @property
    def compute(self) -> Any:
        """What the current student's work is charged with (see
        :func:`~metacurriculum.envs.compute.charged_compute`; ``None`` before ``reset`` or
        for a student that reports none)."""
        return self._compute

    @property
    def elapsed(self) -> float:
        """The fraction of the episode's budget spent: meta-steps, or FLOPs under a
        ``compute_budget``."""
        if self.compute_budget is not None:
            return min(self.train_flops / self.compute_budget, 1.0)
        return min(self.meta_step / self.config.budget, 1.0)

    def _clipped(self, value: float) -> float:
        return float(np.clip(value, 0.0, LOSS_CLIP))

    def _observation(self) -> np.ndarray:
        omega = self.family.normalize(self._omega)
        return np.array([*self._losses, *omega, self.elapsed], dtype=np.float32)

    def _info(
        self, train: dict[str, Any], diverged: bool, measured: dict[str, Measurement] | None = None
    ) -> dict[str, Any]:
        val, target = (measured or self._last)["val"], (measured or self._last)["target"]
        family = self.family
        return {
            "omega": family.public(self._omega),
            "omega_min": family.public(family.low),
            "omega_max": family.public(family.high),
            "omega_hardest": family.public(family.hardest),
            "omega_easiest": family.public(family.easiest),
            "omega_unit": family.public(family.unit),
            "omega_names": family.names,
            **{
                f"omega/{name}": float(w) for name, w in zip(family.names, self._omega, strict=True)
            },
            "omega_step": self.config.omega_step,
            "action_type": self.config.action_type,
            "n_way": list(train["n_way"]),
            "train_loss": float(train["loss"]),
            "val_loss": val.loss,
            "val_accuracy": val.accuracy,
            "val_loss_normalized": val.normalized_loss,
            "target_loss": target.loss,
            "target_accuracy": target.accuracy,
            "target_loss_normalized": target.normalized_loss,
            "meta_step": self.meta_step,
            "budget": self.config.budget,
            "diverged": diverged,
            "train_flops": self.train_flops,
            "measure_flops": self.measure_flops,
            "compute_budget": self.compute_budget,
            "elapsed": self.elapsed,
        }


def _is_real(action: Any) -> bool:
    """A real number or an array of them: not a string, ``None``, a bool or a complex."""
    if isinstance(action, (bool, np.bool_, str, bytes, complex, np.complexfloating)):
        return False
    try:
        return np.asarray(action).dtype.kind in "iuf"
    except (TypeError, ValueError):
        return False


def make_env(env_id: str, **overrides: Any) -> gym.Env:
    """``gym.make(env_id, **overrides)`` with a time limit that follows the overrides.

    ``gym.make`` keeps the ``max_episode_steps`` fixed at registration even when
    ``budget`` or ``update_rate`` is overridden; this sets it to
    ``budget // update_rate`` of the resulting settings, or to none under a
    ``compute_budget`` (unless ``max_episode_steps`` is given). Works for any id whose
    entry point is :class:`MetaCurriculumEnv`.
    """
    if "max_episode_steps" not in overrides:
        registered = dict(gym.spec(env_id).kwargs)
        settings = MetaCurriculumConfig.from_overrides(**{**registered, **overrides})
        steps = settings.episode_steps  # None under a compute budget: no time limit (-1)
        overrides["max_episode_steps"] = -1 if steps is None else steps
    return gym.make(env_id, **overrides)


def action_for_omega(
    target: float | np.ndarray, info: dict[str, Any], action_space: spaces.Space
) -> np.ndarray | int:
    """The action that moves ω from ``info["omega"]`` towards ``target`` (a number for a
    one-parameter family, else one per coordinate).

    With ``action_type="omega"`` (``info["action_type"]``) the action is ``target`` itself,
    clipped to the box, as float64: exact. For the continuous action space it reaches
    ``target`` up to float32 rounding of the change (clipped to the ω box); for the
    discrete ones it is one ``omega_step`` (times the coordinate's unit) towards it, or
    "stay" when ``target`` is within half a step, per coordinate. Teachers that pick an ω
    rather than a change use it.
    """
    low = np.atleast_1d(np.asarray(info["omega_min"], dtype=np.float64))
    high = np.atleast_1d(np.asarray(info["omega_max"], dtype=np.float64))
    omega = np.atleast_1d(np.asarray(info["omega"], dtype=np.float64))
    target = np.clip(np.atleast_1d(np.asarray(target, dtype=np.float64)), low, high)
    if target.shape != omega.shape:
        raise ValueError(
            f"target ω has {target.size} value(s) but the env's ω has {omega.size}; give one "
            "per parameter (info['omega_names'])."
        )
    if info.get("action_type") == "omega":
        return target
    if isinstance(action_space, (spaces.Discrete, spaces.MultiDiscrete)):
        unit = np.atleast_1d(np.asarray(info.get("omega_unit", 1.0), dtype=np.float64))
        step = info.get("omega_step", 1.0) * unit
        moves = np.where(np.abs(target - omega) < step / 2, 1, np.where(target > omega, 2, 0))
        return int(moves[0]) if isinstance(action_space, spaces.Discrete) else moves
    delta = (target - omega) / np.maximum(high - low, 1e-12)
    return np.clip(delta, -1.0, 1.0).astype(np.float32)
