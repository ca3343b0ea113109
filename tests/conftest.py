"""Session-wide test settings."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # `from tiny_settings import TINY` anywhere


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Run torch on one thread: the tests' tiny networks gain nothing from more, and on a
    busy 2-core machine two threads spin-waiting on every small op ran ~100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
