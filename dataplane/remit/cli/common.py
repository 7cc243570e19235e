"""What the CLI commands share: loading resources with readable errors, and output helpers."""

from __future__ import annotations

import enum
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import orjson
import typer
from rich.console import Console

if TYPE_CHECKING:  # the loader (PyYAML, pydantic) is imported only by commands that read YAML
    from remit.api.loader import Loaded


# Piped or redirected output is not wrapped at 80 columns: a line a program reads stays a line.
console = Console(width=None if sys.stdout.isatty() else 100_000)
errors = Console(stderr=True, width=None if sys.stderr.isatty() else 100_000)

# Exit codes, like `kubectl auth can-i`: 0 allowed/ok, 1 denied/failed check, 2 bad input.
EXIT_OK = 0
EXIT_DENY = 1
EXIT_USAGE = 2


class Output(enum.StrEnum):
    """Human text or machine JSON."""

    text = "text"
    json = "json"


PolicyDir = Annotated[
    list[Path],
    typer.Option("--filename", "-f", help="YAML file or directory of resources (repeatable)."),
]
RecursiveOption = Annotated[
    bool, typer.Option("--recursive", "-R", help="Also read subdirectories of -f directories.")
]
OutputOption = Annotated[Output, typer.Option("--output", "-o", help="text or json.")]


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print an error to stderr and exit with ``code``."""
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def load_valid(paths: Sequence[Path], recursive: bool = False) -> Loaded:
    """Load resources; on any validation error list them all and exit 2."""
    from remit.api.loader import load  # noqa: PLC0415

    loaded = load(paths, recursive=recursive)
    for empty in (w for w in loaded.warnings if w.reason == "NoResources"):
        errors.print(f"[yellow]warning:[/] {empty}", highlight=False, soft_wrap=True)
    if loaded.errors:
        for problem in loaded.errors:
            errors.print(f"[red]✗[/] {problem}", highlight=False, soft_wrap=True)
        fail(f"{len(loaded.errors)} invalid resource(s); run `remit validate` for details")
    return loaded


def print_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout."""
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
