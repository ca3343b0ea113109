"""The one configuration of a meta-curriculum environment: task, student and episode settings.

Every field can be overridden through ``gym.make(env_id, **overrides)``; an unknown
name is an error that lists the close matches. Values are plain JSON types so that
``env.spec.to_json()`` and the harness's ``config.json`` work.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from metacurriculum.envs.families import check_family_name
from metacurriculum.student.hyperparams import DEFAULTS, check_hyperparams, check_real

#: ``omniglot_protocol`` values (the loader's ``PROTOCOLS``; kept here so that reading
#: a config does not import torch).
OMNIGLOT_PROTOCOLS = ("maml", "background")


#: ``action_type`` values: a change of ω in ``[-1, 1]`` per coordinate, down/stay/up, or ω.
ACTION_TYPES = ("continuous", "discrete", "omega")


#: Settings that take a real number (``omega_init`` also ``None``), checked by type first
#: (the student's ``inner_lr`` and ``meta_lr`` by :func:`check_hyperparams`).
REAL_SETTINGS = (
    "omega_noise",
    "omega_min",
    "omega_init",
    "omega_step",
    "divergence_penalty",
    "divergence_threshold",
)


@dataclass(frozen=True)
class MetaCurriculumConfig:
    """Settings of a :class:`~metacurriculum.envs.MetaCurriculumEnv`.

    Task distribution:
        dataset: ``"omniglot"`` or ``"mnist"`` (ignored by the analytic student).
        data_root: folder holding the data; ``None`` reads ``METACURRICULUM_DATA``.
        download: fetch the data through torchvision when it is missing (needs internet).
        n_max: the hardest task has this many classes; ω ranges over ``[1, n_max]``.
        k_shot: support examples per class (the paper: 1).
        q_query: query examples per class.
        omega_noise: half-width of the per-task uniform perturbation of ω.
        omniglot_protocol: how Omniglot is cut into training, validation and test
            characters: ``"maml"`` (MAML's and the paper's: 1100/100/423 of all 1623
            characters, each also rotated by 90, 180 and 270 degrees as new classes)
            or ``"background"`` (the background split for training and validation,
            the evaluation split for testing, no rotations). Ignored for MNIST.
        eval_q_query: query examples per class of the final evaluation's unseen tasks
            (``evaluate_test``), independent of ``q_query`` (15, as the literature reports).
        omega_min: the easiest ω. Defaults to 2: a one-way task has zero loss whatever
            the student does, so it teaches nothing; ``omega_min=1`` gives the paper's
            literal range ``[1, n_max]``.
        family: the task family, what ω is (``metacurriculum.envs.list_families()``):
            ``"classes"`` (default: ω is the number of classes, ``[omega_min, n_max]``)
            or ``"omniglot-multi"`` (ω = classes, rotation, noise), or a registered one.

    Student (see :class:`~metacurriculum.student.StudentConfig`; ``inner_lr``, ``meta_lr``,
    ``inner_steps``, ``first_order``, ``batching`` and ``init`` take their defaults and
    checks from :class:`~metacurriculum.student.hyperparams.MAMLHyperParams`, as the
    student's do):
        student: the student behind the env: ``"maml"`` or ``"analytic"`` (a closed-form
            fake with the same interface, for teacher development and tests).
        hidden: convolution filters per block.
        depth: convolution blocks.
        inner_lr: inner-loop learning rate (Table I: 0.1).
        meta_lr: Adam learning rate of the meta-update (Table I: 0.001).
        inner_steps: inner-loop gradient steps (Table I: 5; 0 trains without adaptation).
        meta_batch: tasks per meta-step (Table I: 8).
        first_order: first-order MAML instead of second-order.
        batching: ``"auto"``, ``"loop"``, ``"vmap"`` or ``"grouped"`` (see the student).
        init: the weight initialisation: ``"torch"`` (default), ``"xavier"`` or
            ``"kaiming"`` (see :class:`~metacurriculum.student.StudentConfig`).
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...

    Episode:
        budget: meta-steps of one episode (one student training run).
        update_rate: meta-steps per env step (Table I's teacher update rate: 4).
        val_tasks: meta-validation tasks drawn at ω after each env step (observation).
        target_tasks: fixed meta-validation tasks at ``n = n_max`` (reward).
        history: validation losses kept in the observation.
        omega_init: ω at the start of an episode; ``None`` starts at the family's easiest
            corner (``omega_min`` for ``classes``). A number, for one-parameter families
            only; start a vector ω with ``reset(options={"omega": [...]})``.
        action_type: ``"continuous"`` (``Box(-1, 1, (d,))``: the change of ω),
            ``"discrete"`` (down, stay, up per coordinate) or ``"omega"`` (the action is ω
            itself, ``Box(low, high, (d,))``: the direct path for teachers that choose ω).
        omega_step: how far one discrete action moves ω.
        reward: the reward's name (see ``metacurriculum.envs.REWARDS``).
        divergence_penalty: reward of the step on which the student diverged.
        divergence_threshold: a normalised validation or target loss above this (in
            units of the chance-level loss) counts as divergence, as NaN and inf do.
    """

    dataset: str = "omniglot"
    data_root: str | None = None
    download: bool = False
    n_max: int = 20
    k_shot: int = 1
    q_query: int = 15
    omniglot_protocol: str = "maml"
    eval_q_query: int = 15
    omega_noise: float = 0.5
    omega_min: float = 2.0
    family: str = "classes"

    student: str = "maml"
    hidden: int = 64
    depth: int = 4
    inner_lr: float = DEFAULTS.inner_lr
    meta_lr: float = DEFAULTS.meta_lr
    inner_steps: int = DEFAULTS.inner_steps
    meta_batch: int = 8
    first_order: bool = DEFAULTS.first_order
    batching: str = DEFAULTS.batching
    init: str = DEFAULTS.init
    device: str = "auto"

    budget: int = 1000
    update_rate: int = 4
    val_tasks: int = 8
    target_tasks: int = 16
    history: int = 8
    omega_init: float | None = None
    action_type: str = "continuous"
    omega_step: float = 1.0
    reward: str = "target"
    divergence_penalty: float = -1.0
    divergence_threshold: float = 100.0

    def __post_init__(self) -> None:
        positive = (
            "n_max",
            "k_shot",
            "q_query",
            "eval_q_query",
            "meta_batch",
            "budget",
            "update_rate",
            "val_tasks",
            "target_tasks",
            "history",
        )
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}={value!r} must be an integer >= 1.")
        for name in REAL_SETTINGS:
            value = getattr(self, name)
            if not (name == "omega_init" and value is None):
                check_real(name, value, self.__dataclass_fields__[name].default)
        check_hyperparams(self)
        if self.budget < self.update_rate:
            raise ValueError(
                f"budget={self.budget} meta-steps is less than one env step "
                f"(update_rate={self.update_rate}); raise budget or lower update_rate."
            )
        if not 1.0 <= self.omega_min <= self.n_max:
            raise ValueError(
                f"omega_min={self.omega_min} must lie in [1, n_max={self.n_max}]; "
                "lower it or raise n_max."
            )
        if self.omega_init is not None and not self.omega_min <= self.omega_init <= self.n_max:
            raise ValueError(
                f"omega_init={self.omega_init} must lie in [omega_min={self.omega_min}, "
                f"n_max={self.n_max}]."
            )
        check_family_name(self.family)
        if self.omniglot_protocol not in OMNIGLOT_PROTOCOLS:
            raise ValueError(
                f"omniglot_protocol={self.omniglot_protocol!r} is not one of {OMNIGLOT_PROTOCOLS}."
            )
        if self.action_type not in ACTION_TYPES:
            raise ValueError(f"action_type={self.action_type!r} is not one of {ACTION_TYPES}.")
        for name in ("omega_noise", "omega_step"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}={value!r} must be a finite number >= 0.")
        if not (math.isfinite(self.divergence_threshold) and self.divergence_threshold > 0):
            raise ValueError(
                f"divergence_threshold={self.divergence_threshold!r} must be a finite number > 0 "
                "(a normalised loss above it counts as divergence; the default is 100.0)."
            )
        if not math.isfinite(self.divergence_penalty):
            raise ValueError(
                f"divergence_penalty={self.divergence_penalty!r} must be a finite number."
            )

    @property
    def n_min(self) -> int:
        """The fewest classes a task may have: ``floor(omega_min)``."""
        return max(1, math.floor(self.omega_min))

    @property
    def episode_steps(self) -> int:
        """Env steps in one episode: the budget divided by the update rate."""
        return self.budget // self.update_rate

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_overrides(
        cls, base: MetaCurriculumConfig | None = None, **overrides: Any
    ) -> MetaCurriculumConfig:
        """``base`` (or the defaults) with ``overrides`` applied; unknown names are errors."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            hints = []
            for name in unknown:
                close = difflib.get_close_matches(name, known, n=1)
                hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise TypeError(
                f"unknown setting(s) {', '.join(hints)} for MetaCurriculumEnv; valid settings: "
                f"{', '.join(sorted(known))}."
            )
        return replace(base or cls(), **overrides)
