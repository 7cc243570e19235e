"""``remit audit``: check a decision log and explain a decision, without a cluster.

``verify FILE`` exits 0 when the chain is intact and 1 with the first bad line and why; ``-``
reads standard input, e.g. ``kubectl logs POD -c remit-gateway | remit audit verify -
--skip-non-records`` (the sidecar's other output is skipped only with that flag, so a damaged
record is never silently ignored). ``explain FILE ID`` exits 0 with a paragraph (or JSON) about
the decision, and 1 when no decision has that id. An unreadable file exits 2. Gaps (records a
gateway could not write, declared by a ``recover`` marker) are listed; they do not fail it.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer
from rich.markup import escape

from remit.audit.explain import explain as explain_record
from remit.audit.verify import VerifyResult, verify_file, verify_lines
from remit.cli.common import console, errors
from remit.errors import AuditError

audit_app = typer.Typer(
    name="audit",
    help="Verify decision logs and explain decisions.",
    no_args_is_help=True,
)


class Output(StrEnum):
    """How a command prints its result."""

    text = "text"
    json = "json"


OutputOption = Annotated[
    Output, typer.Option("--output", "-o", help="Print human text or a JSON object.")
]


def _print_json(value: Any) -> None:
    typer.echo(msgspec.json.format(msgspec.json.encode(value), indent=2).decode())


def _fail_to_read(error: AuditError) -> typer.Exit:
    errors.print(f"[red]error:[/red] {escape(str(error))}")
    return typer.Exit(2)


@audit_app.command()
def verify(
    file: Annotated[str, typer.Argument(help="A decision log, or - for standard input.")],
    output: OutputOption = Output.text,
    partial: Annotated[
        bool,
        typer.Option(
            "--partial",
            help="Accept a log that starts mid-chain (cut by log rotation); its first prev "
            "is reported as the anchor.",
        ),
    ] = False,
    skip_non_records: Annotated[
        bool,
        typer.Option(
            "--skip-non-records",
            help="Skip lines that are not records (other log output), instead of failing.",
        ),
    ] = False,
    head: Annotated[
        str | None,
        typer.Option(
            "--head",
            help="The chain head the gateway reported; detects records cut from the end.",
        ),
    ] = None,
) -> None:
    """Check that every record is unedited and that none was deleted, inserted or reordered."""
    options: dict[str, Any] = {
        "partial": partial,
        "skip_non_records": skip_non_records,
        "expect_head": head,
    }
    result: VerifyResult
    if file == "-":
        result = verify_lines(sys.stdin.buffer, **options)
    else:
        try:
            result = verify_file(Path(file), **options)
        except AuditError as exc:
            raise _fail_to_read(exc) from exc
    if output is Output.json:
        _print_json(result.to_dict())
    elif result.ok:
        anchor = (
            f"; starts after {result.anchor}"
            if partial and result.anchor and set(result.anchor) != {"0"}
            else ""
        )
        skipped = f"; {result.skipped} other lines skipped" if result.skipped else ""
        console.print(f"[green]OK[/green] {escape(result.message)}{skipped}{anchor}")
        for gap in result.gaps:
            console.print(f"[yellow]gap[/yellow] {escape(gap.describe())}")
        console.print(f"head {result.head}")
    else:
        console.print(f"[red]BROKEN[/red] {escape(result.message)}")
        if result.records:
            console.print(f"{result.records} records verified before it")
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command()
def explain(
    file: Annotated[Path, typer.Argument(help="A decision log.")],
    record_id: Annotated[
        str, typer.Argument(metavar="ID", help="A decision id, or the id of its outcome.")
    ],
    output: OutputOption = Output.text,
) -> None:
    """Say who acted, on whose behalf, under which consent, by which rule, and what happened."""
    try:
        explanation = explain_record(file, record_id)
    except AuditError as exc:
        if not file.is_file():
            raise _fail_to_read(exc) from exc
        errors.print(f"[red]not found:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from exc
    if output is Output.json:
        _print_json(explanation.to_dict())
        return

    console.print(escape(explanation.text), soft_wrap=True)
    if not explanation.intact:
        console.print(
            "[red]warning:[/red] this record's hash does not match its content (edited); "
            "run `remit audit verify`."
        )
