"""Settings from ``REMIT_*`` environment variables: one loader for the operator and the gateway.

A settings class is a frozen dataclass whose fields say which variable sets them
(``setting(default, env=..., doc=...)``); a field holding another such dataclass is a group
(``group(Factory)``) and is loaded the same way. ``load`` reads the environment, converts by the
field's type (str, int, float, bool, ``Path``, a ``Literal`` of choices, optional ``None``) or a
field's own ``parse``, and raises ``SettingsError`` naming the variable. ``variables``,
``sections`` and ``markdown_table`` list the variables from the same fields, a table per titled
group, so the documentation cannot drift from the code (a test compares them).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from remit.errors import SettingsError

PREFIX = "REMIT_"
T = TypeVar("T")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True, slots=True)
class Variable:
    """One documented environment variable."""

    name: str
    default: str
    doc: str


def setting(
    default: Any,
    *,
    env: str,
    doc: str,
    parse: Callable[[str, str], Any] | None = None,
    shown: str | None = None,
) -> Any:
    """A field set by ``REMIT_<env>``. ``parse(raw, variable)`` overrides the type's conversion;
    ``shown`` is the default as the table shows it (when ``default`` is computed)."""
    metadata = {"env": PREFIX + env, "doc": doc, "parse": parse, "shown": shown}
    return dataclasses.field(default=default, metadata=metadata)


def group(
    factory: Callable[[], Any],
    *,
    title: str | None = None,
    source: type[Any] | None = None,
    build: Callable[[Any], Any] | None = None,
) -> Any:
    """A field holding a group of settings, loaded with its own fields.

    A group with a ``title`` gets its own table in the documentation, introduced by the first
    line of its class's docstring; an untitled group's variables join its parent's table. A
    group whose type is not declared with ``setting`` fields (it belongs to a lower layer)
    names a ``source`` class that is, and ``build`` turns the loaded source into the value.
    """
    metadata = {"group": True, "title": title, "source": source, "build": build}
    return dataclasses.field(default_factory=factory, metadata=metadata)


def load(cls: type[T], environ: Mapping[str, str] | None = None) -> T:
    """An instance of ``cls`` from ``environ`` (default ``os.environ``); unset or empty
    variables keep their defaults."""
    env = os.environ if environ is None else environ
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.metadata.get("group"):
            source = f.metadata.get("source")
            if source is None:
                values[f.name] = load(hints[f.name], env)
            else:
                values[f.name] = f.metadata["build"](load(source, env))
            continue
        variable = f.metadata.get("env")
        if variable is None:
            continue
        raw = env.get(variable)
        if raw is None or raw.strip() == "":
            continue
        parse = f.metadata.get("parse")
        values[f.name] = parse(raw, variable) if parse else convert(raw, variable, hints[f.name])
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:
        raise SettingsError(str(exc)) from exc


def convert(raw: str, variable: str, kind: Any) -> Any:
    """``raw`` as a value of type ``kind``; ``SettingsError`` names ``variable`` otherwise."""
    raw = raw.strip()
    options = typing.get_args(kind)
    if typing.get_origin(kind) in (types.UnionType, typing.Union):
        kind = next(option for option in options if option is not type(None))
        options = typing.get_args(kind)
    if typing.get_origin(kind) is Literal:
        if raw not in options:
            raise SettingsError(f"{variable}: expected {' or '.join(options)}, got {raw!r}")
        return raw
    if kind is bool:
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise SettingsError(f"{variable}: expected true or false, got {raw!r}")
    if kind in (int, float):
        try:
            return kind(raw)
        except ValueError as exc:
            raise SettingsError(f"{variable}: expected a number, got {raw!r}") from exc
    if kind is Path:
        return Path(raw)
    return raw


def variables(cls: type[Any]) -> list[Variable]:
    """Every variable that sets a field of ``cls`` or its groups, in field order."""
    hints = typing.get_type_hints(cls)
    found: list[Variable] = []
    for f in dataclasses.fields(cls):
        if f.metadata.get("group"):
            found += variables(f.metadata.get("source") or hints[f.name])
        elif "env" in f.metadata:
            shown = f.metadata.get("shown")
            if shown is None:
                shown = "unset" if f.default in (None, "") else f"`{_show(f.default)}`"
            found.append(Variable(f.metadata["env"], shown, f.metadata["doc"]))
    return found


@dataclass(frozen=True, slots=True)
class Section:
    """The variables of one titled group (or, untitled, those outside every titled group)."""

    title: str | None
    summary: str
    variables: list[Variable]


def sections(cls: type[Any]) -> list[Section]:
    """The variables of ``cls`` by titled group, in field order; those of fields and untitled
    groups directly in ``cls`` come first, untitled."""
    hints = typing.get_type_hints(cls)
    loose: list[Variable] = []
    titled: list[Section] = []
    for f in dataclasses.fields(cls):
        title = f.metadata.get("title")
        if title is None:
            if f.metadata.get("group") or "env" in f.metadata:
                loose += _own(cls, f, hints)
            continue
        kind = f.metadata.get("source") or hints[f.name]
        summary = (kind.__doc__ or "").strip().splitlines()[0]
        titled.append(Section(title, summary, variables(kind)))
    return ([Section(None, "", loose)] if loose else []) + titled


def _own(cls: type[Any], f: dataclasses.Field[Any], hints: dict[str, Any]) -> list[Variable]:
    if f.metadata.get("group"):
        return variables(f.metadata.get("source") or hints[f.name])
    return [v for v in variables(cls) if v.name == f.metadata["env"]]


def markdown_table(cls: type[Any]) -> str:
    """The variables of ``cls`` as Markdown: a table (Variable, Default, Meaning) per titled
    group, under a level-3 heading with the group's summary."""
    parts: list[str] = []
    for section in sections(cls):
        if section.title is not None:
            parts.append(f"### {section.title}\n\n{section.summary}\n")
        rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
        rows += [f"| `{v.name}` | {v.default} | {v.doc} |" for v in section.variables]
        parts.append("\n".join(rows) + "\n")
    return "\n".join(parts)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
