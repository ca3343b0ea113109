"""The ``target_logit`` reward: the log-odds of the target loss, telescoping like ``target``."""

from __future__ import annotations

import math

import gymnasium as gym
import pytest

import metacurriculum  # noqa: F401 - registers the ids
from metacurriculum.envs import REWARDS


def log_odds(p: float) -> float:
    p = min(max(p, 1e-3), 1 - 1e-3)
    return math.log(p / (1 - p))


def episode_return(schedule) -> float:
    env = gym.make(
        "MetaCurriculum-AnalyticEasyFirst-v0", reward="target_logit", action_type="omega"
    )
    _, info = env.reset(seed=0)
    start, total, done, step = info["target_loss_normalized"], 0.0, False, 0
    while not done:
        _, reward, terminated, truncated, info = env.step([schedule(step)])
        total += reward
        step += 1
        done = terminated or truncated
    # The return telescopes to the change of the log-odds of the target loss.
    assert total == pytest.approx(log_odds(start) - log_odds(info["target_loss_normalized"]))
    return total


def test_target_logit_telescopes_and_ranks_a_climb_above_plain_maml():
    assert "target_logit" in REWARDS
    climb = episode_return(lambda step: min(2 + 0.1 * step, 20))
    plain = episode_return(lambda step: 20)
    assert climb > plain + 5
