"""Fixtures for the envs tests: the real data root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REQUIRED = (
    "omniglot/images_background.npz",
    "omniglot/images_evaluation.npz",
    "omniglot/images_background_small1.zip",
    "MNIST/raw/t10k-images-idx3-ubyte.gz",
    "MNIST/raw/t10k-labels-idx1-ubyte.gz",
)


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real data root named by ``METACURRICULUM_DATA``; fails (never skips) without it."""
    value = os.environ.get("METACURRICULUM_DATA", "")
    if not value:
        pytest.fail(
            "METACURRICULUM_DATA is not set. Point it at the shared data folder, e.g. "
            "METACURRICULUM_DATA=../shared/data python -m pytest",
            pytrace=False,
        )
    root = Path(value).expanduser().absolute()
    missing = [name for name in REQUIRED if not (root / name).is_file()]
    if missing:
        pytest.fail(
            f"METACURRICULUM_DATA={value!r} ({root}) lacks {missing}; point it at the shared "
            "data folder (see ../shared/data/README.md).",
            pytrace=False,
        )
    return root
