"""Watching runs as they train: TensorBoard event files and Weights & Biases, beside the folders.

``metacurriculum bench --tensorboard DIR`` (``BenchConfig(tracking=Tracking(tensorboard=DIR))``)
writes, for every run, TensorBoard events to ``DIR/<env_id>/<teacher>/seed_<s>/`` (the
run's own name, so TensorBoard's run filter selects an env, a teacher or a seed):

=============================== ==============================================================
tag                             what, at every env step (x axis: the meta-step)
=============================== ==============================================================
``omega/<name>``                each coordinate of ω by name (``omega/classes``)
``loss/val``, ``loss/target``   the validation loss at ω and the loss on the hardest tasks
``loss/val_normalized``, ...    the same divided by chance (``log n``)
``loss/train``, ``accuracy/*``  the meta-training loss; validation and target accuracies
``reward``                      the env's reward (none at reset)
``teacher/*``                   the teacher's summary so far (:func:`~metacurriculum.teachers.teacher_summary`)
``final/*``                     the final evaluation (loss, accuracy, target-loss AUC, diverged)
=============================== ==============================================================

and the run's settings (env id, teacher, seed, the teacher's kwargs and the env's
resolved settings) as hyper-parameters, with the ``final/*`` scalars as their metrics
(TensorBoard's HPARAMS tab). ``--wandb PROJECT`` logs the same scalars and settings to a
Weights & Biases run per benchmark run (name: the run's, group: the env id;
``--wandb-mode offline`` writes them locally for ``wandb sync``).

The run folders stay the source of truth: a tracker reads the ``info`` the run records
and writes nothing into its folder, so a run logged to TensorBoard has the same folder
bytes as one that is not (wall times apart). Every executor logs alike: the trackers
live in :class:`~metacurriculum.benchmarks.episode.RunEpisode`, where each run's episode
is recorded, and travel with the run (:attr:`RunSpec.tracking`); with Ray, ``DIR`` is a
path on the node that runs the task (a shared folder on a cluster). A run that is redone
replaces its earlier event files. A tracker that fails (a full disk) stops with a
warning; the run goes on. TensorBoard comes with ``pip install metacurriculum[tensorboard]``,
Weights & Biases with ``metacurriculum[wandb]``; each is imported only when used.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from metacurriculum.benchmarks.plan import RunSpec

__all__ = ["TensorBoardTracker", "Tracking", "WandbTracker", "hyperparameters", "step_scalars"]

logger = logging.getLogger("metacurriculum.benchmarks")

#: ``info`` keys -> their scalar's tag.
INFO_TAGS = {
    "train_loss": "loss/train",
    "val_loss": "loss/val",
    "val_loss_normalized": "loss/val_normalized",
    "target_loss": "loss/target",
    "target_loss_normalized": "loss/target_normalized",
    "val_accuracy": "accuracy/val",
    "target_accuracy": "accuracy/target",
}
#: ``done.json`` keys -> their scalar's tag, written when the run finishes.
FINAL_TAGS = {
    "final_loss": "final/loss",
    "final_accuracy": "final/accuracy",
    "final_target_loss": "final/target_loss",
    "target_loss_auc": "final/target_loss_auc",
    "diverged": "final/diverged",
}
#: How often, in seconds, TensorBoard's writer flushes its queue: what one watches lags by that.
FLUSH_SECS = 5
#: The modes of Weights & Biases (``None``: its own default, ``$WANDB_MODE`` or online).
WANDB_MODES = ("online", "offline", "disabled")


@dataclass(frozen=True)
class Tracking:
    """Where a benchmark's runs are watched as they train; nothing by default.

    Attributes:
        tensorboard: the folder of TensorBoard event files (a subfolder per run).
        wandb: the Weights & Biases project (a W&B run per benchmark run).
        wandb_mode: ``"online"``, ``"offline"`` (written locally, ``wandb sync`` later) or
            ``"disabled"``; ``None``: W&B's default (``$WANDB_MODE``, else online).
    """

    tensorboard: str | None = None
    wandb: str | None = None
    wandb_mode: str | None = None

    def __bool__(self) -> bool:
        return bool(self.tensorboard or self.wandb)

    def check(self) -> None:
        """Fail before any run for a missing package or a folder that cannot be made.

        Raises:
            BenchmarkError: naming the extra to install, the mode or the folder.
        """
        from metacurriculum.benchmarks.run_folders import BenchmarkError

        if self.tensorboard:
            import_summary_writer()
            try:
                Path(self.tensorboard).mkdir(parents=True, exist_ok=True)
            except OSError as error:
                from metacurriculum.benchmarks.filesystem import describe_os_error

                raise BenchmarkError(describe_os_error(error, elsewhere="--tensorboard")) from None
        if self.wandb_mode is not None and self.wandb_mode not in WANDB_MODES:
            raise BenchmarkError(
                f"--wandb-mode {self.wandb_mode!r} is unknown; choose one of {WANDB_MODES}."
            )
        if self.wandb:
            import_wandb()

    def open(self, spec: RunSpec) -> RunTracking:
        """The trackers of the run ``spec``."""
        trackers: list[Any] = []
        if self.tensorboard:
            trackers.append(TensorBoardTracker(Path(self.tensorboard) / spec.name, spec))
        if self.wandb:
            trackers.append(WandbTracker(self.wandb, spec, self.wandb_mode))
        return RunTracking(spec, trackers)


def import_summary_writer() -> Any:
    """TensorBoard's ``SummaryWriter`` (PyTorch's).

    Raises:
        BenchmarkError: when TensorBoard is not installed, naming the extra.
    """
    from metacurriculum.benchmarks.run_folders import BenchmarkError

    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise BenchmarkError(
            "--tensorboard needs TensorBoard: pip install metacurriculum[tensorboard] "
            '(or pip install "tensorboard>=2.10").'
        ) from None
    return SummaryWriter


def import_wandb() -> Any:
    """The ``wandb`` module.

    Raises:
        BenchmarkError: when Weights & Biases is not installed, naming the extra.
    """
    from metacurriculum.benchmarks.run_folders import BenchmarkError

    try:
        import wandb
    except ImportError:
        raise BenchmarkError(
            "--wandb needs Weights & Biases: pip install metacurriculum[wandb] (or pip install wandb)."
        ) from None
    return wandb


def step_scalars(
    info: Mapping[str, Any], reward: float | None, summary: Mapping[str, float]
) -> dict[str, float]:
    """The scalars of one env step: ω by coordinate name, the losses and accuracies of
    ``info``, the ``reward`` (``None`` at reset: left out) and the teacher's ``summary``."""
    omega = np.atleast_1d(np.asarray(info["omega"], dtype=float))
    names = list(info.get("omega_names") or [f"{i}" for i in range(omega.size)])
    scalars = {f"omega/{name}": float(value) for name, value in zip(names, omega, strict=True)}
    for key, tag in INFO_TAGS.items():
        if key in info:
            scalars[tag] = float(info[key])
    if reward is not None:
        scalars["reward"] = float(reward)
    scalars.update({key: float(value) for key, value in summary.items()})
    return scalars


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for key in sorted(value):
            _flatten(f"{prefix}.{key}" if prefix else str(key), value[key], out)
    elif isinstance(value, bool | int | float | str):
        out[prefix] = value
    else:  # None, lists: as text (TensorBoard's hyper-parameters are numbers, text or bools)
        out[prefix] = str(value)


