"""results.md's cells at few seeds, and the results files written atomically."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from test_stats import fake_run  # on sys.path through conftest.py

from metacurriculum.benchmarks import stats, tables


def table_of(text: str, heading: str) -> dict[str, list[str]]:
    """The rows of the markdown table under ``heading``: teacher -> cells."""
    lines = text[text.index(heading) :].splitlines()[2:]
    rows = {}
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


LOSS = "**Final loss on the unseen tasks"


def test_iqm_and_wilcoxon_are_shown_only_where_they_mean_something(tmp_path):
    base = [2.0, 2.2, 2.1, 2.3, 2.05, 2.4]
    runs = [fake_run("none", s, v) for s, v in enumerate(base)]
    runs += [fake_run("six", s, v - 0.1 - s / 50) for s, v in enumerate(base)]
    runs += [fake_run("four", s, v - 0.2 + s / 40) for s, v in enumerate(base[:4])]
    runs += [fake_run("three", s, v + 0.1 - s / 30) for s, v in enumerate(base[:3])]
    tables.write_results(stats.summarize(runs), runs, tmp_path)
    text = (tmp_path / "results.md").read_text()
    rows = table_of(text, LOSS)
    # seeds, diverged, mean, IQM, pairs, Δ, P(better), p t (Holm), p Wilcoxon (Holm)
    assert rows["three"][3] == "—" and rows["four"][3] != "—"
    assert rows["four"][8] == "—" and rows["six"][8] not in ("—", "no variance")
    assert rows["three"][7] != "—"
    assert 'IQM "—": fewer than 4 seeds' in text
    assert 'Wilcoxon "—": fewer than 6 pairs' in text and "0.0625 at 5" in text


def test_a_constant_difference_is_reported_as_such_not_as_a_tiny_p(tmp_path):
    """A deterministic teacher 0.0004 above the baseline on every seed (the old table said
    p < 0.001)."""
    base = [2.0, 2.2, 2.1]
    runs = [fake_run("none", s, v) for s, v in enumerate(base)]
    runs += [fake_run("same-but-worse", s, v + 0.0004) for s, v in enumerate(base)]
    tables.write_results(stats.summarize(runs), runs, tmp_path)
    text = (tmp_path / "results.md").read_text()
    row = table_of(text, LOSS)["same-but-worse"]
    assert row[5] == "0.0004 [0.0004, 0.0004]"
    assert row[7:] == ["no variance", "no variance"]
    assert "<0.001" not in text and '"no variance": the teacher differs' in text


def test_every_p_value_of_a_table_is_holm_adjusted_and_the_table_says_so(tmp_path):
    base = [2.0, 2.2, 2.1, 2.3]
    runs = [fake_run("none", s, v) for s, v in enumerate(base)]
    runs += [fake_run("a", s, v - 0.1 - s / 30) for s, v in enumerate(base)]
    runs += [fake_run("b", s, v + 0.05 + s / 25) for s, v in enumerate(base)]
    rows = stats.summarize(runs)
    tables.write_results(rows, runs, tmp_path)
    text = (tmp_path / "results.md").read_text()
    cells = table_of(text, LOSS)
    for row in rows:
        if row.teacher != "none":
            assert cells[row.teacher][7] == tables._p(row.metrics["loss"].versus.paired_t_holm)
    assert "**Holm-adjusted**" in text


def test_report_reads_a_runs_csv_back_and_leaves_it_as_it_is(tmp_path):
    runs = [
        fake_run(t, s, 1.0 + s / 10 + (t == "none")) for t in ("none", "static") for s in range(3)
    ]
    rows = stats.summarize(runs)
    tables.write_results(rows, runs, tmp_path)
    runs_csv = (tmp_path / "runs.csv").read_bytes()
    original = tables.markdown(rows, runs)
    (tmp_path / "results.md").unlink()
    text = tables.report(tmp_path / "runs.csv")
    assert (tmp_path / "runs.csv").read_bytes() == runs_csv
    assert (tmp_path / "results.md").read_text() == text
    assert "Read back from runs.csv" in text
    assert table_of(text, LOSS) == table_of(original, LOSS)


FILL_THE_DISK = """
import resource, signal, sys
from metacurriculum.benchmarks import tables
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), resource.RLIM_INFINITY))
try:
    tables.report(sys.argv[1])
except OSError as error:
    print(error.errno)
    sys.exit(3)
"""


@pytest.mark.parametrize("limit", [0, 1500], ids=["nothing-fits", "part-fits"])
def test_results_files_survive_a_full_disk(tmp_path, limit):
    """A real process whose writes fail past ``limit`` bytes (RLIMIT_FSIZE, as a full disk
    fails them): the previous results files stay whole, no temporary file is left."""
    runs = [
        fake_run(t, s, 1.0 + s / 10 + (t == "none")) for t in ("none", "static") for s in range(3)
    ]
    tables.write_results(stats.summarize(runs), runs, tmp_path)
    (tmp_path / "results.md").write_text("the previous results\n")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    script = textwrap.dedent(FILL_THE_DISK)
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "runs.csv"), str(limit)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 3, done.stderr
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
