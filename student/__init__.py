"""The MAML student: a functional conv net, an inner loop, meta-steps and evaluation.

The student knows nothing of Gymnasium or teachers: it takes padded
meta-batches (:class:`MetaBatch`) and returns plain metrics.
"""

from metacurriculum.student.batch import MetaBatch
from metacurriculum.student.config import StudentConfig
from metacurriculum.student.maml import MAML, Evaluation
from metacurriculum.student.population import Population
from metacurriculum.student.reference import ReferenceMAML, reference_meta_gradient

__all__ = [
    "MAML",
    "Evaluation",
    "MetaBatch",
    "Population",
    "ReferenceMAML",
    "StudentConfig",
    "reference_meta_gradient",
]
