"""The compute an env charges its student: the FLOPs of its meta-learner's work.

:func:`student_compute` is the compute of the meta-learner an env's settings describe
(its learner on its network, its tasks' sizes; :mod:`metacurriculum.student.compute`
counts it), which the real student reports and the analytic students stand in for;
:func:`charged_compute` is what the env charges a given student with. Torch is imported
only to count a network that :data:`~metacurriculum.student.flop_table.COUNTED` does not
hold: the registered analytic ids run without it.
"""

from __future__ import annotations

from typing import Any

from metacurriculum.envs.config import MetaCurriculumConfig
from metacurriculum.student.compute import StudentCompute, network_fields

__all__ = ["charged_compute", "student_compute"]


def student_compute(config: MetaCurriculumConfig) -> StudentCompute:
    """The FLOPs of the work of ``config``'s meta-learner, wherever it runs."""
    network = network_fields(
        config.n_max, config.hidden, config.depth, config.learner, config.learner_kwargs
    )
    return StudentCompute(network, config.k_shot, config.q_query, config.eval_q_query)


def charged_compute(student: Any, config: MetaCurriculumConfig) -> Any:
    """What a step of ``student`` is charged with: its own ``compute`` when it has that
    attribute (``None``: it reports none), else :func:`student_compute` of ``config``
    (the analytic students: the compute of the learner they stand in for)."""
    if hasattr(student, "compute"):
        return student.compute
    return student_compute(config)
