"""The family-difficulty measurement: every parameter swept on unseen tasks, files written."""

import json

from metacurriculum.benchmarks.experiments import family_difficulty


def test_every_parameter_is_swept_on_the_same_tasks(tmp_path):
    args = ["--seeds", "0", "--meta-steps", "2", "--points", "3", "--tasks", "3"]
    args += ["--env-kwargs", "hidden=4", "depth=2", "q_query=2", "--out", str(tmp_path)]
    assert family_difficulty.main(args) == 0
    rows = json.loads((tmp_path / "difficulty.json").read_text())["rows"]
    swept = [(r["parameter"], r["value"]) for r in rows if r["parameter"] != "hardest corner"]
    # classes 2, 3.5 -> 4 (integers once), 5; rotation and noise at 3 points each
    assert swept == [
        ("classes", 2.0),
        ("classes", 4.0),
        ("classes", 5.0),
        ("rotation", 0.0),
        ("rotation", 30.0),
        ("rotation", 60.0),
        ("noise", 0.0),
        ("noise", 0.25),
        ("noise", 0.5),
    ]
    assert rows[-1]["omega"] == [5.0, 60.0, 0.5]
    # The easiest end of every sweep is the same point on the same tasks: the same numbers.
    easiest = [r for r in rows if r["omega"] == [2.0, 0.0, 0.0]]
    assert len(easiest) == 3 and len({r["loss"] for r in easiest}) == 1
    assert "| hardest corner | all hardest |" in (tmp_path / "difficulty.md").read_text()
