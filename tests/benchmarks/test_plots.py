"""The plots: PNG files from finished runs (also with one seed), drawn as the runs were."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from test_stats import fake_run  # on sys.path through conftest.py

from metacurriculum.benchmarks import plot_all, plots, run_benchmark, stats, tables
from metacurriculum.benchmarks.plots import PLOTS, smooth

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def figures(monkeypatch):
    """The figures :func:`plot_all` draws, by file name, captured as they are saved."""
    captured = {}
    save = plots._save

    def capture(fig, path):
        fig.canvas.draw()
        captured[path.name] = fig
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", capture)
    return captured


def texts(fig) -> list[str]:
    """Every label a reader sees: legends, titles, tick labels."""
    out = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    for ax in fig.axes:
        out += [*ax.get_title().splitlines(), *(t.get_text() for t in ax.get_yticklabels())]
    return out


@pytest.mark.parametrize("seeds", [(0, 1, 2), (0,)], ids=["three-seeds", "one-seed"])
def test_plot_all_writes_every_png(tiny_config, tmp_path, seeds):
    config = tiny_config(seeds=seeds, env_kwargs={"budget": 400, "n_max": 5})
    run_benchmark(config)
    paths = plot_all(config.out, tmp_path / "pngs")
    assert sorted(p.name for p in paths) == sorted(PLOTS)
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    assert not list((tmp_path / "pngs").glob(".*.tmp"))


def test_smooth_keeps_length_and_constants_and_does_not_pad_the_ends():
    values = [1.0, 1.0, 1.0, 5.0, 1.0, 1.0, 1.0]
    smoothed = smooth(np.array(values), 3)
    assert smoothed.shape == (7,)
    np.testing.assert_allclose(smoothed[[0, 1, 5, 6]], 1.0)
    np.testing.assert_allclose(smoothed[3], 7 / 3)
    np.testing.assert_array_equal(smooth(np.array(values), 1), values)
    step = smooth(np.array([2.0, 20.0, 20.0, 20.0, 20.0]), 4)  # the window shrinks at the ends
    np.testing.assert_allclose(step, [11.0, 14.0, 15.5, 20.0, 20.0])


@pytest.mark.parametrize("diverged_seeds", [(0,), (0, 1)], ids=["one-diverged", "all-diverged"])
def test_plots_leave_diverged_runs_out_and_say_how_many(tiny_config, figures, diverged_seeds):
    config = tiny_config(teachers=("none", "adaptive"), seeds=(0, 1))
    for spec in run_benchmark(config):
        done = spec.folder(config.out) / "done.json"
        if spec.teacher == "adaptive" and spec.seed in diverged_seeds:
            done.write_text(done.read_text().replace('"diverged": false', '"diverged": true'))
    plot_all(config.out)
    kept = 2 - len(diverged_seeds)
    expected = (
        f"adaptive ({kept} seed{'s' * (kept != 1)}, {len(diverged_seeds)} diverged, not drawn)"
    )
    assert sorted(figures) == sorted(PLOTS)
    for name, fig in figures.items():
        labels = texts(fig)
        assert expected in labels and "none (2 seeds)" in labels, name


def test_legends_fit_the_figure_with_long_labels(tiny_config, figures, tmp_path):
    """Long teacher names with a divergence note: no legend runs past either side."""
    names = ("adaptive-paper-with-a-long-name", "tscl-sampling-with-a-long-name")
    config = tiny_config(teachers=("none", "adaptive", "random", "static", "linear"), seeds=(0, 1))
    for spec in run_benchmark(config):
        done = spec.folder(config.out) / "done.json"
        if spec.seed == 0 and spec.teacher != "none":
            done.write_text(done.read_text().replace('"diverged": false', '"diverged": true'))
    runs = stats.load_runs(config.out)
    for run in runs:  # renamed as a user's teachers may be
        run.config["teacher"] = {"adaptive": names[0], "random": names[1]}.get(
            run.teacher, run.teacher
        )
    for name, plot in PLOTS.items():
        plot(runs, tmp_path / name)
    legends = 0
    for name, fig in figures.items():
        width, height = fig.bbox.width, fig.bbox.height
        for legend in fig.legends:
            box = legend.get_window_extent()
            legends += 1
            assert box.x0 >= 0 and box.x1 <= width and box.y0 >= 0 and box.y1 <= height, name
            assert f"{names[0]} (1 seed, 1 diverged, not drawn)" in texts(fig)
    assert legends == 4  # adaptation, sample efficiency, compute, training losses


def test_omega_is_drawn_as_the_teacher_set_it(tiny_config, figures):
    """'none' sits at n_max from its first step: no ramp from the value at reset."""
    config = tiny_config(teachers=("none", "linear"), seeds=(0, 1))
    run_benchmark(config)
    plot_all(config.out)
    none_panel = next(ax for ax in figures["omega.png"].axes if "none (2 seeds)" in ax.get_title())
    for line in none_panel.get_lines():
        np.testing.assert_array_equal(line.get_ydata(), 5.0)
        assert line.get_xdata()[0] == 0


def test_coinciding_curves_stay_visible(tiny_config, figures):
    """Two teachers with the same curves: Figure 1 draws them side by side, the training
    curves with their own line style and markers at other steps."""
    config = tiny_config(teachers=("none", "linear", "reverse"), seeds=(0,))
    run_benchmark(config)
    plot_all(config.out)
    adaptation = figures["adaptation.png"].axes[0]
    starts = {line.get_label(): line.get_xdata()[0] for line in adaptation.get_lines()}
    assert len(set(starts.values())) == 3
    training = figures["training_losses.png"].axes[0]
    lines = [line for line in training.get_lines() if line.get_label() != "_nolegend_"]
    styles = {
        (str(line.get_linestyle()), line.get_marker(), str(line.get_markevery())) for line in lines
    }
    assert len(styles) == len(lines) == 3


def test_the_final_result_is_drawn_from_runs_csv_alone(tmp_path, figures, caplog):
    runs = [
        fake_run(t, s, 1.0 + s / 10 + (t == "none")) for t in ("none", "static") for s in range(3)
    ]
    runs += [fake_run("random", s, 1.5 + s / 20) for s in range(3)]
    tables.write_results(stats.summarize(runs), runs, tmp_path)
    paths = plot_all(tmp_path / "runs.csv")
    assert [p.name for p in paths] == ["final.png"] and paths[0].parent == tmp_path / "plots"
    assert "adaptation.png" in caplog.text and "need the run folders" in caplog.text
    loss = figures["final.png"].axes[0]
    labels = [t.get_text() for t in loss.get_yticklabels()]
    assert labels == ["static (3 seeds)", "random (3 seeds)", "none (3 seeds)"]  # by mean loss
    assert [t.get_fontweight() for t in loss.get_yticklabels()][-1] == "bold"


FILL_THE_DISK = """
import resource, signal, sys
from metacurriculum.benchmarks import plot_all
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
try:
    plot_all(sys.argv[1])
except OSError:
    sys.exit(3)
"""


def test_a_plot_survives_a_full_disk(tmp_path):
    """A real process whose writes fail past 4 KiB: the previous PNG stays whole."""
    runs = [
        fake_run(t, s, 1.0 + s / 10 + (t == "none")) for t in ("none", "static") for s in range(3)
    ]
    tables.write_results(stats.summarize(runs), runs, tmp_path)
    previous = plot_all(tmp_path / "runs.csv")[0].read_bytes()
    done = subprocess.run(
        [sys.executable, "-c", FILL_THE_DISK, str(tmp_path / "runs.csv")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 3, done.stderr
    assert (tmp_path / "plots" / "final.png").read_bytes() == previous
    assert [p.name for p in (tmp_path / "plots").iterdir()] == ["final.png"]
