"""Registration of the Gymnasium environments; runs when ``metacurriculum`` is imported.

Entry points are strings, so registering imports neither torch nor the env module;
it is idempotent, so importing twice (or in subprocess workers) is safe. Every id has
both entry points: ``gym.make`` gives the single env, ``gym.make_vec`` (by default)
the vector env whose sub-envs' students train as one population.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

ENTRY_POINT = "metacurriculum.envs.meta_env:MetaCurriculumEnv"
#: ``gym.make_vec``'s default for every id: sub-envs whose students train as one population.
VECTOR_ENTRY_POINT = "metacurriculum.envs.vector_env:MetaCurriculumVectorEnv"

#: id -> (settings, budget / update_rate). Settings are MetaCurriculumConfig overrides.
ENV_SPECS: dict[str, dict[str, Any]] = {
    # The paper's MNIST experiment: 10 relabelled digits, 2000 meta-steps.
    "MetaCurriculum-MNIST-v0": {"dataset": "mnist", "n_max": 10, "budget": 2000},
    # The paper's Omniglot experiments: 1000 meta-steps, 1-shot, MAML's protocol (1100/100/423
    # characters, rotations as classes).
    "MetaCurriculum-Omniglot5-v0": {
        "dataset": "omniglot",
        "omniglot_protocol": "maml",
        "n_max": 5,
        "budget": 1000,
    },
    "MetaCurriculum-Omniglot20-v0": {
        "dataset": "omniglot",
        "omniglot_protocol": "maml",
        "n_max": 20,
        "budget": 1000,
    },
    # Real Omniglot data, a tiny network and budget: seconds per episode on a CPU. One inner
    # step for every learner that has an inner loop (a learner default, not a setting of its
    # own, so that gym.make(id, learner="protonet") works too).
    "MetaCurriculum-Tiny-v0": {
        "dataset": "omniglot",
        "n_max": 5,
        "hidden": 8,
        "depth": 2,
        "q_query": 2,
        "meta_batch": 2,
        "learner_defaults": {"inner_steps": 1},
        "budget": 16,
        "update_rate": 2,
        "val_tasks": 2,
        "target_tasks": 2,
        "history": 4,
        "device": "cpu",
    },
    # The closed-form student: microseconds per step, for developing teachers.
    "MetaCurriculum-Analytic-v0": {"student": "analytic", "n_max": 20, "budget": 1000},
    # A three-dimensional ω on Omniglot 5-way: (classes, rotation range, pixel noise); the
    # target distribution is the hardest corner (5 classes, +-60 degrees, noise 0.5).
    "MetaCurriculum-OmniglotMulti-v0": {
        "dataset": "omniglot",
        "omniglot_protocol": "maml",
        "family": "omniglot-multi",
        "n_max": 5,
        "budget": 1000,
    },
    # The same three-dimensional family on the closed-form student (one skill per coordinate).
    "MetaCurriculum-AnalyticMulti-v0": {
        "student": "analytic",
        "family": "omniglot-multi",
        "n_max": 20,
        "budget": 1000,
    },
    # The analytic profiles (metacurriculum.envs.analytic_profiles): on each a known kind of
    # teacher wins; benchmarks/experiments/report_card.py ranks every teacher on all of them.
    "MetaCurriculum-AnalyticEasyFirst-v0": {
        "student": "analytic-easy-first",
        "n_max": 20,
        "budget": 1000,
    },
    "MetaCurriculum-AnalyticHardest-v0": {
        "student": "analytic-hardest",
        "n_max": 20,
        "budget": 1000,
    },
    "MetaCurriculum-AnalyticForgetting-v0": {
        "student": "analytic-forgetting",
        "n_max": 20,
        "budget": 1000,
    },
    "MetaCurriculum-AnalyticNoisy-v0": {
        "student": "analytic-noisy",
        "n_max": 20,
        "budget": 1000,
        "val_tasks": 2,
        "target_tasks": 4,
    },
    # Fitted to the MAML student at the reduced preset: Omniglot 5-way, 200 meta-steps.
    "MetaCurriculum-AnalyticCalibrated-v0": {
        "student": "analytic-calibrated",
        "n_max": 5,
        "budget": 200,
        "val_tasks": 4,
        "target_tasks": 8,
    },
    "MetaCurriculum-AnalyticLocal-v0": {
        "student": "analytic-local",
        "family": "omniglot-multi",
        "n_max": 20,
        "budget": 1000,
    },
}


def register_envs() -> None:
    """Register every id of :data:`ENV_SPECS` that is not registered yet."""
    for env_id, settings in ENV_SPECS.items():
        if env_id in gym.registry:
            continue
        update_rate = settings.get("update_rate", 4)
        gym.register(
            id=env_id,
            entry_point=ENTRY_POINT,
            vector_entry_point=VECTOR_ENTRY_POINT,
            kwargs=dict(settings),
            max_episode_steps=settings["budget"] // update_rate,
        )
