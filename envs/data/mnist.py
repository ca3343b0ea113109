"""MNIST from torchvision's raw IDX files, as class-indexed images split by image.

torchvision's ``MNIST`` class refuses to load when the training files are
missing, so the IDX files are parsed here (:func:`read_idx`); torchvision is
used only to download.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch

from .core import (
    CorruptDataError,
    DataSplitWarning,
    ImageSplits,
    first_writable_dir,
    missing_data_error,
    resolve_data_root,
    search_dirs,
)

RAW = Path("MNIST") / "raw"
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "t10k": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
NUM_CLASSES = 10
_SPLIT_SEED = 0
_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_LAYOUT = "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]"


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzip-compressed if its name ends in ``.gz``.

    Args:
        path: The file to read.

    Returns:
        The array, with the shape and dtype its header declares (read-only).

    Raises:
        CorruptDataError: If the file is not a well-formed IDX file.
    """
    path = Path(path)
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as file:
            data = file.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise CorruptDataError(f"Cannot decompress {path}: {error}. Download it again.") from error
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in _IDX_DTYPES:
        raise CorruptDataError(
            f"{path} is not an IDX file (it starts with {data[:4].hex()!r}, expected 0000 then a "
            "type code and a rank); download it again."
        )
    header = 4 + 4 * data[3]
    if len(data) < header:
        raise CorruptDataError(f"{path} is truncated inside its IDX header; download it again.")
    dims = struct.unpack(f">{data[3]}I", data[4:header])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    if len(data) != header + math.prod(dims) * dtype.itemsize:
        raise CorruptDataError(
            f"{path} holds {len(data) - header} bytes of data but its header promises shape "
            f"{list(dims)} of {dtype}; download it again."
        )
    return np.frombuffer(data, dtype, math.prod(dims), header).reshape(dims)


def load_mnist(
    root: str | os.PathLike[str] | None = None,
    *,
    download: bool = False,
    device: str | torch.device = "cpu",
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
) -> ImageSplits:
    """Load MNIST as ten digit classes of 28x28 images, split by image.

    Each class's images are shuffled with a fixed seed (the official files
    are ordered by source: the test file's first half is cleaner than its
    second), then truncated to the smallest class's count, so every class
    has the same number of samples. Pixels are scaled to [0, 1]; ink is high.

    With both official files, train and val come from the training file
    (val: the last ``val_fraction`` of each class's shuffled images) and test
    from the test file. With only one of them (as on machines that hold just
    the 10,000 test images), each class's images are cut into disjoint
    train, val and test parts of ``1 - val_fraction - test_fraction``,
    ``val_fraction`` and ``test_fraction``, and a :class:`DataSplitWarning`
    says so. Either way no image is in two parts.

    Args:
        root: The data root; see :func:`~metacurriculum.envs.data.resolve_data_root`.
            Files are read from ``<root>/MNIST/raw/``, uncompressed or ``.gz``.
        download: Download through ``torchvision.datasets.MNIST`` if either file is missing.
        device: Where the image tensors are put.
        val_fraction: The share of each class's images held out for meta-validation.
        test_fraction: The share held out for meta-testing, used only when a
            single official file is present.

    Returns:
        Splits of shape ``[10, samples, 1, 28, 28]``, class ``k`` being digit ``k``.

    Raises:
        ValueError: If the fractions are out of range or leave a part empty.
        DataNotFoundError: If neither file is found and ``download`` is False.
        CorruptDataError: If a file is unreadable or holds something other than MNIST.
    """
    if not (0.0 < val_fraction < 1.0 and 0.0 < test_fraction < 1.0):
        raise ValueError(
            f"val_fraction and test_fraction must be in (0, 1), got {val_fraction!r} and "
            f"{test_fraction!r}."
        )
    root = resolve_data_root(root)
    found = {split: _read_split(root, split) for split in FILES}
    if download and None in found.values():
        _download(first_writable_dir(search_dirs(root), "the MNIST download"))
        found = {split: _read_split(root, split) for split in FILES}
    present = {split: value for split, value in found.items() if value is not None}
    if not present:
        raise missing_data_error(
            "MNIST", [folder / _LAYOUT for folder in search_dirs(root)], _LAYOUT
        )

    if len(present) == 2:
        train_file, train_source = present["train"]
        test, test_source = present["t10k"]
        train, val = _cut(train_file, [val_fraction])
        notes = (
            f"MNIST, split by image: train and val (last {val_fraction:g} of each class) from "
            f"{train_source}, test from {test_source}; classes shuffled with seed {_SPLIT_SEED} "
            "and truncated to equal counts."
        )
    else:
        by_class, source = next(iter(present.values()))
        train, val, test = _cut(by_class, [val_fraction, test_fraction])
        notes = (
            f"MNIST, split by image from the single file {source}: each class cut into train, "
            f"val ({val_fraction:g}) and test ({test_fraction:g}) after a shuffle with seed "
            f"{_SPLIT_SEED}; the official train/test protocol was not available."
        )
        warnings.warn(
            f"Only one MNIST file was found ({source}); meta-train, meta-validation and "
            "meta-test images are disjoint parts of it, not the official train/test split. "
            "Pass download=True where there is internet to get both.",
            DataSplitWarning,
            stacklevel=2,
        )
    parts = (_to_tensor(images, device) for images in (train, val, test))
    return ImageSplits("mnist", *parts, notes)


