"""MAML's hyper-parameters: defined, defaulted and checked here once, for the student and the env.

:class:`~metacurriculum.student.StudentConfig` and the env's
:class:`~metacurriculum.envs.MetaCurriculumConfig` both carry these fields under
these names; each takes its defaults from :data:`DEFAULTS` and checks them with
:func:`check_hyperparams`, so the two accept and reject the same values with the
same message. This module imports no torch: reading an env's settings must not.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields
from typing import Any

#: How the tasks of a meta-batch run (:class:`~metacurriculum.student.StudentConfig` says
#: what each does).
BATCHINGS = ("auto", "loop", "vmap", "grouped")
#: Weight initialisations (:func:`~metacurriculum.student.network.init_params` says what
#: each draws).
INITS = ("torch", "xavier", "kaiming")


@dataclass(frozen=True)
class MAMLHyperParams:
    """MAML's hyper-parameters; the defaults are the paper's Table I and the measured best init.

    Attributes:
        inner_lr: Step size of the inner-loop SGD on a task's support set (alpha;
            Table I: 0.1).
        meta_lr: Learning rate of the Adam meta-optimiser (beta; Table I: 0.001).
        inner_steps: Inner-loop SGD steps per task during meta-training, and by
            default during evaluation (Table I: 5; 0 trains without adaptation).
        first_order: First-order MAML (inner gradients treated as constants) when
            True; full second-order MAML when False.
        batching: How the tasks of a meta-batch run, one of :data:`BATCHINGS`.
        init: How the weights are drawn, one of :data:`INITS`.
    """

    inner_lr: float = 0.1
    meta_lr: float = 0.001
    inner_steps: int = 5
    first_order: bool = False
    batching: str = "auto"
    init: str = "torch"

    def __post_init__(self) -> None:
        check_hyperparams(self, owner="MAMLHyperParams.")


def _default(name: str) -> Any:
    return MAMLHyperParams.__dataclass_fields__[name].default


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


def check_hyperparams(config: Any, owner: str = "") -> None:
    """Raise on the first of ``config``'s hyper-parameters that MAML cannot run with.

    Args:
        config: Any object with the fields of :class:`MAMLHyperParams`.
        owner: What the user named the setting by, put before its name in the message:
            ``""`` for an env setting (``gym.make(env_id, inner_lr=0)`` reads
            ``inner_lr=0 must be ...``), ``"StudentConfig."`` for the student's.

    Raises:
        ValueError: Naming the setting, its value and the values it may take.
    """
    for name in ("inner_lr", "meta_lr"):
        value, default = getattr(config, name), _default(name)
        check_real(owner + name, value, default)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(
                f"{owner}{name}={value!r} must be a finite number > 0 (the default is {default!r})."
            )
    steps = config.inner_steps
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ValueError(
            f"{owner}inner_steps={steps!r} must be an integer >= 0 "
            f"(the default is {_default('inner_steps')})."
        )
    if not isinstance(config.first_order, bool):
        raise ValueError(
            f"{owner}first_order={config.first_order!r} must be True or False "
            f"(the default is {_default('first_order')})."
        )
    for name, known in (("batching", BATCHINGS), ("init", INITS)):
        value = getattr(config, name)
        if value not in known:
            raise ValueError(f"{owner}{name}={value!r} is unknown; use one of {known}.")


#: The defaults, which the student's and the env's configs declare as theirs.
DEFAULTS = MAMLHyperParams()
#: The hyper-parameters' names, the fields an env passes to its student unchanged.
HYPERPARAMS = tuple(f.name for f in fields(MAMLHyperParams))