def hyperparameters(spec: RunSpec) -> dict[str, bool | int | float | str]:
    """The run's settings, flat (``env_settings.budget``, ``teacher_kwargs.step``): what
    ``config.json`` records, the versions apart."""
    out: dict[str, Any] = {}
    _flatten("", spec.identity(), out)
    return out


def final_scalars(summary: Mapping[str, Any]) -> dict[str, float]:
    """The ``final/*`` scalars of a finished run's ``done.json`` summary."""
    return {
        tag: float(summary[key])
        for key, tag in FINAL_TAGS.items()
        if isinstance(summary.get(key), bool | int | float)
    }


class TensorBoardTracker:
    """One run's TensorBoard event files in ``folder`` (earlier event files there removed).

    Args:
        folder: the run's folder of event files.
        spec: the run (its settings become the hyper-parameters).
    """

    def __init__(self, folder: Path, spec: RunSpec) -> None:
        from torch.utils.tensorboard.summary import hparams

        writer_class = import_summary_writer()
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("events.out.tfevents.*"):  # a run redone: its old curves go
            old.unlink()
        self.writer = writer_class(str(folder), flush_secs=FLUSH_SECS)
        metrics = dict.fromkeys(FINAL_TAGS.values(), 0.0)  # only the tags matter here
        self._hparams = hparams(hyperparameters(spec), metrics)
        for summary in self._hparams[:2]:  # the experiment and its session's start
            self.writer.file_writer.add_summary(summary)

    def log(self, meta_step: int, scalars: Mapping[str, float]) -> None:
        """Write ``scalars`` at ``meta_step``."""
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, meta_step)

    def finish(self, meta_step: int, final: Mapping[str, float]) -> None:
        """Write the final scalars and end the hyper-parameters' session."""
        self.log(meta_step, final)
        self.writer.file_writer.add_summary(self._hparams[2])

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()


