"""``remit access review``: who may act for whom, by which rules, under which active grants.

From a policy directory (``-f DIR``) or from the cluster (``--cluster``, the current kubeconfig
context, all namespaces), per MCPServer: each rule of each AgentPolicy governing it and each
ConsentGrant Active now, with its ``grantedBy``, expiry and consent-page evidence
(``remit.policy.review``). Output as a table, JSON or CSV, for periodic access reviews.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import msgspec
import typer
from rich.console import Console
from rich.table import Table

from remit.api.common import Resource
from remit.api.consentgrant import ConsentGrant
from remit.cli.common import console, fail, load_valid
from remit.errors import RemitError
from remit.policy.review import COLUMNS
from remit.policy.review import review as review_rows
from remit.times import utc_text

access_app = typer.Typer(name="access", help="Access reviews.", no_args_is_help=True)


class Format(StrEnum):
    """How the review is printed."""

    table = "table"
    json = "json"
    csv = "csv"


def _cluster() -> list[Resource]:
    from remit.consent.kube import KubeStore  # noqa: PLC0415 - only with --cluster

    return KubeStore().resources()


@access_app.command()
def review(
    files: Annotated[
        list[Path] | None,
        typer.Option("--filename", "-f", help="Policy files or directories."),
    ] = None,
    cluster: Annotated[
        bool, typer.Option("--cluster", help="Read the cluster (current kubeconfig context).")
    ] = False,
    output: Annotated[Format, typer.Option("--output", "-o", help="table, json or csv.")] = (
        Format.table
    ),
) -> None:
    """List, per MCPServer, which agents may act for whom, by which rules and active grants."""
    if bool(files) == cluster:
        fail("give either -f DIR or --cluster")
    try:
        resources = _cluster() if cluster else list(load_valid(files or []).resources)
    except RemitError as exc:
        fail(str(exc), 1)
    now = datetime.now(UTC)
    rows = [row.flat() for row in review_rows(resources, now)]
    if output == Format.json:
        grants = [r for r in resources if isinstance(r, ConsentGrant)]
        left_out = {
            phase: sum(1 for g in grants if g.phase(now) == phase)
            for phase in ("Expired", "Revoked")
        }
        document = {
            "generatedAt": utc_text(now, "seconds"),
            "rows": rows,
            "grantsLeftOut": left_out,
        }
        typer.echo(msgspec.json.format(msgspec.json.encode(document), indent=2).decode())
    elif output == Format.csv:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        typer.echo(buffer.getvalue(), nl=False)
    else:
        table = Table(title="Access review", show_lines=False)
        for column in COLUMNS:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(row[c] for c in COLUMNS))
        Console(width=max(console.width, 200)).print(table)  # a review is read wide


__all__ = ["access_app"]
