"""The learners' settings and their registry: each defined, defaulted and checked here, once.

A meta-learner (``"maml"``, ``"anil"``, ``"protonet"``...) is registered by name with
the dataclass of its settings and its implementation (imported on first use).
:class:`~metacurriculum.student.StudentConfig`, the env's
:class:`~metacurriculum.envs.MetaCurriculumConfig`, the presets, the command line's
``metacurriculum learners`` and the docs all read the settings from here, so a default
or a check is written in one place. This module imports no torch: reading an env's
settings must not.

Example:
    >>> learner_settings("anil", {"inner_steps": 3})
    ANILSettings(inner_lr=0.1, inner_steps=3, first_order=False)
    >>> learner_settings("protonet", {"inner_lr": 0.1})
    Traceback (most recent call last):
    ValueError: learner 'protonet' has no setting 'inner_lr'; its settings: none (...)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from metacurriculum.registry import PLUGIN_GROUPS, Registry, load_entry

#: How the tasks of a meta-batch run (:class:`~metacurriculum.student.StudentConfig` says
#: what each does).
BATCHINGS = ("auto", "loop", "vmap", "grouped")
#: Weight initialisations (:func:`~metacurriculum.student.network.init_params` says what
#: each draws).
INITS = ("torch", "xavier", "kaiming")

# -- checks of one value ---------------------------------------------------------------

Check = Callable[[str, Any, Any], None]


def check_real(setting: str, value: object, default: object) -> None:
    """Raise unless ``value`` is a real number (a string from a command line is not).

    Args:
        setting: The setting's name as the user wrote it, for the message.
        value: Its value.
        default: Its default, shown in the message as a valid example.

    Raises:
        ValueError: If ``value`` is not an ``int`` or ``float`` (``bool`` included).
    """
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ValueError(
            f"{setting}={value!r} must be a real number, not {type(value).__name__} "
            f"(the default is {default!r})."
        )


def positive_real(setting: str, value: Any, default: Any) -> None:
    """A finite real number > 0."""
    check_real(setting, value, default)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"{setting}={value!r} must be a finite number > 0 (the default is {default!r})."
        )


def non_negative_int(setting: str, value: Any, default: Any) -> None:
    """An integer >= 0 (not a bool)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{setting}={value!r} must be an integer >= 0 (the default is {default}).")


def boolean(setting: str, value: Any, default: Any) -> None:
    """``True`` or ``False``."""
    if not isinstance(value, bool):
        raise ValueError(f"{setting}={value!r} must be True or False (the default is {default}).")


def setting(default: Any, check: Check, help: str) -> Any:
    """A settings field: its default, its check and one line of help (shown by the CLI)."""
    return field(default=default, metadata={"check": check, "help": help})


# -- the settings of each learner --------------------------------------------------------


@dataclass(frozen=True)
class LearnerSettings:
    """The settings of a learner: a frozen dataclass whose fields are made with :func:`setting`.

    Every field is checked when the settings are built, so a bad value fails at once
    naming the setting and its default. A learner without settings subclasses this as it is.
    """

    def __post_init__(self) -> None:
        for f in fields(self):
            check = f.metadata.get("check")
            if check is not None:
                check(f.name, getattr(self, f.name), f.default)

    @classmethod
    def describe(cls) -> list[tuple[str, Any, str]]:
        """``(name, default, help)`` of every setting, in declaration order."""
        return [
            (f.name, None if f.default is MISSING else f.default, f.metadata.get("help", ""))
            for f in fields(cls)
        ]

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-serialisable dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class InnerLoopSettings(LearnerSettings):
    """Settings of a learner that adapts to a task with SGD steps on its support set."""

    inner_lr: float = setting(0.1, positive_real, "step size of the inner-loop SGD (Table I: 0.1)")
    inner_steps: int = setting(
        5,
        non_negative_int,
        "inner-loop SGD steps per task, in training and by default in evaluation (Table I: 5)",
    )


@dataclass(frozen=True)
class MAMLSettings(InnerLoopSettings):
    """MAML (Finn et al., 2017): every parameter adapts; the outer gradient goes through
    the inner loop."""

    first_order: bool = setting(
        False, boolean, "treat the inner gradients as constants (first order)"
    )


@dataclass(frozen=True)
class FOMAMLSettings(InnerLoopSettings):
    """First-order MAML: MAML's settings with ``first_order`` fixed to True."""

    @property
    def first_order(self) -> bool:
        """Always True: the inner gradients are constants."""
        return True


@dataclass(frozen=True)
class ANILSettings(MAMLSettings):
    """ANIL (Raghu et al., 2020): only the head adapts in the inner loop."""


@dataclass(frozen=True)
class MetaSGDSettings(MAMLSettings):
    """Meta-SGD (Li et al., 2017): a learnt learning rate per parameter, which starts at
    ``inner_lr``."""

    inner_lr: float = setting(
        0.1, positive_real, "the starting value of every learnt inner learning rate"
    )


@dataclass(frozen=True)
class ReptileSettings(InnerLoopSettings):
    """Reptile (Nichol et al., 2018): the outer update moves the initialisation toward the
    weights adapted to each task."""


@dataclass(frozen=True)
class ProtoNetSettings(LearnerSettings):
    """Prototypical networks (Snell et al., 2017): no inner loop, no settings."""


# -- the registry ------------------------------------------------------------------------


