"""Record every registered teacher's ω sequence on the analytic env (run once, before
vector ω reached the teachers)::

    python tests/teachers/record_teacher_trajectories.py tests/teachers/teacher_trajectories_v0.json
"""

import json
import sys

import gymnasium as gym

import metacurriculum  # noqa: F401 - registers the ids
from metacurriculum.teachers import list_teachers, make_teacher

SETTINGS = {"budget": 240, "max_episode_steps": 60}


def trajectory(name: str, action_type: str, seed: int = 2) -> list[float]:
    env = gym.make("MetaCurriculum-Analytic-v0", action_type=action_type, **SETTINGS)
    teacher = make_teacher(name)
    obs, info = env.reset(seed=seed)
    teacher.reset(env.observation_space, env.action_space, seed=seed)
    omegas, done = [], False
    while not done:
        obs, _, terminated, truncated, info = env.step(teacher.act(obs, info))
        omegas.append(float(info["omega"]))
        done = terminated or truncated
    return omegas


if __name__ == "__main__":
    names = [n for n in list_teachers() if n != "sb3"]
    out = {f"{n}/{a}": trajectory(n, a) for n in names for a in ("continuous", "discrete")}
    with open(sys.argv[1], "w") as f:
        json.dump(out, f)
    print(sorted(out))
