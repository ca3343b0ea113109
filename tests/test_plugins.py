"""Plugins: teachers, families, executors and learners of an installed distribution, found
through its entry points, lazily, with no ``--import``.

The distribution is real as far as ``importlib.metadata`` goes: a module and a
``.dist-info`` folder (``METADATA``, ``entry_points.txt``) in a folder on the path, as
``pip install --target`` leaves them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from metacurriculum.registry import PLUGIN_GROUPS, Registry

MODULE = "mc_plugin_demo"

PLUGIN_CODE = '''
"""A plugin of metacurriculum, installed as a distribution."""
from metacurriculum.benchmarks.executors import InlineExecutor
from metacurriculum.envs.families import ClassesFamily
from metacurriculum.student.learners import MAML
from metacurriculum.teachers import OmegaTeacher


class HalfwayTeacher(OmegaTeacher):
    """The middle of the ω range, every step (a plugin's teacher)."""

    def choose_omega(self, observation, info):
        return (info["omega_min"] + info["omega_max"]) / 2


def classes(config):
    """The classes family, under a plugin's name."""
    return ClassesFamily(config)


class Inline(InlineExecutor):
    """One run after another, in this process (a plugin's executor)."""


class PluginMAML(MAML):
    """MAML under a plugin's name."""
'''

ENTRY_POINTS = f"""
[{PLUGIN_GROUPS["teacher"]}]
plugin-halfway = {MODULE}:HalfwayTeacher
none = {MODULE}:HalfwayTeacher

[{PLUGIN_GROUPS["family"]}]
plugin-classes = {MODULE}:classes

[{PLUGIN_GROUPS["executor"]}]
plugin-inline = {MODULE}:Inline

[{PLUGIN_GROUPS["learner"]}]
plugin-maml = {MODULE}:PluginMAML

[metacurriculum.test-broken]
broken = {MODULE}_missing:Nothing
"""


@pytest.fixture
def plugin_site(tmp_path, monkeypatch) -> Path:
    """A folder holding the installed distribution ``mc-plugin-demo``, on ``sys.path``."""
    site = tmp_path / "site"
    (site / MODULE).mkdir(parents=True)
    (site / MODULE / "__init__.py").write_text(PLUGIN_CODE)
    info = site / "mc_plugin_demo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mc-plugin-demo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop(MODULE, None)


def test_a_registry_reads_its_group_on_first_use_and_imports_a_plugin_on_lookup(plugin_site):
    registry: Registry = Registry("teacher", group=PLUGIN_GROUPS["teacher"])
    registry.register("none", dict)
    assert not registry._discovered  # registering reads no entry point
    with pytest.warns(UserWarning, match=r"'none' of the entry point none = .*is taken by"):
        names = registry.names()
    assert "plugin-halfway" in names
    assert MODULE not in sys.modules  # listed, not imported
    assert registry.lookup("none") is dict  # the package's name wins over the plugin's
    plugin = registry.plugin("plugin-halfway")
    assert plugin is not None and "mc-plugin-demo 0.1" in repr(plugin)
    teacher_class = registry.lookup("plugin-halfway")
    assert teacher_class.__name__ == "HalfwayTeacher" and MODULE in sys.modules
    registry.discover(again=True)  # reading again changes nothing, warns nothing new
    assert registry.lookup("plugin-halfway") is teacher_class


def test_a_plugin_that_fails_to_load_is_named(plugin_site):
    registry: Registry = Registry("thing", group="metacurriculum.test-broken")
    assert "broken" in registry
    with pytest.raises(ImportError, match=r"plugin entry point broken = .*mc-plugin-demo 0.1"):
        registry.lookup("broken")


def test_the_package_registries_find_every_kind_of_plugin(plugin_site):
    from metacurriculum.benchmarks.executors import EXECUTORS
    from metacurriculum.envs.families import FAMILIES
    from metacurriculum.student.settings import LEARNERS
    from metacurriculum.teachers import TEACHERS

    registries = (TEACHERS, FAMILIES, EXECUTORS, LEARNERS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the plugin's 'none' is refused, with a warning
        for registry in registries:
            registry.discover(again=True)
    try:
        assert TEACHERS.lookup("plugin-halfway").__name__ == "HalfwayTeacher"
        assert TEACHERS.lookup("none").__module__ == "metacurriculum.teachers.baselines"
        assert FAMILIES.lookup("plugin-classes").__name__ == "classes"
        assert EXECUTORS.lookup("plugin-inline").__name__ == "Inline"
        spec = LEARNERS.lookup("plugin-maml")  # a Learner class becomes a learner's spec
        assert spec.implementation.__name__ == "PluginMAML"
        assert spec.summary == "MAML under a plugin's name."
    finally:
        names = ("plugin-halfway", "plugin-classes", "plugin-inline", "plugin-maml")
        for registry, name in zip(registries, names, strict=True):
            registry.pop(name, None)


def _run(args: list[str], site: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONWARNINGS": "ignore"}
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_import_metacurriculum_reads_no_plugin_and_loads_no_torch(plugin_site, tmp_path):
    code = textwrap.dedent(
        f"""
        import sys
        import metacurriculum
        assert "torch" not in sys.modules and {MODULE!r} not in sys.modules
        import metacurriculum.benchmarks, metacurriculum.cli
        from metacurriculum.benchmarks.executors import EXECUTORS
        from metacurriculum.envs.families import FAMILIES
        from metacurriculum.student.settings import LEARNERS
        from metacurriculum.teachers import TEACHERS
        assert not any(r._discovered for r in (TEACHERS, FAMILIES, EXECUTORS, LEARNERS))
        assert "plugin-halfway" in TEACHERS and {MODULE!r} not in sys.modules
        print("ok")
        """
    )
    out = _run([sys.executable, "-c", code], plugin_site, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_an_installed_plugin_is_listed_and_benchmarked_without_import(plugin_site, tmp_path):
    command = [sys.executable, "-m", "metacurriculum.cli"]
    listed = _run([*command, "teachers"], plugin_site, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "plugin-halfway" in listed.stdout and "a plugin's teacher" in listed.stdout
    learners = _run([*command, "learners"], plugin_site, tmp_path)
    assert "plugin-maml: MAML under a plugin's name." in learners.stdout
    families = _run([*command, "families"], plugin_site, tmp_path)
    assert "plugin-classes" in families.stdout

    tiny = ["--env", "MetaCurriculum-Analytic-v0", "--eval-tasks", "4", "--seeds", "1"]
    tiny += ["--no-plots", "--env-kwargs", "budget=16,n_max=5,family=plugin-classes"]
    teachers = ["--teachers", "plugin-halfway,none", "--executor", "plugin-inline"]
    bench = _run(
        [*command, "bench", *tiny, *teachers, "--out", "runs"],
        plugin_site,
        tmp_path,
    )
    assert bench.returncode == 0, bench.stderr
    done = tmp_path / "runs" / "MetaCurriculum-Analytic-v0" / "plugin-halfway" / "seed_0"
    assert (done / "done.json").is_file()
    steps = (done / "steps.jsonl").read_text().splitlines()
    assert '"omega": 3.5' in steps[-1]  # halfway between 2 and 5

    # Spawned workers find the plugin too.
    parallel = ["--teachers", "plugin-halfway", "--seeds", "2", "--workers", "2", "--threads", "1"]
    workers = _run(
        [*command, "bench", *tiny, *parallel, "--out", "runs2"],
        plugin_site,
        tmp_path,
    )
    assert workers.returncode == 0, workers.stderr
    assert len(list((tmp_path / "runs2").glob("*/plugin-halfway/seed_*/done.json"))) == 2
