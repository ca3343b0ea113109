"""What every data set shares: the split container, the errors, and where data lives.

A data set is a class-indexed image tensor ``[classes, samples, 1, 28, 28]``
(float32, ink = 1.0, background = 0.0), cut into meta-training,
meta-validation and meta-testing parts (:class:`ImageSplits`).

Data is looked up under a *data root* (:func:`resolve_data_root`). The root may
be read-only (CI mounts it so), so whatever a loader derives from it (packed
arrays, downloads) goes to the root when it is writable and otherwise to a
per-root folder in the user's cache (:func:`derived_dir`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import torch

DATA_ENV_VAR = "METACURRICULUM_DATA"
"""Environment variable naming the data root when no root is passed."""


class DataNotFoundError(FileNotFoundError):
    """A data set's files are not where the loader looked for them."""


class CorruptDataError(ValueError):
    """A data file exists but cannot be read or does not hold what its format promises."""


class DataSplitWarning(UserWarning):
    """The splits were made differently from the data set's standard protocol."""


class DataCacheWarning(UserWarning):
    """Derived data could not be written to any cache; it will be rebuilt next time."""


@dataclass(frozen=True, eq=False, repr=False)
class ImageSplits:
    """A data set cut into disjoint meta-training, meta-validation and meta-testing parts.

    Each part is a class-indexed image tensor ``[classes, samples, 1, H, W]``
    (float32, ink = 1.0, background = 0.0) on one device. Splits returned by
    :func:`~metacurriculum.envs.data.load_dataset` are shared by every caller in
    the process: index them, never modify them in place.

    Attributes:
        name: The data set's registry name, e.g. ``"omniglot"``.
        train: Images for meta-training tasks.
        val: Images for meta-validation tasks, disjoint from ``train``.
        test: Images for meta-testing tasks, disjoint from ``train`` and ``val``.
        notes: How the splits were made, in one or two sentences.
    """

    name: str
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    notes: str = ""

    def __post_init__(self) -> None:
        parts = {"train": self.train, "val": self.val, "test": self.test}
        for part, images in parts.items():
            if not isinstance(images, torch.Tensor) or images.dtype != torch.float32:
                raise TypeError(f"ImageSplits.{part} must be a float32 tensor, got {images!r:.80}")
            if images.ndim != 5 or images.shape[2] != 1 or 0 in images.shape:
                raise ValueError(
                    f"ImageSplits.{part} must be a non-empty [classes, samples, 1, H, W] tensor, "
                    f"got shape {tuple(images.shape)}"
                )
        shapes = {tuple(images.shape[2:]) for images in parts.values()}
        devices = {images.device for images in parts.values()}
        if len(shapes) > 1 or len(devices) > 1:
            raise ValueError(
                f"ImageSplits parts must share image shape and device, got {shapes} on {devices}"
            )

    @property
    def device(self) -> torch.device:
        """The device all three parts live on."""
        return self.train.device

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """The shape of one image, ``(1, H, W)``."""
        return tuple(self.train.shape[2:])  # type: ignore[return-value]

    def to(self, device: str | torch.device) -> ImageSplits:
        """Return a copy of the splits on ``device`` (``self`` if already there)."""
        device = torch.device(device)
        if device == self.device:
            return self
        return ImageSplits(
            self.name, self.train.to(device), self.val.to(device), self.test.to(device), self.notes
        )

    def __repr__(self) -> str:
        shapes = ", ".join(
            f"{part}={list(getattr(self, part).shape)}" for part in ("train", "val", "test")
        )
        return f"ImageSplits(name={self.name!r}, {shapes}, device={self.device})"


def _user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/metacurriculum``, else ``~/.cache/metacurriculum``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says relative values are invalid and must be ignored.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "metacurriculum"


def resolve_data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Return the folder that data sets are read from.

    Precedence: the ``root`` argument, else the ``METACURRICULUM_DATA``
    environment variable (if set and non-empty), else the per-user default
    ``$XDG_CACHE_HOME/metacurriculum/data`` (``~/.cache/metacurriculum/data``
    when ``XDG_CACHE_HOME`` is unset). The folder need not exist.

    Args:
        root: An explicit data root, or ``None`` to use the environment.

    Returns:
        The data root as an absolute path, with ``~`` expanded.
    """
    if root is None:
        root = os.environ.get(DATA_ENV_VAR) or _user_cache_dir() / "data"
    return Path(root).expanduser().absolute()


def derived_dir(root: Path) -> Path:
    """Return the writable fallback folder for files derived from a read-only ``root``.

    The folder is ``<user cache>/metacurriculum/derived/<hash of root>``, so
    two data roots never share derived files.
    """
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return _user_cache_dir() / "derived" / key


def search_dirs(root: Path) -> tuple[Path, Path]:
    """The folders searched for a data set's files, in order: the root, then its fallback."""
    return root, derived_dir(root)


def is_writable_dir(folder: Path) -> bool:
    """Create ``folder`` if needed and report whether a file can be written in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError:
        return False
    return True


def first_writable_dir(candidates: Iterable[Path], what: str) -> Path:
    """Return the first of ``candidates`` that is (or can be made) a writable folder.

    Raises:
        PermissionError: If none of them is writable.
    """
    candidates = list(candidates)
    for folder in candidates:
        if is_writable_dir(folder):
            return folder
    tried = ", ".join(str(folder) for folder in candidates)
    raise PermissionError(
        f"No writable folder for {what}: tried {tried}. Point {DATA_ENV_VAR} at a writable "
        f"folder, or set XDG_CACHE_HOME to one."
    )


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write a file through ``write(file)`` so that ``path`` is either whole or absent.

    The content goes to a temporary file beside ``path`` that replaces it only
    once complete, so an interrupted run never leaves a truncated file behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


def write_first_writable(
    relative: Path, candidates: Sequence[Path], write: Callable[[BinaryIO], None]
) -> Path | None:
    """Write ``candidate / relative`` atomically for the first candidate folder that allows it.

    Returns:
        The path written, or ``None`` if every candidate refused (a read-only
        or full disk); the caller decides whether that matters.
    """
    for folder in candidates:
        try:
            write_atomically(folder / relative, write)
        except OSError:
            continue
        return folder / relative
    return None


def missing_data_error(dataset: str, looked_at: Iterable[Path], layout: str) -> DataNotFoundError:
    """Build the error for a data set whose files are nowhere to be found.

    Args:
        dataset: The data set's name, e.g. ``"Omniglot"``.
        looked_at: Every path the loader tried.
        layout: The files a data root must hold, relative to the root.
    """
    paths = "\n".join(f"  {path}" for path in looked_at)
    return DataNotFoundError(
        f"{dataset} data not found. Looked at:\n{paths}\n"
        f"To fix: set the {DATA_ENV_VAR} environment variable (or pass root=) to a folder "
        f"holding {layout}, or pass download=True on a machine with internet access."
    )