def _read_split(root: Path, split: str) -> tuple[np.ndarray, Path] | None:
    """Return one official file as class-indexed uint8 ``[10, n, 28, 28]`` and its path, or None."""
    paths = [_find(root, name) for name in FILES[split]]
    if None in paths:
        return None
    images_path, labels_path = paths
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise CorruptDataError(
            f"{images_path} must hold uint8 [N, 28, 28] images, got {images.dtype} {list(images.shape)}."
        )
    if labels.shape != images.shape[:1] or not np.isin(labels, np.arange(NUM_CLASSES)).all():
        raise CorruptDataError(
            f"{labels_path} must hold {images.shape[0]} labels in 0-9 to match {images_path}, "
            f"got {labels.dtype} {list(labels.shape)} with values {np.unique(labels)[:12]}."
        )
    return _by_class(images, labels, labels_path), images_path


def _find(root: Path, name: str) -> Path | None:
    """The first of ``<folder>/MNIST/raw/<name>[.gz]`` that exists, uncompressed first."""
    for folder in search_dirs(root):
        for path in (folder / RAW / name, folder / RAW / f"{name}.gz"):
            if path.is_file():
                return path
    return None


def _by_class(images: np.ndarray, labels: np.ndarray, labels_path: Path) -> np.ndarray:
    """Group images by label into ``[10, n, 28, 28]``: shuffled per class, equal counts."""
    rng = np.random.default_rng(_SPLIT_SEED)
    per_class = [rng.permutation(np.flatnonzero(labels == digit)) for digit in range(NUM_CLASSES)]
    count = min(len(indices) for indices in per_class)
    if count == 0:
        raise CorruptDataError(f"{labels_path} lacks some of the digits 0-9.")
    return images[np.stack([indices[:count] for indices in per_class])]


def _cut(by_class: np.ndarray, fractions: list[float]) -> list[np.ndarray]:
    """Cut each class's samples into a leading remainder and trailing parts of ``fractions``."""
    total = by_class.shape[1]
    sizes = [round(total * fraction) for fraction in fractions]
    bounds = np.cumsum([total - sum(sizes), *sizes])
    if min(total - sum(sizes), *sizes) < 1:
        raise ValueError(
            f"Fractions {fractions} of {total} images per class give part sizes "
            f"{[total - sum(sizes), *sizes]}; choose fractions that leave every part non-empty."
        )
    return np.split(by_class, bounds[:-1], axis=1)


def _to_tensor(images: np.ndarray, device: str | torch.device) -> torch.Tensor:
    """uint8 ``[10, n, 28, 28]`` to float32 ``[10, n, 1, 28, 28]`` in [0, 1] on ``device``."""
    moved = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return (moved.float() / 255.0).unsqueeze(2)


def _download(folder: Path) -> None:
    try:
        from torchvision.datasets import MNIST
    except ImportError as error:
        raise ImportError("Downloading MNIST needs torchvision: pip install torchvision") from error
    MNIST(root=str(folder), train=True, download=True)  # fetches both official files
