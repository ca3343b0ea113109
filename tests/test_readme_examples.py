"""The README's own-teacher example runs as written: its module, its command, and the error
that says what is missing without ``--import``."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def readme_block(language: str, contains: str) -> str:
    """The README's first ``language`` code block that contains ``contains``."""
    for block in re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S):
        if contains in block:
            return block
    raise AssertionError(f"no {language} block with {contains!r} in the README")


def metacurriculum_command() -> list[str]:
    """The console script beside this Python (as a user runs it), else ``python -m``."""
    script = Path(sys.executable).parent / "metacurriculum"
    return [str(script)] if script.exists() else [sys.executable, "-m", "metacurriculum.cli"]


def test_the_own_teacher_example_runs_as_written(tmp_path):
    module = readme_block("python", "# halfway.py")
    (tmp_path / "halfway.py").write_text(module)
    command = readme_block("bash", "--import halfway").replace("\\\n", " ").strip()
    argv = shlex.split(command)
    assert argv[0] == "metacurriculum"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    ran = subprocess.run(
        [*metacurriculum_command(), *argv[1:]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ran.returncode == 0, ran.stderr
    runs = tmp_path / "runs" / "halfway" / "MetaCurriculum-AnalyticEasyFirst-v0"
    assert sorted(p.name for p in runs.iterdir() if p.is_dir()) == ["halfway", "linear", "none"]
    assert (runs / "halfway" / "seed_1" / "done.json").is_file()

    without = [a for a in argv[1:] if a not in ("--import", "halfway")]
    missing = subprocess.run(
        [*metacurriculum_command(), *without, "--out", "other"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert missing.returncode == 1
    assert "unknown teacher 'halfway'" in missing.stderr
    assert "needs --import MODULE" in missing.stderr and "metacurriculum.teachers" in missing.stderr
