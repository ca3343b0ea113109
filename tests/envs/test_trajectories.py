"""The existing ids behave as before task families: spaces, observations and trajectories.

``fixtures/trajectories_v0.json`` was written by ``fixtures/record_trajectories.py`` on the
code before ω became a family's vector (seed 3, fixed actions, both action types, the
tiny settings of ``test_env.py`` for the MAML ids). The analytic student is compared
exactly; the MAML ids to 1e-5 (convolutions may round differently on other CPUs).
"""

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import metacurriculum  # noqa: F401 - registers the ids

FIXTURES = Path(__file__).parent / "fixtures"
RECORDED = json.loads((FIXTURES / "trajectories_v0.json").read_text())
#: The recording's settings (record_trajectories.py), pinned here rather than taken from
#: tiny_settings.py: the recorded numbers must not follow a change there.
TINY = {
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
    "max_episode_steps": 12,
}
CONTINUOUS = [0.3, -0.1, 1.0, -0.45, 0.2, 0.05, -1.0, 0.7]
DISCRETE = [0, 2, 2, 1, 0, 2, 2, 1]


@pytest.mark.parametrize("key", sorted(RECORDED))
def test_trajectory_unchanged(key):
    env_id, action_type = key.split("/")
    settings = {} if "Analytic" in env_id else TINY
    env = gym.make(env_id, action_type=action_type, **settings)
    recorded = RECORDED[key]
    assert [repr(env.observation_space), repr(env.action_space)] == recorded["spaces"]
    obs, _ = env.reset(seed=3)
    trace = {"obs": [obs.tolist()], "reward": [], "omega": [], "n_way": []}
    trace.update(target_loss=[], val_loss=[])
    for i in range(len(CONTINUOUS)):
        if action_type == "continuous":
            action = np.array([CONTINUOUS[i]], np.float32)
        else:
            action = DISCRETE[i]
        obs, reward, _, _, info = env.step(action)
        assert isinstance(info["omega"], float)
        trace["obs"].append(obs.tolist())
        trace["reward"].append(reward)
        for name in ("omega", "n_way", "target_loss", "val_loss"):
            trace[name].append(info[name])
    assert trace["n_way"] == recorded["n_way"]
    assert trace["omega"] == recorded["omega"]
    tolerance = 0.0 if "Analytic" in env_id else 1e-5
    for name in ("obs", "reward", "target_loss", "val_loss"):
        np.testing.assert_allclose(trace[name], recorded[name], rtol=tolerance, atol=tolerance)
