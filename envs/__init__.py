"""Data sets, task distributions over ω, and the Gymnasium environment."""

from metacurriculum.envs.config import MetaCurriculumConfig
from metacurriculum.envs.meta_env import REWARDS, MetaCurriculumEnv, action_for_omega, make_env
from metacurriculum.envs.students import (
    STUDENTS,
    AdaptationCurves,
    AnalyticStudent,
    CurriculumStudent,
    Measurement,
    chance_loss,
    make_student,
)
from metacurriculum.envs.vector_env import MetaCurriculumVectorEnv

__all__ = [
    "REWARDS",
    "STUDENTS",
    "AdaptationCurves",
    "AnalyticStudent",
    "CurriculumStudent",
    "Measurement",
    "MetaCurriculumConfig",
    "MetaCurriculumEnv",
    "MetaCurriculumVectorEnv",
    "action_for_omega",
    "chance_loss",
    "make_env",
    "make_student",
]
