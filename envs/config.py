"""The one configuration of a meta-curriculum environment: task, student and episode settings.

Every field can be overridden through ``gym.make(env_id, **overrides)``; an unknown
name is an error that lists the close matches. Values are plain JSON types so that
``env.spec.to_json()`` and the harness's ``config.json`` work.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Mapping
from dataclasses import InitVar, asdict, dataclass, field, fields, replace
from typing import Any

from metacurriculum.envs.families import check_family_name
from metacurriculum.student.settings import (
    BATCHINGS,
    INITS,
    check_real,
    describe_settings,
    learner_settings,
    positive_real,
    setting_names,
)

#: ``omniglot_protocol`` values (the loader's ``PROTOCOLS``; kept here so that reading
#: a config does not import torch).
OMNIGLOT_PROTOCOLS = ("maml", "background")


#: ``action_type`` values: a change of ω in ``[-1, 1]`` per coordinate, down/stay/up, or ω.
ACTION_TYPES = ("continuous", "discrete", "omega")


#: ``student`` values that name the kind of student: a meta-learner, or a closed-form fake.
#: (``"maml"``, the value before learners existed, is read as ``"learner"``.)
STUDENT_KINDS = ("learner", "analytic")

#: ``compute_budget``'s named value: the compute of ``budget`` meta-steps at the hardest ω.
MATCHED = "matched"

#: Settings that take a real number (``omega_init`` also ``None``), checked by type first
#: (``meta_lr`` by its own check).
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

    Student (see :class:`~metacurriculum.student.StudentConfig`):
        student: the kind of student behind the env: ``"learner"`` (a meta-learner on the
            conv net, the one ``learner`` names) or ``"analytic"`` (a closed-form fake
            with the same interface, for teacher development and tests).
        learner: the meta-learner (``metacurriculum learners`` lists them): ``"maml"``
            (default), ``"fomaml"``, ``"anil"``, ``"metasgd"``, ``"reptile"``,
            ``"protonet"``, or a registered one.
        learner_kwargs: the learner's own settings (MAML's ``inner_lr``,
            ``inner_steps``, ``first_order``...; :mod:`metacurriculum.student.settings`
            defines, defaults and checks them). They can also be given by name, as any
            other setting: ``gym.make(id, learner="anil", inner_steps=3)``; a name the
            learner does not have is an error that lists the ones it has. After
            construction this holds every one of them.
        learner_defaults: (construction only, not stored) learner settings an env id
            sets for every learner that has them, e.g. ``{"inner_steps": 1}`` for the
            tiny id; ignored by a learner without them (ProtoNets has no inner steps).
        hidden: convolution filters per block.
        depth: convolution blocks.
        meta_lr: Adam learning rate of the meta-update, every learner's outer optimiser
            (Table I: 0.001).
        meta_batch: tasks per meta-step (Table I: 8).
        batching: ``"auto"``, ``"loop"``, ``"vmap"`` or ``"grouped"`` (see the student).
        init: the weight initialisation: ``"torch"`` (default), ``"xavier"`` or
            ``"kaiming"`` (see :class:`~metacurriculum.student.StudentConfig`).
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...

    Episode:
        budget: meta-steps of one episode (one student training run), unless
            ``compute_budget`` is set.
        compute_budget: ``None`` (default: the episode ends after ``budget`` meta-steps),
            or the compute of one episode in FLOPs of meta-training (the student's
            meta-steps, as :mod:`metacurriculum.student.compute` counts them; the
            measurements are recorded apart and not charged): a number (``2.5e14``), or
            ``"matched"``, what ``budget`` meta-steps at the hardest ω cost (plain MAML's
            compute, so that every teacher gets the compute of the ``none`` teacher, whose
            episode is then exactly ``budget`` meta-steps long). The episode is truncated
            after the first env step at which the meta-training FLOPs reach it (it may
            overrun by less than one env step's compute), and the observation's elapsed
            fraction is the compute spent. ``budget`` then only paces the analytic
            students' learning rate and the teachers that read ``info["budget"]`` (their
            clock stays in meta-steps). No registered time limit may cut such an episode:
            build it with :func:`~metacurriculum.envs.make_env`, or pass
            ``max_episode_steps=-1`` to ``gym.make`` (``gym.make_vec`` too).
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

    student: str = "learner"
    learner: str = "maml"
    learner_kwargs: Mapping[str, Any] = field(default_factory=dict)
    hidden: int = 64
    depth: int = 4
    meta_lr: float = 0.001
    meta_batch: int = 8
    batching: str = "auto"
    init: str = "torch"
    device: str = "auto"

    budget: int = 1000
    compute_budget: float | str | None = None
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
    learner_defaults: InitVar[Mapping[str, Any] | None] = None

    def __post_init__(self, learner_defaults: Mapping[str, Any] | None) -> None:
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
        positive_real("meta_lr", self.meta_lr, 0.001)
        for name, known in (("batching", BATCHINGS), ("init", INITS)):
            if getattr(self, name) not in known:
                raise ValueError(f"{name}={getattr(self, name)!r} is unknown; use one of {known}.")
        if self.student == "maml":  # the name before learners existed
            object.__setattr__(self, "student", "learner")
        self._resolve_learner(learner_defaults or {})
        if self.budget < self.update_rate:
            raise ValueError(
                f"budget={self.budget} meta-steps is less than one env step "
                f"(update_rate={self.update_rate}); raise budget or lower update_rate."
            )
        object.__setattr__(self, "compute_budget", _compute_budget(self.compute_budget))
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

    def _resolve_learner(self, defaults: Mapping[str, Any]) -> None:
        if not isinstance(self.learner_kwargs, Mapping):
            raise ValueError(
                f"learner_kwargs={self.learner_kwargs!r} must be a dict of the learner's "
                f"settings ({self.learner!r}: {describe_settings(self.learner)})."
            )
        names = setting_names(self.learner)  # an unknown learner raises, listing them
        given = {k: v for k, v in defaults.items() if k in names}
        settings = learner_settings(self.learner, {**given, **self.learner_kwargs})
        object.__setattr__(self, "learner_kwargs", settings.to_dict())

    @property
    def adaptation_steps(self) -> int:
        """Inner steps of an evaluation: the learner's ``inner_steps``, 0 for a learner
        without an inner loop."""
        return int(self.learner_kwargs.get("inner_steps", 0))

    @property
    def n_min(self) -> int:
        """The fewest classes a task may have: ``floor(omega_min)``."""
        return max(1, math.floor(self.omega_min))

    @property
    def episode_steps(self) -> int | None:
        """Env steps in one episode: the budget divided by the update rate; ``None`` under a
        ``compute_budget`` (the number of steps depends on the ω the teacher chooses)."""
        if self.compute_budget is not None:
            return None
        return self.budget // self.update_rate

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_overrides(
        cls, base: MetaCurriculumConfig | None = None, **overrides: Any
    ) -> MetaCurriculumConfig:
        """``base`` (or the defaults) with ``overrides`` applied.

        A name that is not an env setting but one of the learner's settings (the learner
        of ``overrides``, else of ``base``) goes to ``learner_kwargs``. A learner change
        starts its settings from its own defaults.

        Raises:
            TypeError: for a name that is neither; the message lists the close matches,
                the env's settings and the learner's.
        """
        known = {f.name for f in fields(cls)} | {"learner_defaults"}
        learner = overrides.get("learner", base.learner if base else cls.learner)
        names = set(setting_names(learner))
        given = {k: overrides.pop(k) for k in list(overrides) if k not in known and k in names}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(_unknown_message(unknown, known, learner))
        kept = dict(base.learner_kwargs) if base is not None and base.learner == learner else {}
        learner_kwargs = {**kept, **dict(overrides.pop("learner_kwargs", None) or {}), **given}
        return replace(base or cls(), **overrides, learner_kwargs=learner_kwargs)


def _compute_budget(value: Any) -> float | int | str | None:
    """``value`` checked: ``None``, ``"matched"`` or a finite number of FLOPs > 0 (a plain
    ``int`` or ``float``, as JSON keeps it)."""
    if value is None or (isinstance(value, str) and value == MATCHED):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(
            f"compute_budget={value!r} must be None, {MATCHED!r} or a number of FLOPs > 0 "
            "(e.g. 2.5e14)."
        )
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"compute_budget={value!r} must be a finite number of FLOPs > 0.")
    return int(value) if isinstance(value, numbers.Integral) else float(value)


def _unknown_message(unknown: list[str], known: set[str], learner: str) -> str:
    """Why ``unknown`` are not settings: a close match, or the learners that have them."""
    from metacurriculum.student.settings import list_learners

    names = set(setting_names(learner))
    hints = []
    for name in unknown:
        owners = [other for other in list_learners() if name in setting_names(other)]
        close = difflib.get_close_matches(name, known | names, n=1)
        if owners:
            hints.append(f"{name!r} (a setting of learner {', '.join(map(repr, owners))})")
        else:
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return (
        f"unknown setting(s) {', '.join(hints)} for MetaCurriculumEnv with learner {learner!r}, "
        f"whose settings are: {describe_settings(learner)}. The env's settings: "
        f"{', '.join(sorted(known - {'learner_defaults'}))}."
    )


def upgrade_settings(stored: Mapping[str, Any]) -> dict[str, Any]:
    """Env settings stored before learners existed (a run's ``config.json``), in today's form.

    They held MAML's ``inner_lr``, ``inner_steps`` and ``first_order`` as settings of their
    own and named the student ``"maml"``: that is ``student="learner"``, ``learner="maml"``
    with those settings. Settings in today's form are returned as they are.
    """
    settings = dict(stored)
    if "learner" in settings:
        return settings
    learner_kwargs = {
        name: settings.pop(name)
        for name in ("inner_lr", "inner_steps", "first_order")
        if name in settings
    }
    if settings.get("student") == "maml":
        settings["student"] = "learner"
    settings["learner"] = "maml"
    settings["learner_kwargs"] = learner_kwargs
    return settings
