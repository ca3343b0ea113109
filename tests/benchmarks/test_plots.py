"""The plots: PNG files from finished runs, also with one seed."""

from __future__ import annotations

import numpy as np
import pytest

from metacurriculum.benchmarks import plot_all, run_benchmark
from metacurriculum.benchmarks.plots import PLOTS, smooth

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("seeds", [(0, 1, 2), (0,)], ids=["three-seeds", "one-seed"])
def test_plot_all_writes_every_png(tiny_config, tmp_path, seeds):
    config = tiny_config(seeds=seeds, env_kwargs={"budget": 400, "n_max": 5})
    run_benchmark(config)
    paths = plot_all(config.out, tmp_path / "pngs")
    assert sorted(p.name for p in paths) == sorted(PLOTS)
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000


def test_smooth_keeps_length_and_constants():
    values = [1.0, 1.0, 1.0, 5.0, 1.0, 1.0, 1.0]
    smoothed = smooth(np.array(values), 3)
    assert smoothed.shape == (7,)
    np.testing.assert_allclose(smoothed[[0, 1, 5, 6]], 1.0)
    np.testing.assert_allclose(smoothed[3], 7 / 3)
    np.testing.assert_array_equal(smooth(np.array(values), 1), values)
