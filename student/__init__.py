"""The students: meta-learners (MAML, ANIL, Meta-SGD, Reptile, ProtoNets...) behind one interface.

The student knows nothing of Gymnasium or teachers: it takes padded meta-batches
(:class:`MetaBatch`) and returns plain metrics. :class:`Population` holds R students of
one learner (a single student, :class:`MetaLearner`, is a population of one);
:mod:`~metacurriculum.student.learners` holds the learners and
:mod:`~metacurriculum.student.settings` their settings and registry.

Its classes are imported on first use: the env's settings read
:mod:`metacurriculum.student.settings`, which must not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from metacurriculum.student.settings import (
    LEARNERS,
    LearnerSettings,
    learner_settings,
    list_learners,
    register_learner,
)

if TYPE_CHECKING:
    from metacurriculum.student.batch import MetaBatch
    from metacurriculum.student.config import StudentConfig
    from metacurriculum.student.learners import Learner
    from metacurriculum.student.population import Evaluation, MetaLearner, Population
    from metacurriculum.student.reference import ReferenceMAML, reference_meta_gradient

#: Public name -> the submodule that defines it (all of them import torch).
_SUBMODULES = {
    "Evaluation": "population",
    "Learner": "learners",
    "MetaBatch": "batch",
    "MetaLearner": "population",
    "Population": "population",
    "ReferenceMAML": "reference",
    "StudentConfig": "config",
    "reference_meta_gradient": "reference",
}

__all__ = [
    "LEARNERS",
    "Evaluation",
    "Learner",
    "LearnerSettings",
    "MetaBatch",
    "MetaLearner",
    "Population",
    "ReferenceMAML",
    "StudentConfig",
    "learner_settings",
    "list_learners",
    "reference_meta_gradient",
    "register_learner",
]


def __getattr__(name: str) -> Any:
    if name == "MAML":
        raise AttributeError(
            "metacurriculum.student.MAML is now MetaLearner: a student of any learner, "
            "MAML by default (StudentConfig(learner='maml')); MAML's strategy itself is "
            "metacurriculum.student.learners.MAML."
        )
    if name not in _SUBMODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_SUBMODULES[name]}"), name)
    globals()[name] = value
    return value
