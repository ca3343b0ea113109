"""The student's one configuration: network shape, meta-optimiser, learner, device and precision.

Every field is checked when the config is built, so a bad value fails at once
with a message that names it and the fix, not later inside a meta-step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from metacurriculum.student.settings import (
    BATCHINGS,
    INITS,
    LearnerSettings,
    learner_settings,
    positive_real,
)

DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: How activations may be laid out (:attr:`StudentConfig.memory_format`).
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")


def feature_size(image_size: int, depth: int) -> int:
    """The side of the feature map after ``depth`` blocks (3x3 conv, padding 1, 2x2 max-pool).

    Args:
        image_size: Side of the square input image.
        depth: Number of conv blocks.

    Returns:
        The side after the last pool (0 when the image is too small for ``depth`` pools).
    """
    size = image_size
    for _ in range(depth):
        size //= 2
    return size


@dataclass(frozen=True)
class StudentConfig:
    """Configuration of a student: its network, its meta-optimiser, its learner and device.

    The defaults are the paper's Table I and MAML's Omniglot net. What the learner does
    (``"maml"``, ``"anil"``, ``"protonet"``...) and its own settings (``inner_lr``,
    ``inner_steps``...) are ``learner`` and ``learner_kwargs``, checked by the learner's
    settings (:mod:`metacurriculum.student.settings`), as the env's are.

    Attributes:
        n_max: Number of logits of the network, N_max. A task with ``n`` classes
            scores only the first ``n`` of them.
        in_channels: Channels of the input images (1 for Omniglot and MNIST).
        image_size: Side of the square input images, in pixels.
        hidden: Filters of every conv layer.
        depth: Number of conv blocks (conv, batch norm, ReLU, max-pool). MAML's
            Omniglot net has 4; the paper's text says 3.
        meta_lr: Learning rate of the Adam meta-optimiser (beta; Table I: 0.001), the
            outer optimiser of every learner.
        batching: How the tasks of a meta-batch run: ``"loop"`` (each task on its
            exact shapes, on the CPU in task threads: see ``task_threads``; least memory), ``"vmap"`` (all tasks in one
            ``torch.func.vmap`` call on the padded batch), ``"grouped"`` (all
            tasks in one call of plain ops, tasks folded into grouped convs) or
            ``"auto"``: the loop on the CPU, grouped on CUDA, the fastest on each.
        device: ``"auto"`` (CUDA when available, else the CPU), ``"cpu"``,
            ``"cuda"`` or ``"cuda:<index>"``.
        dtype: Precision of parameters and images: ``"float32"`` or ``"float64"``.
        bn_eps: Epsilon added to the batch variance in batch norm.
        init: How the weights are drawn: ``"torch"`` (PyTorch's default for
            ``nn.Conv2d``/``nn.Linear``), ``"xavier"`` (Xavier-uniform, MAML's
            TensorFlow code) or ``"kaiming"`` (He-normal). Chosen by measurement
            (``python -m metacurriculum.benchmarks.experiments.learning_speed``, Omniglot
            5-way 1-shot, Table I, second order, 5 seeds, accuracy on 200 unseen
            tasks after 100 meta-steps): see the README's "Learning speed" table.
            With batch norm after every conv the weights' scale sets the effective
            inner step, and ``"torch"``'s smallest weights learn fastest.
        learner: The meta-learner, a name of
            :func:`~metacurriculum.student.settings.list_learners` (``"maml"``).
        learner_kwargs: The learner's settings; missing ones take its defaults (after
            construction this holds every one of them).
        memory_format: How activations are laid out: ``"channels_last"`` (NHWC: on the
            CPU, oneDNN's convolutions and max-pooling run several times faster),
            ``"contiguous"`` (NCHW) or ``"auto"``: channels-last on the CPU, NCHW on CUDA
            (not measured there). Values agree up to rounding.
        task_threads: On the CPU's loop path with ``k > 1`` torch threads, run ``k``
            tasks at once, one thread each (``True``: the fastest; ``k`` tasks' graphs
            are in memory at once, and a task's numbers do not depend on ``k``), or one
            task at a time with the ``k`` threads inside its ops (``False``: one graph
            in memory, rounding that depends on ``k``). Measured at the 20-way second
            order on 2 threads (``python -m
            metacurriculum.benchmarks.experiments.task_threads``): ``False`` peaks at
            about half the memory for about 0.9x the speed.
    """

    n_max: int
    in_channels: int = 1
    image_size: int = 28
    hidden: int = 64
    depth: int = 4
    meta_lr: float = 0.001
    batching: str = "auto"
    device: str = "auto"
    dtype: str = "float32"
    bn_eps: float = 1e-5
    init: str = "torch"
    learner: str = "maml"
    learner_kwargs: Mapping[str, Any] = field(default_factory=dict)
    memory_format: str = "auto"
    task_threads: bool = True

    def __post_init__(self) -> None:
        for name, low in (("n_max", 1), ("in_channels", 1), ("hidden", 1), ("depth", 1)):
            _check_int(name, getattr(self, name), low)
        _check_int("image_size", self.image_size, 2)
        positive_real("StudentConfig.meta_lr", self.meta_lr, 0.001)
        for name, known in (
            ("batching", BATCHINGS),
            ("init", INITS),
            ("memory_format", MEMORY_FORMATS),
        ):
            value = getattr(self, name)
            if value not in known:
                raise ValueError(f"StudentConfig.{name}={value!r} is unknown; use one of {known}.")
        if not isinstance(self.task_threads, bool):
            raise TypeError(
                f"StudentConfig.task_threads must be True or False, got {self.task_threads!r}."
            )
        if isinstance(self.bn_eps, bool) or not isinstance(self.bn_eps, (int, float)):
            raise TypeError(f"StudentConfig.bn_eps must be a float, got {self.bn_eps!r}.")
        if not (math.isfinite(self.bn_eps) and self.bn_eps > 0):
            raise ValueError(f"StudentConfig.bn_eps must be finite and > 0, got {self.bn_eps!r}.")
        if feature_size(self.image_size, self.depth) < 1:
            largest = int(math.log2(self.image_size))
            raise ValueError(
                f"StudentConfig.depth={self.depth} is too deep for image_size={self.image_size}: "
                f"{self.depth} 2x2 max-pools shrink the image to nothing; use depth <= {largest} "
                "or larger images."
            )
        if self.dtype not in DTYPES:
            raise ValueError(
                f"StudentConfig.dtype={self.dtype!r} is unknown; use one of {tuple(DTYPES)}."
            )
        resolve_device(self.device)
        settings = learner_settings(self.learner, self.learner_kwargs)
        object.__setattr__(self, "learner_kwargs", settings.to_dict())
        object.__setattr__(self, "_settings", settings)

    @property
    def settings(self) -> LearnerSettings:
        """The learner's settings (its dataclass, every value checked)."""
        return self._settings  # type: ignore[attr-defined]

    @property
    def torch_device(self) -> torch.device:
        """The device the student runs on, with ``"auto"`` resolved."""
        return resolve_device(self.device)

    @property
    def torch_dtype(self) -> torch.dtype:
        """The torch dtype named by ``dtype``."""
        return DTYPES[self.dtype]

    @property
    def channels_last(self) -> bool:
        """Whether activations are channels-last, with ``"auto"`` resolved for the device."""
        if self.memory_format == "auto":
            return self.torch_device.type == "cpu"
        return self.memory_format == "channels_last"

    @property
    def resolved_batching(self) -> str:
        """The batching that runs, with ``"auto"`` resolved for the device and network."""
        return resolve_batching(self.batching, self.torch_device, self.hidden)

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-serialisable dict (what a checkpoint stores)."""
        return {**asdict(self), "learner_kwargs": dict(self.learner_kwargs)}


#: The widest network (filters per block) for which ``"auto"`` groups a meta-batch's tasks on
#: the CPU: there, per-op overhead outweighs the arithmetic, and one grouped call of all
#: tasks was measured 1.5-1.6x the per-task loop (5-way 1-shot, 16 filters x 3 blocks, one
#: thread, channels-last); at 32 filters it was 0.86-0.99x, at 64 0.76-1.15x.
SMALL_NETWORK = 16


def resolve_batching(batching: str, device: torch.device, hidden: int | None = None) -> str:
    """The concrete batching (``"loop"``, ``"vmap"`` or ``"grouped"``) for a name, a device
    and a network width.

    ``"auto"`` is ``"grouped"`` on CUDA, where it was measured fastest (about 6x the loop
    at 20-way 1-shot, meta-batch 8, second order, on an H200; ``"vmap"`` about 3x, with
    three times the memory). On the CPU it is the per-task loop (its tasks spread over
    torch's threads), except for networks of at most :data:`SMALL_NETWORK` filters, whose
    tiny ops run faster grouped. See ``benchmarks/experiments/student_speed.py``.

    Raises:
        ValueError: If ``batching`` is not one of :data:`BATCHINGS`.
    """
    if batching not in BATCHINGS:
        raise ValueError(f"batching={batching!r} is unknown; use one of {BATCHINGS}.")
    if batching == "auto":
        if device.type == "cuda":
            return "grouped"
        return "grouped" if hidden is not None and hidden <= SMALL_NETWORK else "loop"
    return batching


def resolve_device(device: str) -> torch.device:
    """The torch device named by a config's ``device`` string.

    Raises:
        ValueError: If the name is not ``"auto"``, ``"cpu"``, ``"cuda"`` or
            ``"cuda:<index>"``, or names a CUDA device this machine does not have.
    """
    if not isinstance(device, str):
        raise TypeError(f"StudentConfig.device must be a string, got {device!r}.")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        parsed = torch.device(device)
    except RuntimeError:
        parsed = None
    if parsed is None or parsed.type not in ("cpu", "cuda"):
        raise ValueError(
            f"StudentConfig.device={device!r} is not supported; use 'auto', 'cpu', 'cuda' "
            "or 'cuda:<index>'."
        )
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"StudentConfig.device={device!r} but CUDA is not available on this machine; "
                "use device='cpu' or device='auto'."
            )
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(
                f"StudentConfig.device={device!r} but this machine has "
                f"{torch.cuda.device_count()} CUDA device(s); use an index below that."
            )
    return parsed


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"StudentConfig.{name} must be an int, got {value!r}.")
    if value < low:
        raise ValueError(f"StudentConfig.{name} must be >= {low}, got {value}.")
