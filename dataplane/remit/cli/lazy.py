"""Sub-commands imported only when they run: ``remit --help`` lists them from a table.

Importing every command module up front cost ``remit --help`` and every ``remit audit ...``
about 1.8 s of CPU and 93 MiB (``remit dev`` alone pulls in the gateway, uvloop and the
serving code). Each entry of the table names a command, where it lives and the one-line help
``remit --help`` shows; ``LazyGroup`` lists placeholders carrying only that line and imports a
command's module when the command line names it (click's documented "lazy group" pattern,
as a Typer group so the help keeps Typer's formatting). The module then registers the command
on a Typer app exactly as an eager ``main.py`` would, so names, flags, help, output and exit
codes are those of the module; a test checks the table's lines against the modules' own help.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:  # typer vendors click from 0.29 on; only the types are named here
    from typer._click import Command, Context


@dataclass(frozen=True)
class Lazy:
    """A command of the app: ``target`` is ``module:attribute``, a Typer sub-app (added as the
    group ``name``), a command function, or a ``register(app)`` function that adds ``name``
    itself (``remit gateway``, whose arguments pass through). ``summary`` is its line in the
    parent's help, the first paragraph of the command's own help."""

    name: str
    target: str
    summary: str

    def add_to(self, app: typer.Typer) -> None:
        """Import the command's module and register the command on ``app``."""
        module, _, attribute = self.target.partition(":")
        found = getattr(importlib.import_module(module), attribute)
        if isinstance(found, typer.Typer):
            app.add_typer(found, name=self.name)
        elif attribute == "register":
            found(app)
        else:
            app.command(self.name)(found)


class Placeholder(TyperCommand):
    """What the group lists before a command is loaded: its name and one-line help."""


class LazyGroup(TyperGroup):
    """A Typer group whose sub-commands are ``Lazy`` entries, loaded when resolved.

    A subclass sets ``table``; ``typer.Typer(cls=...)`` builds it, so ``remit`` keeps its
    options, help and error messages (unknown and misspelt commands included)."""

    table: ClassVar[tuple[Lazy, ...]] = ()

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for entry in self.table:
            self.add_command(Placeholder(entry.name, help=entry.summary))

    def load(self, name: str) -> Command:
        """The command ``name`` as its module defines it (imported now, built once)."""
        command = self.commands[name]
        if isinstance(command, Placeholder):
            (entry,) = (e for e in self.table if e.name == name)
            holder = typer.Typer(rich_markup_mode=self.rich_markup_mode)
            try:
                entry.add_to(holder)
            except ImportError as exc:  # a broken install: say which, not a traceback
                missing = exc.name or str(exc)
                # typer.echo + typer.Exit: public in every typer the project allows (0.15 on),
                # where click's own exception class moved into typer's vendored copy in 0.29
                typer.echo(
                    f"Error: the command {name!r} cannot be loaded: module {missing!r} is "
                    f"missing ({exc}); reinstall remit",
                    err=True,
                )
                raise typer.Exit(1) from exc
            command = typer.main.get_group(holder).commands[name]
            self.commands[name] = command
        return command

    def resolve_command(
        self, ctx: Context, args: list[str]
    ) -> tuple[str | None, Command | None, list[str]]:
        """Click's resolution (its errors and suggestions), then the real command."""
        name, command, rest = super().resolve_command(ctx, args)
        if name is not None and isinstance(command, Placeholder):
            command = self.load(name)
        return name, command, rest
