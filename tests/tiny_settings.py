"""Env settings that make every registered id cheap, shared by the env tests.

``from tiny_settings import TINY`` works in every test module: ``tests/conftest.py``
puts this folder on ``sys.path``.
"""

#: ``MetaCurriculumConfig`` overrides: a 4-filter, 2-block net, one inner step, 12
#: meta-steps of 2 tasks, one meta-step per env step, on the CPU.
TINY_SETTINGS = {
    "hidden": 4,
    "depth": 2,
    "meta_batch": 2,
    "q_query": 1,
    "inner_steps": 1,
    "update_rate": 1,
    "budget": 12,
    "val_tasks": 2,
    "target_tasks": 2,
    "device": "cpu",
}
#: For ``gym.make``: the settings and the time limit that matches their budget.
TINY = {**TINY_SETTINGS, "max_episode_steps": 12}
