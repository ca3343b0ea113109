"""The MAML student: a functional conv net, an inner loop, meta-steps and evaluation.

The student knows nothing of Gymnasium or teachers: it takes padded
meta-batches (:class:`MetaBatch`) and returns plain metrics.

Its classes are imported on first use: the env's settings read
:mod:`metacurriculum.student.hyperparams`, which must not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from metacurriculum.student.hyperparams import MAMLHyperParams

if TYPE_CHECKING:
    from metacurriculum.student.batch import MetaBatch
    from metacurriculum.student.config import StudentConfig
    from metacurriculum.student.maml import MAML, Evaluation
    from metacurriculum.student.population import Population
    from metacurriculum.student.reference import ReferenceMAML, reference_meta_gradient

#: Public name -> the submodule that defines it (all of them import torch).
_SUBMODULES = {
    "MAML": "maml",
    "Evaluation": "maml",
    "MetaBatch": "batch",
    "Population": "population",
    "ReferenceMAML": "reference",
    "StudentConfig": "config",
    "reference_meta_gradient": "reference",
}

__all__ = [
    "MAML",
    "Evaluation",
    "MAMLHyperParams",
    "MetaBatch",
    "Population",
    "ReferenceMAML",
    "StudentConfig",
    "reference_meta_gradient",
]


def __getattr__(name: str) -> Any:
    if name not in _SUBMODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_SUBMODULES[name]}"), name)
    globals()[name] = value
    return value
