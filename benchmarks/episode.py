"""One run's episode, as every executor drives it: its teacher, its record, its failures.

:class:`RunEpisode` is the per-run half of the episode loop, shared by
:func:`execute_run` (one env, for the ``inline``, ``processes`` and ``ray`` executors)
and the ``population`` executor (sub-env ``i`` of a vector env is run ``i``). It turns
the run's observation and ``info`` into the teacher's action, checks that action
against the run's own env (``omega_for_action``, the check ``step`` makes), records
each step, then saves and evaluates the student and writes ``done.json``. Whatever
fails inside it (the teacher raising, an action the env refuses: NaN, the wrong shape)
fails that run alone, the same way under every executor.

:class:`RunRecord` writes the run's folder (see
:mod:`~metacurriculum.benchmarks.plan` for what each file holds): ``config.json``
first, a ``steps.jsonl`` line per env step, then ``student.pt`` (with the mode every
other file gets), ``evaluation.json`` and ``done.json``, which carries the digests of
``config.json`` and ``student.pt``. A filesystem fault (a read-only folder, a file
where a folder belongs, a full disk) fails the run with one line naming the path and
the fix.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from metacurriculum.benchmarks.filesystem import (
    describe_os_error,
    explain_write_failure,
    publish_mode,
)
from metacurriculum.benchmarks.plan import RunSpec, versions
from metacurriculum.benchmarks.run_folders import (
    CONFIG,
    DONE,
    EVALUATION,
    STEPS,
    STUDENT,
    BenchmarkError,
    clear_run,
    config_digest,
    evaluation_record,
    file_digest,
    jsonable,
    omega_fields,
    step_record,
    target_loss_auc,
    write_json,
)

__all__ = ["PhaseCallback", "RunEpisode", "RunRecord", "StepCallback", "execute_run"]

#: Called after every env step with (spec, meta_step, budget).
StepCallback = Callable[[RunSpec, int, int], None]
#: Called when a run enters a long phase without steps, with (spec, what it does), e.g.
#: ``"loading the data"`` or ``"evaluating on 200 unseen tasks"``.
PhaseCallback = Callable[[RunSpec, str], None]


class WriteError(BenchmarkError):
    """A run's file could not be written: one line naming the path and the fix."""


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Turn a failed write of ``path`` (or of a file beside it) into a :class:`WriteError`."""
    try:
        yield
    except WriteError:
        raise
    except OSError as error:
        if error.filename is None:
            error.filename = str(path)
        raise WriteError(describe_os_error(error)) from error
    except RuntimeError as error:  # torch.save on a full disk: "unexpected pos"
        explained = explain_write_failure(path, error)
        if explained is error:
            raise
        raise WriteError(describe_os_error(explained)) from error


def execute_run(
    spec: RunSpec,
    out: str | os.PathLike,
    on_step: StepCallback | None = None,
    on_phase: PhaseCallback | None = None,
) -> dict[str, Any]:
    """Run one teacher-student episode, evaluate the student, and write the run's folder.

    Any earlier, unfinished content of the folder is cleared first, so a rerun after
    an interruption starts from the same seed and reproduces the same numbers.

    Args:
        spec: the run.
        out: the output root.
        on_step: called after every env step.
        on_phase: called when the run starts building its env (the data is loaded then,
            once per process) and its final evaluation.

    Returns:
        The summary written to ``done.json``.
    """
    with RunEpisode(spec, out, on_step, on_phase) as episode:
        episode.phase("loading the data and building the env")
        env = spec.make_env()
        try:
            episode.record.start()
            obs, info = env.reset(seed=spec.seed)
            episode.reset(env.unwrapped, info)
            while True:
                action = episode.act(obs, info)
                obs, reward, terminated, truncated, info = env.step(action)
                episode.step(info, action, reward)
                if terminated or truncated:
                    break
            episode.evaluate(env.unwrapped)
            return episode.finish(info, terminated)
        finally:
            env.close()


class RunEpisode:
    """One run's teacher and record, driven step by step by an executor's loop.

    ``RunEpisode(spec, out)`` clears the run's folder, writes ``config.json`` and builds
    the teacher; then :meth:`reset` once, :meth:`act` and :meth:`step` every env step,
    :meth:`evaluate` when the episode ends (before any reset of the env) and
    :meth:`finish`. Each raises for this run only; an executor that steps several runs
    together catches it and goes on with the others. Use it as a context manager.

    Args:
        spec: the run.
        out: the output root.
        on_step: called after every recorded step.
        on_phase: called as the run enters a long phase (see :func:`execute_run`).
    """

    def __init__(
        self,
        spec: RunSpec,
        out: str | os.PathLike,
        on_step: StepCallback | None = None,
        on_phase: PhaseCallback | None = None,
    ) -> None:
        from metacurriculum.teachers import make_teacher

        self.spec, self.on_step, self.on_phase = spec, on_step, on_phase
        self.record = RunRecord(spec, out)
        self.tracking = None  # TensorBoard, W&B: watching, never the record
        try:
            self.teacher = make_teacher(spec.registered_teacher, **spec.teacher_kwargs)
            if spec.tracking:
                self.tracking = spec.tracking.open(spec)
        except BaseException:
            self.record.close()
            raise
        self.env: Any = None  # the run's own (unwrapped) env, whose step checks actions
        self.budget = 0

    def __enter__(self) -> RunEpisode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.record.close()
        if self.tracking is not None:
            self.tracking.close()

    def phase(self, text: str) -> None:
        """Report that the run ``text`` (a long phase without steps)."""
        if self.on_phase is not None:
            self.on_phase(self.spec, text)

    def reset(self, env: gym.Env, info: Mapping[str, Any]) -> None:
        """The run's env was reset: reset the teacher to its spaces and log step 0.

        Args:
            env: the run's own env (unwrapped, or a population's sub-env).
            info: the reset's ``info``.
        """
        self.env = env
        self.teacher.reset(env.observation_space, env.action_space, seed=self.spec.seed)
        self.record.reset(info)
        self.budget = int(info["budget"])
        if self.tracking is not None:
            self.tracking.step(info, None, self.teacher)

    def act(self, observation: Any, info: Mapping[str, Any]) -> Any:
        """The teacher's action for ``observation``, checked as the env's ``step`` will.

        Raises:
            ValueError: for an action the env refuses (NaN, out of the space, the wrong
                shape), naming the teacher and the action.
        """
        action = self.teacher.act(observation, info)
        check = getattr(self.env, "omega_for_action", None)
        if check is not None:
            try:
                check(action)
            except ValueError as error:
                raise ValueError(
                    f"teacher {self.spec.teacher!r} returned an action its env refuses at "
                    f"meta-step {info.get('meta_step')}: {error}"
                ) from None
        return action

    def step(
        self, info: Mapping[str, Any], action: Any, reward: float, wall_s: float | None = None
    ) -> None:
        """Record one env step (see :meth:`RunRecord.step`) and report it: its meta-step, or
        under a compute budget the fraction of it spent in units of the meta-step budget
        (so that progress bars end at the budget whatever the meta-steps)."""
        self.record.step(info, action, reward, wall_s)
        if self.tracking is not None:
            self.tracking.step(info, reward, self.teacher)
        if self.on_step is not None:
            done = int(info["meta_step"])
            if info.get("compute_budget") is not None:
                done = round(float(info["elapsed"]) * self.budget)
            self.on_step(self.spec, done, self.budget)

    def evaluate(self, env: Any) -> None:
        """The episode has ended: stop the clock, save and evaluate the student of ``env``."""
        self.record.end_training()
        self.phase(f"evaluating on {self.spec.eval_tasks} unseen tasks")
        self.record.evaluate(env)

    def finish(self, info: Mapping[str, Any], terminated: bool) -> dict[str, Any]:
        """Write ``done.json`` (after :meth:`evaluate`); returns its summary."""
        summary = self.record.finish(info, terminated, self.teacher)
        if self.tracking is not None:
            self.tracking.finish(summary)
        return summary


class RunRecord:
    """One run's folder as the run goes: ``config.json`` first, a ``steps.jsonl`` line
    per env step, then the student, its evaluation and ``done.json``.

    Every executor writes its runs through it, so a run's files are the same however
    it was executed. Use it as a context manager (the step log is closed on exit).

    Args:
        spec: the run.
        out: the output root; the run's folder is cleared of earlier run files.

    Raises:
        BenchmarkError: when the folder cannot be made or written (one line naming the
            path and the fix), or holds a folder where a run file belongs.
    """

    def __init__(self, spec: RunSpec, out: str | os.PathLike) -> None:
        import torch

        self.spec = spec
        self.folder = spec.folder(out)
        # The thread count is recorded: on the CPU it can change the last bits of the numbers.
        self.config = {
            **spec.identity(),
            "versions": versions(),
            "threads": torch.get_num_threads(),
        }
        with writing(self.folder):
            self.folder.mkdir(parents=True, exist_ok=True)
            clear_run(self.folder)
            write_json(self.folder / CONFIG, self.config)
            self.log = open(self.folder / STEPS, "w")
        self.steps = 0
        self.curve: list[tuple[int, float]] = []  # (meta-step, target loss): sample efficiency
        self.started = self.train_seconds = self.eval_seconds = 0.0
        self.evaluation: dict[str, Any] = {}
        self.eval_flops: int | None = None
        self.student_digest: str | None = None

    def __enter__(self) -> RunRecord:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the step log (a full disk may refuse its last bytes: nothing to keep)."""
        with contextlib.suppress(OSError):
            self.log.close()

    def start(self) -> None:
        """Start the clock of the step log's wall times and of ``train_seconds``."""
        self.started = time.perf_counter()

    def reset(self, info: Mapping[str, Any]) -> None:
        """Log the reset's ``info`` (step 0)."""
        with writing(self.folder / STEPS):
            self.log.write(json.dumps(step_record(0, info, None, None, 0.0)) + "\n")
        self.curve = [(0, info["target_loss"])]

    def step(
        self, info: Mapping[str, Any], action: Any, reward: float, wall_s: float | None = None
    ) -> None:
        """Log one env step: the teacher's ``action``, the env's ``info`` and ``reward``,
        at ``wall_s`` seconds since :meth:`start` (``None``: now)."""
        self.steps += 1
        wall = time.perf_counter() - self.started if wall_s is None else wall_s
        with writing(self.folder / STEPS):
            self.log.write(json.dumps(step_record(self.steps, info, action, reward, wall)) + "\n")
        self.curve.append((int(info["meta_step"]), info["target_loss"]))

    def end_training(self) -> None:
        """The episode has ended: stop ``train_seconds``."""
        self.train_seconds = time.perf_counter() - self.started

    def evaluate(self, env: Any) -> None:
        """Save the trained student of ``env`` (an env with ``save_student`` and
        ``evaluate_test``, before any reset) and write its ``evaluation.json``."""
        spec, start = self.spec, time.perf_counter()
        student = self.folder / STUDENT
        with writing(student):
            env.save_student(str(student))
            publish_mode(student)  # a temporary file's 0o600 otherwise, unlike its siblings
        self.student_digest = file_digest(student)
        curves = env.evaluate_test(spec.eval_tasks, spec.eval_seed)
        compute = getattr(env, "compute", None)
        if compute is not None:  # the FLOPs of this evaluation, as the env counts training's
            self.eval_flops = compute.evaluation(np.asarray(curves.n_way).tolist())
        self.evaluation = evaluation_record(curves, spec)
        with writing(self.folder / EVALUATION):
            write_json(self.folder / EVALUATION, self.evaluation)
        self.eval_seconds = time.perf_counter() - start

    def finish(self, info: Mapping[str, Any], terminated: bool, teacher: Any) -> dict[str, Any]:
        """Make the step log durable and write ``done.json`` (after :meth:`evaluate`);
        returns its summary.

        Args:
            info: the ``info`` of the episode's last step.
            terminated: whether the student diverged.
            teacher: the episode's teacher (its ``teacher_summary`` joins the summary).
        """
        from metacurriculum.teachers import teacher_summary

        with writing(self.folder / STEPS):
            self.log.flush()
            os.fsync(self.log.fileno())
            self.log.close()
        evaluation = self.evaluation
        summary = jsonable(
            {
                "final_loss": evaluation["loss_mean"][-1],
                "final_accuracy": evaluation["accuracy_mean"][-1],
                "initial_loss": evaluation["loss_mean"][0],
                "initial_accuracy": evaluation["accuracy_mean"][0],
                "final_target_loss": info["target_loss"],
                "target_loss_auc": target_loss_auc(self.curve),
                **omega_fields(info, "final_omega"),  # a vector ω also by name
                "env_steps": self.steps,
                "meta_steps": info["meta_step"],
                "diverged": bool(terminated),
                "train_seconds": round(self.train_seconds, 3),
                "eval_seconds": round(self.eval_seconds, 3),
                # The student's compute in FLOPs (student/compute.py): meta-training, the
                # measurements of every step, the final evaluation; the budget it ran under.
                "train_flops": info.get("train_flops"),
                "measure_flops": info.get("measure_flops"),
                "eval_flops": self.eval_flops,
                "compute_budget": info.get("compute_budget"),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "config_digest": config_digest(self.config),
                "student_digest": self.student_digest,
                # The teacher's own statistics, e.g. how often its decision, not a floor, set ω.
                **teacher_summary(teacher),
            }
        )
        with writing(self.folder / DONE):
            write_json(self.folder / DONE, summary)
        return summary