@dataclass(frozen=True)
class LearnerSpec:
    """A registered learner: its settings dataclass and its implementation.

    Attributes:
        name: The registered name (``learner=...``).
        settings: Its :class:`LearnerSettings` subclass.
        implementation: The :class:`~metacurriculum.student.learners.Learner` subclass, or a
            ``"module:attr"`` string naming it (imported on first :meth:`build`).
        summary: One line for ``metacurriculum learners`` and the docs.
    """

    name: str
    settings: type[LearnerSettings]
    implementation: Any
    summary: str = ""

    def build(self, settings: LearnerSettings) -> Any:
        """The learner, built with ``settings`` (its implementation imported if need be)."""
        implementation = self.implementation
        if isinstance(implementation, str):
            implementation = load_entry(implementation)
        return implementation(settings)


def _plugin_learner(name: str, obj: Any) -> LearnerSpec:
    """A plugin's learner: its :class:`LearnerSpec`, or one made from a learner class (its
    ``settings_class``, and its docstring's first line as the summary)."""
    if isinstance(obj, LearnerSpec):
        return obj
    settings = getattr(obj, "settings_class", None)
    if not (isinstance(settings, type) and issubclass(settings, LearnerSettings)):
        raise TypeError(
            f"the learner plugin {name!r} names {obj!r}; an entry point of the group "
            f"{PLUGIN_GROUPS['learner']!r} must name a LearnerSpec or a Learner subclass with "
            "a settings_class (a LearnerSettings subclass)."
        )
    summary = ((obj.__doc__ or "").strip().splitlines() or [""])[0]
    return LearnerSpec(name, settings, obj, summary)


LEARNERS: Registry[LearnerSpec] = Registry(
    "learner",
    hint="add yours with register_learner(name, implementation), or an entry point in the "
    f"group {PLUGIN_GROUPS['learner']!r} of an installed package",
    setting="learner=",
    group=PLUGIN_GROUPS["learner"],
    from_plugin=_plugin_learner,
)


def register_learner(
    name: str,
    implementation: Any,
    settings: type[LearnerSettings] | None = None,
    summary: str = "",
) -> LearnerSpec:
    """Register a meta-learner under ``name``: ``learner=name`` then picks it everywhere.

    Args:
        name: The name (``gym.make(id, learner=name)``).
        implementation: A :class:`~metacurriculum.student.learners.Learner` subclass, or a
            ``"module:attr"`` string naming one (so registering imports nothing).
        settings: Its settings dataclass; ``None`` reads ``implementation.settings_class``.
        summary: One line describing it.

    Returns:
        The registered :class:`LearnerSpec`.
    """
    if settings is None:
        if isinstance(implementation, str):
            raise ValueError(
                f"register_learner({name!r}, {implementation!r}) needs settings= when the "
                "implementation is given as a string."
            )
        settings = implementation.settings_class
    if not (isinstance(settings, type) and issubclass(settings, LearnerSettings)):
        raise TypeError(f"settings of learner {name!r} must be a LearnerSettings subclass.")
    spec = LearnerSpec(name, settings, implementation, summary)
    LEARNERS.register(name, spec)
    return spec


def list_learners() -> list[str]:
    """The registered learner names, sorted."""
    return LEARNERS.names()


def setting_names(learner: str) -> tuple[str, ...]:
    """The names of ``learner``'s settings (raises for an unknown learner)."""
    return tuple(f.name for f in fields(LEARNERS.lookup(learner).settings))


def describe_settings(learner: str) -> str:
    """``learner``'s settings as ``name=default`` pairs, for messages (``"none"`` if it has none)."""
    described = LEARNERS.lookup(learner).settings.describe()
    return ", ".join(f"{name}={default!r}" for name, default, _ in described) or "none"


def learner_settings(learner: str, given: Mapping[str, Any] | None = None) -> LearnerSettings:
    """The settings of ``learner``: its defaults with ``given`` applied, every value checked.

    Raises:
        ValueError: For an unknown learner (listing them), a setting it does not have
            (listing its settings), or a bad value (naming the setting and its default).
    """
    spec = LEARNERS.lookup(learner)
    given = dict(given or {})
    unknown = sorted(set(given) - set(setting_names(learner)))
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        plural = "s" if len(unknown) > 1 else ""
        raise ValueError(
            f"learner {learner!r} has no setting{plural} {names}; its settings: "
            f"{describe_settings(learner)} ({spec.summary or spec.settings.__doc__})."
        )
    return spec.settings(**given)


_IMPLEMENTATIONS = "metacurriculum.student.learners"
register_learner(
    "maml",
    f"{_IMPLEMENTATIONS}:MAML",
    MAMLSettings,
    "MAML (Finn et al., 2017): every parameter adapts; second order unless first_order",
)
register_learner(
    "fomaml",
    f"{_IMPLEMENTATIONS}:MAML",
    FOMAMLSettings,
    "first-order MAML (Finn et al., 2017): MAML with the inner gradients as constants",
)
register_learner(
    "anil",
    f"{_IMPLEMENTATIONS}:ANIL",
    ANILSettings,
    "ANIL (Raghu et al., 2020): only the head adapts; the body is meta-learnt",
)
register_learner(
    "metasgd",
    f"{_IMPLEMENTATIONS}:MetaSGD",
    MetaSGDSettings,
    "Meta-SGD (Li et al., 2017): a learnt learning rate per parameter",
)
register_learner(
    "reptile",
    f"{_IMPLEMENTATIONS}:Reptile",
    ReptileSettings,
    "Reptile (Nichol et al., 2018): the initialisation moves toward the adapted weights",
)
register_learner(
    "protonet",
    f"{_IMPLEMENTATIONS}:ProtoNet",
    ProtoNetSettings,
    "Prototypical networks (Snell et al., 2017): nearest class mean in an embedding, no inner loop",
)
