"""One small registry of things by name: teachers, task families, executors, learners, data sets.

A :class:`Registry` maps names to factories (a class, a function, or a ``"module:attr"``
string imported on first use, so that registering costs no import). It behaves as a dict
(``name in REGISTRY``, ``REGISTRY[name]``, ``del REGISTRY[name]``), registers directly or
as a decorator, and an unknown name is an error that lists the registered ones and the
closest match::

    TEACHERS = Registry("teacher", hint="add yours with register_teacher(name, factory)")

    @TEACHERS.register("halfway")
    class HalfwayTeacher: ...

    TEACHERS.lookup("halfwya")  # ValueError: unknown teacher 'halfwya'. Did you mean 'halfway'? ...

**Plugins.** A registry made with ``group=`` also holds what installed distributions
declare as entry points of that group (``metacurriculum.teachers``,
``metacurriculum.families``, ``metacurriculum.executors``, ``metacurriculum.learners``;
see :data:`PLUGIN_GROUPS`), so an installed plugin's teacher is there without
``--import``. A plugin's ``pyproject.toml``::

    [project.entry-points."metacurriculum.teachers"]
    halfway = "halfway:HalfwayTeacher"

They are read once, on the first lookup or listing (never at ``import metacurriculum``),
as ``"module:attr"`` entries: the plugin's module is imported when its name is first
looked up. A name registered in the package (or by your code before that first read)
wins over a plugin's, with a warning naming both.

A *variant* is a registered name with settings of its own after ``@``s
(``"MetaCurriculum-Omniglot5-v0@learner=anil"``, ``"adaptive@step=4"``):
:func:`parse_variant` and :func:`variant_name` read and write them.

This module imports nothing but the standard library.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import json
import warnings
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: The entry-point group of each kind of plugin.
PLUGIN_GROUPS = {
    "teacher": "metacurriculum.teachers",
    "family": "metacurriculum.families",
    "executor": "metacurriculum.executors",
    "learner": "metacurriculum.learners",
    "data set": "metacurriculum.datasets",
    "student": "metacurriculum.students",
}


class Plugin:
    """An entry point of an installed distribution, loaded on its name's first lookup.

    Args:
        entry_point: the ``importlib.metadata.EntryPoint``.
        group: its group.
    """

    def __init__(self, entry_point: Any, group: str) -> None:
        self.entry_point = entry_point
        self.group = group
        dist = getattr(entry_point, "dist", None)
        self.distribution = f"{dist.name} {dist.version}" if dist is not None else "unknown"

    def load(self) -> Any:
        """The object the entry point names, imported now.

        Raises:
            ImportError: naming the entry point and its distribution, when it fails to load.
        """
        try:
            return self.entry_point.load()
        except Exception as error:
            raise ImportError(
                f"the plugin {self} failed to load: {type(error).__name__}: {error}; fix or "
                f"uninstall the distribution {self.distribution!r}."
            ) from error

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Plugin) and self.entry_point == other.entry_point

    def __hash__(self) -> int:
        return hash(self.entry_point)

    def __repr__(self) -> str:
        ep = self.entry_point
        return f"entry point {ep.name} = {ep.value!r} ({self.group}, from {self.distribution})"


def load_entry(path: str) -> Any:
    """The object a ``"package.module:attribute"`` string names, imported now."""
    module, _, attribute = path.partition(":")
    if not module or not attribute:
        raise ValueError(f"{path!r} must be 'package.module:attribute'.")
    return getattr(importlib.import_module(module), attribute)


def _qualified(obj: Any) -> str:
    """``module:qualname`` of a class or function, else its repr."""
    module, name = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    return f"{module}:{name}" if module and name else repr(obj)


class Registry(MutableMapping[str, T], Generic[T]):
    """Factories by name, of one kind.

    Args:
        kind: What is registered, for messages (``"teacher"``, ``"learner"``).
        hint: How to add one, appended to the unknown-name error.
        setting: How the user names one (``"family="``, ``"--executor"``), put before the
            name in the unknown-name error; ``None`` says ``unknown <kind> 'x'``.
        plural: The kind in the plural (default: ``kind + "s"``).
        group: The entry-point group whose entry points of installed distributions join the
            registry on its first lookup or listing (``None``: none).
        from_plugin: ``from_plugin(name, obj)``: what to register for the object a plugin's
            entry point names, when the registry holds something else (learners hold a
            spec built from a learner class); ``None`` registers the object itself.
    """

    def __init__(
        self,
        kind: str,
        hint: str = "",
        setting: str | None = None,
        plural: str | None = None,
        group: str | None = None,
        from_plugin: Callable[[str, Any], T] | None = None,
    ) -> None:
        self.kind = kind
        self.from_plugin = from_plugin
        self.hint = hint
        self.setting = setting
        self.plural = plural or f"{kind}s"
        self.group = group
        self._entries: dict[str, T | str | Plugin] = {}
        self._plugins: dict[str, Plugin] = {}  # the names that came from entry points
        self._discovered = group is None

    # -- plugins -----------------------------------------------------------------------

    def discover(self, again: bool = False) -> None:
        """Add the entry points of :attr:`group` from the installed distributions (once;
        ``again=True`` reads them anew, e.g. after installing a plugin in this process).

        A name already registered keeps its factory: the plugin's is skipped with a
        warning naming both.
        """
        if self._discovered and not again:
            return
        self._discovered = True
        from importlib.metadata import entry_points

        for entry_point in entry_points(group=self.group):
            plugin = Plugin(entry_point, self.group)
            name = entry_point.name
            if self._plugins.get(name) == plugin:
                continue  # read before (discover(again=True))
            taken = self._entries.get(name)
            if taken is None:
                self._entries[name] = plugin
                self._plugins[name] = plugin
                continue
            owner = taken if isinstance(taken, (str, Plugin)) else _qualified(taken)
            warnings.warn(
                f"the {self.kind} name {name!r} of the {plugin} is taken by {owner!s}; the "
                "plugin's is ignored (rename its entry point).",
                stacklevel=3,
            )

    # -- registering -----------------------------------------------------------------

    def register(self, name: str, factory: T | str | None = None) -> Any:
        """Register ``factory`` under ``name``; used directly or as a decorator.

        ``factory`` may be a ``"module:attr"`` string, imported on first :meth:`lookup`.
        Registering the same factory twice is harmless.

        Raises:
            ValueError: for an empty name, or a name taken by another factory.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}.")

        def add(factory: T | str) -> T | str:
            taken = self._entries.get(name)
            if taken is not None and taken is not factory and taken != factory:
                raise ValueError(
                    f"{self.kind} name {name!r} is taken by {taken!r} (already registered); "
                    "pick another name, or unregister it first (del the registry's entry)."
                )
            self._entries[name] = factory
            return factory

        return add if factory is None else add(factory)

    # -- looking up ------------------------------------------------------------------

    @property
    def _all(self) -> dict[str, T | str | Plugin]:
        """Every entry, the plugins' included (read on first use)."""
        self.discover()
        return self._entries

    def _has(self, name: object) -> bool:
        """Whether ``name`` is registered; the plugins are read only for a name not
        registered in code."""
        return name in self._entries or name in self._all

    def lookup(self, name: str) -> T:
        """The factory registered as ``name`` (imported now if it was given as a string or
        comes from a plugin's entry point).

        Raises:
            ValueError: for an unknown name, listing the registered ones and the closest.
            ImportError: when a plugin's entry point fails to load, naming it.
        """
        if not self._has(name):
            raise ValueError(self.unknown(name))
        entry = self._entries[name]
        if isinstance(entry, Plugin):
            loaded = entry.load()
            if self.from_plugin is not None:
                loaded = self.from_plugin(name, loaded)
            entry = self._entries[name] = loaded
        elif isinstance(entry, str):
            entry = self._entries[name] = load_entry(entry)
        return entry  # type: ignore[return-value]

    def unknown(self, name: Any) -> str:
        """The message for an unknown ``name``: the closest match and every registered name."""
        close = difflib.get_close_matches(str(name), list(self._all), n=1)
        what = f"{self.setting}{name!r}" if self.setting else f"{self.kind} {name!r}"
        message = f"unknown {what}." if not self.setting else f"{what} is unknown."
        if close:
            message += f" Did you mean {close[0]!r}?"
        message += f" Registered {self.plural}: {', '.join(self.names())}"
        return message + (f"; {self.hint}" if self.hint else "") + "."

    def check(self, name: Any) -> None:
        """Raise the unknown-name ``ValueError`` unless ``name`` is registered."""
        if not self._has(name):
            raise ValueError(self.unknown(name))

    def names(self, plugins: bool = True) -> list[str]:
        """The registered names, sorted; ``plugins=False`` leaves out (and does not read)
        the plugins' entry points: the names registered in code."""
        if not plugins:
            return sorted(name for name in self._entries if name not in self._plugins)
        return sorted(self._all)

    def plugin(self, name: str) -> Plugin | None:
        """The entry point ``name`` came from, or ``None`` for a name registered in code."""
        self.discover()
        return self._plugins.get(name) if name in self._entries else None

    # -- the dict protocol -------------------------------------------------------------

    def __getitem__(self, name: str) -> T:
        if not self._has(name):
            raise KeyError(name)
        return self.lookup(name)

    def __setitem__(self, name: str, factory: T | str) -> None:
        self.register(name, factory)

    def __delitem__(self, name: str) -> None:
        del self._all[name]

    def __contains__(self, name: object) -> bool:
        return self._has(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


def registering(registry: Registry[Any]) -> Callable[..., Any]:
    """A module-level ``register_<kind>(name, factory=None)`` function for ``registry``."""

    def register(name: str, factory: Any = None) -> Any:
        return registry.register(name, factory)

    register.__doc__ = (
        f"Register ``factory`` as the {registry.kind} ``name`` (directly, or as a decorator: "
        f"``@register_{registry.kind}(name)``). Registering the same factory twice is harmless."
    )
    return register


# -- names with settings of their own: variants ----------------------------------------


class VariantError(ValueError):
    """A variant's name that does not parse."""


#: Between an env id and each of its variant's settings: ``"MetaCurriculum-Omniglot5-v0@learner=anil"``.
VARIANT = "@"


def parse_value(text: str) -> Any:
    """A setting's value: JSON (``3``, ``0.1``, ``true``, ``[1, 2]``), a Python literal
    (``True``, ``None``), a float (``nan``, ``inf``), else the text itself (``cuda``)."""
    for parse in (json.loads, ast.literal_eval, float):
        try:
            return parse(text)
        except (ValueError, SyntaxError):
            pass
    return text


def parse_variant(name: str) -> tuple[str, dict[str, Any]]:
    """``"ID@key=value@key2=value2"`` -> ``("ID", {"key": value, "key2": value2})``.

    A variant is a registered name with settings of its own, each after an ``@``: an env
    id with env settings (``MetaCurriculum-Omniglot5-v0@learner=anil``), so one benchmark
    can cross learners (or any setting) with teachers, each variant with its own folders
    and its own rows in the tables.

    Raises:
        VariantError: for a setting that is not ``key=value``.
    """
    base, *items = name.split(VARIANT)
    settings = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise VariantError(
                f"{name!r}: {item!r} is not key=value; write a variant as "
                f"ID{VARIANT}key=value{VARIANT}key2=value2."
            )
        settings[key.strip()] = parse_value(value.strip())
    return base.strip(), settings


def variant_name(base: str, settings: Mapping[str, Any]) -> str:
    """The canonical name of ``base`` with ``settings``: sorted by key, values as JSON (or
    text), so the same variant has one name and one folder however it was written."""
    parts = [base]
    for key in sorted(settings):
        value = settings[key]
        parts.append(f"{key}={value if isinstance(value, str) else json.dumps(value)}")
    return VARIANT.join(parts)