class WandbTracker:
    """One run's Weights & Biases run: the same scalars, its settings as the config.

    Args:
        project: the W&B project.
        spec: the run (its name names the W&B run; its env id is the group).
        mode: W&B's mode (``None``: its default).
    """

    def __init__(self, project: str, spec: RunSpec, mode: str | None) -> None:
        wandb = import_wandb()
        self.run = wandb.init(
            project=project,
            name=spec.name,
            group=spec.env_id,
            job_type=spec.teacher,
            config=hyperparameters(spec),
            mode=mode,
            reinit="create_new",  # a population's runs are W&B runs at once in one process
        )

    def log(self, meta_step: int, scalars: Mapping[str, float]) -> None:
        """Log ``scalars`` at ``meta_step``."""
        self.run.log(dict(scalars), step=meta_step)

    def finish(self, meta_step: int, final: Mapping[str, float]) -> None:
        """Put the final scalars in the run's summary."""
        self.run.summary.update(dict(final))

    def close(self) -> None:
        """End the W&B run."""
        self.run.finish()


class RunTracking:
    """One run's trackers, fed by its episode: step 0 at reset, every env step, the end.

    A tracker that raises is closed and dropped with a warning: watching a run never
    fails it (its folder is the record).

    Args:
        spec: the run.
        trackers: its trackers (``log``, ``finish``, ``close``).
    """

    def __init__(self, spec: RunSpec, trackers: list[Any]) -> None:
        self.spec = spec
        self.trackers = trackers
        self.meta_step = 0

    def step(self, info: Mapping[str, Any], reward: float | None, teacher: Any) -> None:
        """Log the env step ``info`` with its ``reward`` and the ``teacher``'s summary so far."""
        from metacurriculum.teachers import teacher_summary

        if not self.trackers:
            return
        self.meta_step = int(info["meta_step"])
        scalars = step_scalars(info, reward, teacher_summary(teacher))
        self._each("log", self.meta_step, scalars)

    def finish(self, summary: Mapping[str, Any]) -> None:
        """The run finished with ``summary`` (``done.json``'s)."""
        self._each("finish", int(summary.get("meta_steps", self.meta_step)), final_scalars(summary))

    def close(self) -> None:
        """Close every tracker."""
        for tracker in self.trackers:
            try:
                tracker.close()
            except Exception as error:  # a tracker never fails the run
                logger.warning("%s: closing %s failed: %s", self.spec.name, tracker, error)
        self.trackers = []

    def _each(self, method: str, *args: Any) -> None:
        for tracker in list(self.trackers):
            try:
                getattr(tracker, method)(*args)
            except Exception as error:  # a tracker never fails the run
                warnings.warn(
                    f"{self.spec.name}: {type(tracker).__name__} failed ({error}); it stops "
                    "logging this run, which goes on (its folder is the record).",
                    stacklevel=2,
                )
                self.trackers.remove(tracker)
                try:
                    tracker.close()
                except Exception:  # it failed once already, and said so
                    pass
