"""The one registry helper: lazy entries, clear errors, the dict protocol, every registry on it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from metacurriculum.registry import Registry


def test_registering_looking_up_and_the_dict_protocol():
    registry: Registry = Registry("widget", hint="add yours with register_widget")
    registry.register("a", dict)

    @registry.register("b")
    class B:
        pass

    assert registry.lookup("b") is B and registry["a"] is dict
    assert "a" in registry and "c" not in registry and len(registry) == 2
    assert registry.names() == ["a", "b"] and sorted(registry) == ["a", "b"]
    registry.register("a", dict)  # the same factory again: harmless
    with pytest.raises(ValueError, match=r"widget name 'a' is taken by <class 'list'>|is taken"):
        registry.register("a", list)
    with pytest.raises(ValueError, match="non-empty string"):
        registry.register("", dict)
    del registry["a"]
    assert registry.names() == ["b"]


def test_an_unknown_name_lists_the_names_the_closest_and_the_hint():
    registry: Registry = Registry("family", setting="family=", plural="families", hint="add one")
    registry.register("classes", dict)
    message = registry.unknown("clases")
    assert message == (
        "family='clases' is unknown. Did you mean 'classes'? Registered families: classes; add one."
    )
    with pytest.raises(ValueError, match="Did you mean 'classes'"):
        registry.lookup("clases")
    with pytest.raises(KeyError):
        registry["clases"]


def test_a_string_entry_is_imported_on_first_lookup_only():
    code = (
        "import sys\n"
        "from metacurriculum.registry import Registry\n"
        "r = Registry('thing')\n"
        "r.register('colorsys', 'colorsys:rgb_to_hsv')\n"
        "assert 'colorsys' in r and r.names() == ['colorsys']\n"
        "print('colorsys' in sys.modules)\n"
        "print(r.lookup('colorsys')(0, 0, 0))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["False", "(0.0, 0.0, 0)"]


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("metacurriculum.teachers.base", "TEACHERS"),
        ("metacurriculum.envs.families", "FAMILIES"),
        ("metacurriculum.benchmarks.executors", "EXECUTORS"),
        ("metacurriculum.student.settings", "LEARNERS"),
        ("metacurriculum.envs.data", "DATASETS"),
        ("metacurriculum.envs.students", "STUDENTS"),
    ],
)
def test_every_registry_of_the_package_is_one(module, name):
    import importlib

    registry = getattr(importlib.import_module(module), name)
    assert isinstance(registry, Registry) and registry.names()
