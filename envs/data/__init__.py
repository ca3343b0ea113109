"""Data sets as class-indexed image tensors, loaded once per process.

A data set is an :class:`ImageSplits`: meta-training, meta-validation and
meta-testing image tensors ``[classes, samples, 1, 28, 28]`` (float32, ink =
1.0) with disjoint classes (Omniglot) or disjoint images (MNIST). Load one by
name with :func:`load_dataset`, which shares one copy per process::

    from metacurriculum.envs.data import load_dataset

    splits = load_dataset("omniglot", device="cuda")
    splits.train.shape  # [819, 20, 1, 28, 28]

Files are read from the data root (:func:`resolve_data_root`): the ``root``
argument, else ``$METACURRICULUM_DATA``, else ``~/.cache/metacurriculum/data``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable

import torch

from metacurriculum.registry import PLUGIN_GROUPS, Registry

from .core import (
    DATA_ENV_VAR,
    CorruptDataError,
    DataCacheWarning,
    DataNotFoundError,
    DataSplitWarning,
    ImageSplits,
    resolve_data_root,
)
from .mnist import load_mnist, read_idx
from .omniglot import PackedOmniglot, load_omniglot, pack_omniglot_pngs

__all__ = [
    "DATASETS",
    "DATA_ENV_VAR",
    "CorruptDataError",
    "DataCacheWarning",
    "DataNotFoundError",
    "DataSplitWarning",
    "ImageSplits",
    "PackedOmniglot",
    "clear_dataset_cache",
    "load_dataset",
    "load_mnist",
    "load_omniglot",
    "pack_omniglot_pngs",
    "read_idx",
    "register_dataset",
    "resolve_data_root",
]

DatasetLoader = Callable[..., ImageSplits]
"""A loader: ``loader(root, *, download, device, **kwargs) -> ImageSplits``."""

DATASETS: Registry[DatasetLoader] = Registry(
    "data set",
    hint="add yours with register_dataset(name, loader), or an entry point in the group "
    f"{PLUGIN_GROUPS['data set']!r} of an installed package",
    setting="dataset=",
    group=PLUGIN_GROUPS["data set"],
)
"""The data sets :func:`load_dataset` knows, by name."""
DATASETS.register("omniglot", load_omniglot)
DATASETS.register("mnist", load_mnist)

_cache: dict[tuple[Hashable, ...], ImageSplits] = {}
_cache_lock = threading.Lock()


def register_dataset(name: str, loader: DatasetLoader) -> None:
    """Make ``loader`` available to :func:`load_dataset` as ``name``.

    Args:
        name: The registry name; must not be taken already.
        loader: Called as ``loader(root, download=..., device=..., **kwargs)``
            and returning an :class:`ImageSplits`.

    Raises:
        ValueError: If ``name`` is already registered to another loader.
    """
    DATASETS.register(name, loader)


def load_dataset(
    name: str,
    root: str | os.PathLike[str] | None = None,
    *,
    download: bool = False,
    device: str | torch.device = "cpu",
    **kwargs: Hashable,
) -> ImageSplits:
    """Load a registered data set, or return the copy this process already loaded.

    Calls with the same name, resolved root, device and keyword arguments
    share one :class:`ImageSplits`, so many environments in one process hold
    the images once. The tensors are shared: never modify them in place
    (clone first). ``download`` is not part of the key: it only matters when
    the files are missing.

    Args:
        name: A key of :data:`DATASETS`, e.g. ``"omniglot"`` or ``"mnist"``.
        root: The data root; see :func:`resolve_data_root`.
        download: Let the loader download the data if no files are found.
        device: Where the image tensors are put.
        **kwargs: Passed to the loader, e.g. ``val_fraction=0.2``.

    Returns:
        The data set's splits.

    Raises:
        ValueError: If ``name`` is not registered.
    """
    loader = DATASETS.lookup(name)  # an unknown name: ValueError listing the known ones
    root = resolve_data_root(root)
    device = _canonical_device(device)
    key = (name, str(root), str(device), tuple(sorted(kwargs.items())))
    with _cache_lock:
        if key not in _cache:
            _cache[key] = loader(root, download=download, device=device, **kwargs)
        return _cache[key]


def clear_dataset_cache() -> None:
    """Forget every data set :func:`load_dataset` has loaded (frees their memory once unused)."""
    with _cache_lock:
        _cache.clear()


def _canonical_device(device: str | torch.device) -> torch.device:
    """``"cuda"`` and ``"cuda:0"`` name one device; give them one cache key."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and torch.cuda.is_available():
        device = torch.device("cuda", torch.cuda.current_device())
    return device
