"""Data sets, task families and distributions over ω, and the Gymnasium environment."""

from metacurriculum.envs.config import MetaCurriculumConfig
from metacurriculum.envs.families import (
    FAMILIES,
    ClassesFamily,
    OmniglotMultiFamily,
    Parameter,
    TaskFamily,
    classes_parameter,
    list_families,
    make_family,
    register_family,
)
from metacurriculum.envs.meta_env import REWARDS, MetaCurriculumEnv, action_for_omega, make_env
from metacurriculum.envs.students import (
    STUDENTS,
    AdaptationCurves,
    AnalyticStudent,
    AnalyticVectorStudent,
    CurriculumStudent,
    Measurement,
    chance_loss,
    make_student,
)
from metacurriculum.envs.vector_env import MetaCurriculumVectorEnv

__all__ = [
    "FAMILIES",
    "REWARDS",
    "STUDENTS",
    "AdaptationCurves",
    "AnalyticStudent",
    "AnalyticVectorStudent",
    "ClassesFamily",
    "CurriculumStudent",
    "Measurement",
    "MetaCurriculumConfig",
    "MetaCurriculumEnv",
    "MetaCurriculumVectorEnv",
    "OmniglotMultiFamily",
    "Parameter",
    "TaskFamily",
    "action_for_omega",
    "chance_loss",
    "classes_parameter",
    "list_families",
    "make_env",
    "make_family",
    "make_student",
    "register_family",
]
