"""``remit audit query`` and ``remit audit tail``: find decisions in logs, files or a stream.

Both read files, ``-`` (standard input) or ``kubectl logs`` output (``--prefix`` and
``--timestamps`` prefixes are removed), keep the records matching every filter given, and print
one line each (``--output json``: the record's own line, ready for ``jq``). ``query`` exits 1
when nothing matched. ``tail`` prints the last ``--lines`` matches and, with ``--follow``, the
ones written after (one file, polled like ``tail -F``: through rotation and truncation, see
``remit.audit.follow``; a stream on stdin is followed anyway).
"""

from __future__ import annotations

import collections
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from remit.audit.follow import follow as follow_file
from remit.audit.query import Filter, matching, parse_when, summary
from remit.audit.reading import STDIN, SourceLine, record_lines
from remit.audit.records import AuditRecord
from remit.cli.common import errors
from remit.errors import AuditError

Files = Annotated[
    list[str], typer.Argument(help="Decision logs, - for standard input (kubectl logs output).")
]


def _filter(options: dict[str, Any]) -> Filter:
    since, until = options.pop("since"), options.pop("until")
    try:
        return Filter(
            since=parse_when(since) if since else None,
            until=parse_when(until) if until else None,
            **options,
        )
    except AuditError as exc:
        errors.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc


def _print(item: SourceLine, record: AuditRecord, as_json: bool) -> None:
    typer.echo(item.line.decode() if as_json else summary(record))


def query(
    files: Files,
    subject: Annotated[
        str | None, typer.Option("--subject", help="The user a call was made for.")
    ] = None,
    agent: Annotated[str | None, typer.Option("--agent", help="The agent that made it.")] = None,
    tool: Annotated[
        str | None, typer.Option("--tool", help="Tool, resource or prompt (fnmatch).")
    ] = None,
    method: Annotated[
        str | None, typer.Option("--method", help="JSON-RPC method, e.g. tools/call.")
    ] = None,
    decision: Annotated[str | None, typer.Option("--decision", help="allow or deny.")] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Reason code, e.g. no_matching_rule.")
    ] = None,
    server: Annotated[
        str | None, typer.Option("--server", help="namespace/name of the MCPServer.")
    ] = None,
    pod: Annotated[str | None, typer.Option("--pod", help="The sidecar's pod.")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="RFC 3339 time, or 15m / 2h / 7d ago.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="RFC 3339 time, or a duration ago.")
    ] = None,
    outcomes: Annotated[
        bool, typer.Option("--outcomes", help="Also print each one's outcome.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the records' JSON lines.")] = False,
) -> None:
    """Print the decisions matching every filter given; exit 1 if there are none."""
    wanted = _filter(_options(locals()))
    found = 0
    try:
        for item, record in matching(record_lines(files), wanted):
            _print(item, record, as_json)
            found += 1
    except AuditError as exc:
        errors.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    if not found:
        errors.print("no matching records")
        raise typer.Exit(1)


def _options(values: dict[str, Any]) -> dict[str, Any]:
    options = {name: values[name] for name in _options_names()}
    return options | {k: values[k] for k in ("since", "until", "outcomes")}


def _nap(seconds: float) -> None:
    """How ``tail --follow`` waits between polls (tests drive a file from here)."""
    time.sleep(seconds)


def tail(
    files: Files,
    lines: Annotated[
        int, typer.Option("--lines", "-n", min=0, help="How many to print first.")
    ] = 10,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new records.")
    ] = False,
    subject: Annotated[
        str | None, typer.Option("--subject", help="The user a call was made for.")
    ] = None,
    agent: Annotated[str | None, typer.Option("--agent", help="The agent that made it.")] = None,
    tool: Annotated[
        str | None, typer.Option("--tool", help="Tool, resource or prompt (fnmatch).")
    ] = None,
    method: Annotated[str | None, typer.Option("--method", help="JSON-RPC method.")] = None,
    decision: Annotated[str | None, typer.Option("--decision", help="allow or deny.")] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Reason code.")] = None,
    server: Annotated[
        str | None, typer.Option("--server", help="namespace/name of the MCPServer.")
    ] = None,
    pod: Annotated[str | None, typer.Option("--pod", help="The sidecar's pod.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the records' JSON lines.")] = False,
) -> None:
    """Print the last matching decisions (and outcomes); with --follow, new ones as written."""
    options = {"since": None, "until": None, "outcomes": True}
    options |= {k: v for k, v in locals().items() if k in _options_names()}
    wanted = _filter(options)
    try:
        if STDIN in files:  # a stream: print as it comes
            for item, record in matching(record_lines(files), wanted):
                _print(item, record, as_json)
            return
        last = collections.deque(matching(record_lines(files), wanted), maxlen=lines)
        for item, record in last:
            _print(item, record, as_json)
        if follow:
            if len(files) != 1:
                errors.print("[red]error:[/red] --follow takes one file")
                raise typer.Exit(2)
            for item, record in matching(follow_file(Path(files[0]), sleep=_nap), wanted):
                _print(item, record, as_json)
    except AuditError as exc:
        errors.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    except KeyboardInterrupt:
        return


def _options_names() -> tuple[str, ...]:
    return ("subject", "agent", "tool", "method", "decision", "reason", "server", "pod")


def register(app: typer.Typer) -> None:
    """Add ``query`` and ``tail`` to the ``remit audit`` group."""
    app.command()(query)
    app.command()(tail)


__all__ = ["register"]
