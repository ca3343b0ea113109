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

A *variant* is a registered name with settings of its own after ``@``s
(``"MetaCurriculum-Omniglot5-v0@learner=anil"``): :func:`parse_variant` and
:func:`variant_name` read and write them.

This module imports nothing but the standard library.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import json
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def load_entry(path: str) -> Any:
    """The object a ``"package.module:attribute"`` string names, imported now."""
    module, _, attribute = path.partition(":")
    if not module or not attribute:
        raise ValueError(f"{path!r} must be 'package.module:attribute'.")
    return getattr(importlib.import_module(module), attribute)


class Registry(MutableMapping[str, T], Generic[T]):
    """Factories by name, of one kind.

    Args:
        kind: What is registered, for messages (``"teacher"``, ``"learner"``).
        hint: How to add one, appended to the unknown-name error.
        setting: How the user names one (``"family="``, ``"--executor"``), put before the
            name in the unknown-name error; ``None`` says ``unknown <kind> 'x'``.
        plural: The kind in the plural (default: ``kind + "s"``).
    """

    def __init__(
        self, kind: str, hint: str = "", setting: str | None = None, plural: str | None = None
    ) -> None:
        self.kind = kind
        self.hint = hint
        self.setting = setting
        self.plural = plural or f"{kind}s"
        self._entries: dict[str, T | str] = {}

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

    def lookup(self, name: str) -> T:
        """The factory registered as ``name`` (imported now if it was given as a string).

        Raises:
            ValueError: for an unknown name, listing the registered ones and the closest.
        """
        if name not in self._entries:
            raise ValueError(self.unknown(name))
        entry = self._entries[name]
        if isinstance(entry, str):
            entry = self._entries[name] = load_entry(entry)
        return entry  # type: ignore[return-value]

    def unknown(self, name: Any) -> str:
        """The message for an unknown ``name``: the closest match and every registered name."""
        close = difflib.get_close_matches(str(name), list(self._entries), n=1)
        what = f"{self.setting}{name!r}" if self.setting else f"{self.kind} {name!r}"
        message = f"unknown {what}." if not self.setting else f"{what} is unknown."
        if close:
            message += f" Did you mean {close[0]!r}?"
        message += f" Registered {self.plural}: {', '.join(self.names())}"
        return message + (f"; {self.hint}" if self.hint else "") + "."

    def check(self, name: Any) -> None:
        """Raise the unknown-name ``ValueError`` unless ``name`` is registered."""
        if name not in self._entries:
            raise ValueError(self.unknown(name))

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._entries)

    # -- the dict protocol -------------------------------------------------------------

    def __getitem__(self, name: str) -> T:
        if name not in self._entries:
            raise KeyError(name)
        return self.lookup(name)

    def __setitem__(self, name: str, factory: T | str) -> None:
        self.register(name, factory)

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

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
