"""``remit crds``: write the CRD YAML files from the models, or check that they have not drifted.

``crds/`` is generated (``make crds``) and committed, so Helm and ``kubectl apply`` need no
Python; ``check`` keeps the committed files honest in CI.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated

import typer

from remit.api.common import GROUP
from remit.api.crdgen import rendered

crds_app = typer.Typer(
    help="Generate or check the CustomResourceDefinitions in crds/.", no_args_is_help=True
)

Output = Annotated[
    Path, typer.Option("--output", "-o", help="Directory holding the CRD YAML files.")
]

_OWN_FILES = f"{GROUP}_*.yaml"
_DIFF_LINES = 20


def _read(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        return f"<unreadable: {exc}>"


def find_drift(directory: Path) -> list[str]:
    """What differs between ``directory`` and freshly generated CRDs, one line per problem.

    Lists missing files, changed files (with the first lines of a unified diff) and
    ``remit.dev_*.yaml`` files the models no longer produce. Empty means up to date.
    """
    problems: list[str] = []
    expected = rendered()
    for name, text in expected.items():
        path = directory / name
        current = _read(path)
        if current is None:
            problems.append(f"{path}: missing")
            continue
        if current == text:
            continue
        diff = list(
            difflib.unified_diff(
                current.splitlines(), text.splitlines(), f"{path}", "generated", lineterm=""
            )
        )
        added = sum(1 for line in diff[2:] if line.startswith("+"))
        removed = sum(1 for line in diff[2:] if line.startswith("-"))
        problems.append(f"{path}: differs (+{added} -{removed} lines)")
        problems.extend(f"    {line}" for line in diff[:_DIFF_LINES])
        if len(diff) > _DIFF_LINES:
            problems.append(f"    ... {len(diff) - _DIFF_LINES} more diff lines")
    if directory.is_dir():
        for path in sorted(directory.glob(_OWN_FILES)):
            if path.name not in expected:
                problems.append(f"{path}: stale (no model generates it)")
    return problems


@crds_app.command()
def generate(output: Output = Path("crds")) -> None:
    """Write one YAML file per CRD into OUTPUT; the same models always give the same bytes."""
    expected = rendered()
    try:
        output.mkdir(parents=True, exist_ok=True)
        for name, text in expected.items():
            path = output / name
            if _read(path) == text:
                typer.echo(f"unchanged {path}")
                continue
            path.write_bytes(text.encode("utf-8"))
            typer.echo(f"wrote {path}")
        for path in sorted(output.glob(_OWN_FILES)):
            if path.name not in expected:
                path.unlink()
                typer.echo(f"removed stale {path}")
    except OSError as exc:
        typer.echo(f"error: cannot write CRDs to {output}: {exc}", err=True)
        raise typer.Exit(1) from exc


@crds_app.command()
def check(output: Output = Path("crds")) -> None:
    """Exit 1, listing the differences, if OUTPUT does not hold exactly the generated CRDs."""
    problems = find_drift(output)
    if problems:
        for line in problems:
            typer.echo(line, err=True)
        typer.echo("CRDs are out of date with the models: run `make crds`.", err=True)
        raise typer.Exit(1)
    typer.echo(f"{output}: CRDs up to date")
