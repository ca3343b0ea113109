"""SB3 callbacks for training teachers: evaluation on held-out seeds, and a progress bar.

:class:`TeacherEvalCallback` is SB3's ``EvalCallback`` made for curricula: the score of a
policy is the student it leaves (the final evaluation's loss on unseen tasks of the
hardest distribution, :func:`~metacurriculum.teachers.evaluation.run_episode`), beside
registered teachers (``none`` and ``random``) run once on the same held-out seeds. Each
evaluation goes to SB3's logger (``eval/*``: TensorBoard with ``tensorboard_log``) and to
the ``metacurriculum`` log, so the learning curve shows as training goes; at the end a
policy that does not beat the baselines raises :class:`TeacherTrainingWarning`. SB3 is
imported inside the functions that build the callbacks.
"""

from __future__ import annotations

import functools
import logging
import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from metacurriculum.teachers.evaluation import evaluate_teacher

logger = logging.getLogger(__name__)

#: Seeds of the evaluation episodes: far from the training seeds (``seed + i``).
EVAL_SEEDS = tuple(range(10_000, 10_005))


class TeacherTrainingWarning(UserWarning):
    """A trained teacher policy does not beat the baselines on held-out seeds."""


def teacher_eval_callback(
    eval_env: gym.Env | Callable[[], gym.Env],
    eval_freq: int | None = None,
    seeds: Sequence[int] = EVAL_SEEDS,
    baselines: Sequence[str] = ("none", "random"),
    eval_tasks: int = 100,
    best_model_path: str | Path | None = None,
    verbose: int = 0,
) -> Any:
    """A :class:`TeacherEvalCallback` (the class is built on first use: SB3 is optional).

    Args:
        eval_env: an env like the training one (or a function making it), used only here.
        eval_freq: evaluate every ``eval_freq`` env steps (summed over sub-envs);
            ``None``: only when training ends.
        seeds: the held-out seeds (one episode each).
        baselines: registered teachers run once on the same seeds, for comparison.
        eval_tasks: unseen tasks of each episode's final evaluation.
        best_model_path: save the best policy so far there (a ``.zip``).
        verbose: 1 prints each evaluation (it is logged in any case).
    """
    return _callback_class()(
        eval_env, eval_freq, seeds, baselines, eval_tasks, best_model_path, verbose
    )


@functools.cache
def _callback_class() -> type:
    from stable_baselines3.common.callbacks import BaseCallback

    class TeacherEvalCallback(BaseCallback):
        """Evaluates the policy as a teacher on held-out seeds during and after training.

        Attributes:
            curve: ``(env steps, mean final loss)`` of every evaluation, oldest first.
            baseline_losses: each baseline's mean final loss on the same seeds.
            best_loss: the lowest mean final loss of an evaluation.
        """

        def __init__(
            self,
            eval_env: gym.Env | Callable[[], gym.Env],
            eval_freq: int | None,
            seeds: Sequence[int],
            baselines: Sequence[str],
            eval_tasks: int,
            best_model_path: str | Path | None,
            verbose: int,
        ) -> None:
            super().__init__(verbose)
            if eval_freq is not None and (not isinstance(eval_freq, int) or eval_freq < 1):
                raise ValueError(f"eval_freq={eval_freq!r} must be an integer >= 1 or None.")
            if not seeds:
                raise ValueError("seeds is empty; give at least one held-out seed.")
            self._eval_env = eval_env
            self.eval_freq = eval_freq
            self.seeds = tuple(int(s) for s in seeds)
            self.baselines = tuple(baselines)
            self.eval_tasks = eval_tasks
            self.best_model_path = None if best_model_path is None else Path(best_model_path)
            self.curve: list[tuple[int, float]] = []
            self.baseline_losses: dict[str, float] = {}
            self.best_loss = math.inf
            self._last_eval = 0

        @property
        def env(self) -> gym.Env:
            """The evaluation env (made on first use)."""
            if not isinstance(self._eval_env, gym.Env):
                self._eval_env = self._eval_env()
            return self._eval_env

        def _mean_loss(self, teacher: Any) -> tuple[float, float]:
            episodes = evaluate_teacher(self.env, teacher, self.seeds, eval_tasks=self.eval_tasks)
            loss = float(np.mean([e.test_loss for e in episodes]))
            return loss, float(np.mean([e.episode_return for e in episodes]))

        def _on_training_start(self) -> None:
            for name in self.baselines:
                self.baseline_losses[name], _ = self._mean_loss(name)
                self.logger.record(f"eval/baseline_{name}", self.baseline_losses[name])

        def _on_step(self) -> bool:
            if (
                self.eval_freq is not None
                and self.num_timesteps - self._last_eval >= self.eval_freq
            ):
                self.evaluate()
            return True

        def _on_training_end(self) -> None:
            if self._last_eval != self.num_timesteps or not self.curve:
                self.evaluate()
            self.check_learned()

        def evaluate(self) -> float:
            """Run the policy on the held-out seeds now; log and return its mean final loss."""
            from metacurriculum.teachers.sb3 import SB3Teacher

            self._last_eval = self.num_timesteps
            loss, episode_return = self._mean_loss(SB3Teacher(self.model))
            self.curve.append((self.num_timesteps, loss))
            if loss < self.best_loss:
                self.best_loss = loss
                if self.best_model_path is not None:
                    self.model.save(str(self.best_model_path))
            self.logger.record("eval/final_loss", loss)
            self.logger.record("eval/return", episode_return)
            self.logger.record("eval/best_final_loss", self.best_loss)
            self.logger.dump(self.num_timesteps)
            others = ", ".join(f"{n} {v:.3f}" for n, v in self.baseline_losses.items())
            line = (
                f"teacher eval at {self.num_timesteps} env steps: final loss {loss:.3f} on "
                f"{len(self.seeds)} held-out seeds (best {self.best_loss:.3f}"
                + (f"; {others})" if others else ")")
            )
            if self.verbose >= 1:
                print(line)
            else:
                logger.info(line)
            return loss

        def check_learned(self) -> None:
            """Warn (:class:`TeacherTrainingWarning`) when the last evaluation does not beat
            every baseline."""
            if not self.curve or not self.baseline_losses:
                return
            final = self.curve[-1][1]
            beaten = {n: v for n, v in self.baseline_losses.items() if final >= v}
            if beaten:
                others = ", ".join(f"{n} {v:.3f}" for n, v in beaten.items())
                warnings.warn(
                    f"the trained teacher ends with a final loss of {final:.3f} on held-out "
                    f"seeds {list(self.seeds)}, no better than {others}: it may have learnt "
                    "nothing. Train longer, or use the env settings the algorithm was tuned "
                    "with (SB3_ALGOS[algo].env_kwargs, e.g. reward='target_logit').",
                    TeacherTrainingWarning,
                    stacklevel=2,
                )

    return TeacherEvalCallback


def progress_bar() -> Any:
    """An SB3 callback drawing a tqdm bar of env steps (SB3's own needs ``rich`` too)."""
    from stable_baselines3.common.callbacks import BaseCallback
    from tqdm.auto import tqdm

    class ProgressBar(BaseCallback):
        def _on_training_start(self) -> None:
            total = self.locals.get("total_timesteps")
            self.bar = tqdm(total=total, desc="teacher training", unit="env step")

        def _on_step(self) -> bool:
            self.bar.update(self.training_env.num_envs)
            return True

        def _on_training_end(self) -> None:
            self.bar.close()

    return ProgressBar()
