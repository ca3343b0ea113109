"""The plots: PNG files from finished runs, also with one seed."""

from __future__ import annotations

import numpy as np
import pytest

from metacurriculum.benchmarks import plot_all, plots, run_benchmark
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


@pytest.mark.parametrize("diverged_seeds", [(0,), (0, 1)], ids=["one-diverged", "all-diverged"])
def test_plots_leave_diverged_runs_out_and_say_how_many(tiny_config, monkeypatch, diverged_seeds):
    config = tiny_config(teachers=("none", "adaptive"), seeds=(0, 1))
    for spec in run_benchmark(config):
        done = spec.folder(config.out) / "done.json"
        if spec.teacher == "adaptive" and spec.seed in diverged_seeds:
            done.write_text(done.read_text().replace('"diverged": false', '"diverged": true'))
    legends = []
    finish = plots._finish

    def capture(fig, axes, path):
        out = finish(fig, axes, path)
        legends.append([t.get_text() for t in fig.legends[0].get_texts()])
        return out

    monkeypatch.setattr(plots, "_finish", capture)
    plot_all(config.out)
    kept = 2 - len(diverged_seeds)
    expected = (
        f"adaptive ({kept} seed{'s' * (kept != 1)}, {len(diverged_seeds)} diverged, not drawn)"
    )
    assert len(legends) == len(PLOTS)
    for labels in legends:
        assert expected in labels and "none (2 seeds)" in labels
