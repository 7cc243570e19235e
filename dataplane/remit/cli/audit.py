"""``remit audit``: check a decision log and explain a decision, without a cluster.

``verify FILE`` exits 0 when the chain is intact and 1 with the first bad line and why; ``-``
reads standard input, e.g. ``kubectl logs POD -c remit-gateway | remit audit verify -
--skip-non-records`` (the sidecar's other output is skipped only with that flag, so a damaged
record is never silently ignored). ``explain FILE ID`` exits 0 with a paragraph (or JSON) about
the decision, and 1 when no decision has that id. An unreadable file exits 2. Gaps (records a
gateway could not write, declared by a ``recover`` marker) are listed; they do not fail it.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer
from rich.markup import escape

from remit.audit.anchors import Anchor, digest_key, parse_anchors
from remit.audit.collection import CollectionResult, verify_collection
from remit.audit.digests import DigestReport, check_digests
from remit.audit.explain import explain as explain_record
from remit.audit.explain import explain_lines
from remit.audit.reading import Replayable, SourceLine, record_lines
from remit.audit.verify import VerifyResult, verify_lines
from remit.cli.audit_search import register
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
    files: Annotated[
        list[str],
        typer.Argument(
            help="Decision logs (- for standard input): one sidecar's, or many sidecars' in "
            "any order, e.g. kubectl logs --prefix output."
        ),
    ],
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
    anchors: Annotated[
        Path | None,
        typer.Option(
            "--anchors",
            help="The operator's anchors (kubectl get configmap remit-anchors-SERVER -o yaml): "
            "every anchored head must be among its pod's records.",
        ),
    ] = None,
    by_chain: Annotated[
        bool,
        typer.Option(
            "--by-chain",
            help="Group records into chains by their links, whatever their order (implied by "
            "several files, --anchors, or records of more than one pod).",
        ),
    ] = False,
    digest_keys: Annotated[
        list[Path] | None,
        typer.Option(
            "--digest-key",
            help="A server's argument digest key (file); repeat for keys before a rotation. "
            "Reports which key each record names and recomputes digests of unredacted values.",
        ),
    ] = None,
    digest_roots: Annotated[
        list[Path] | None,
        typer.Option(
            "--digest-root",
            help="The operator's root digest key (the remit-audit-key Secret's key, as a file); "
            "each record's server key is derived from it. Repeatable.",
        ),
    ] = None,
) -> None:
    """Check that every record is unedited and that none was deleted, inserted or reordered."""
    try:
        anchored = parse_anchors(anchors.read_bytes()) if anchors is not None else []
        keys = [digest_key(p) for p in digest_keys or []]
        roots = [digest_key(p) for p in digest_roots or []]
    except (AuditError, OSError) as exc:
        error = exc if isinstance(exc, AuditError) else AuditError(f"cannot read {anchors}: {exc}")
        raise _fail_to_read(error) from exc
    grouped = by_chain or anchors is not None or len(files) > 1
    try:
        # Streamed: a multi-gigabyte log is never held in memory; each pass (digests, one
        # chain, chains of several pods) reads the sources again (stdin from its copy).
        with Replayable(files) as source:
            digests = (
                check_digests(
                    (item.line for item in source.lines()),
                    [k for k in keys if k],
                    [r for r in roots if r],
                )
                if keys or roots
                else None
            )
            _verify(source, output, partial, skip_non_records, head, anchored, grouped, digests)
    except AuditError as exc:
        raise _fail_to_read(exc) from exc


def _verify(
    source: Replayable,
    output: Output,
    partial: bool,
    skip_non_records: bool,
    head: str | None,
    anchored: list[Anchor],
    grouped: bool,
    digests: DigestReport | None,
) -> None:
    result: VerifyResult | None = None
    extra = {"digests": digests.to_dict()} if digests is not None else {}
    broken_digests = digests is not None and not digests.ok
    if not grouped:
        result = verify_lines(
            (item.line for item in source.lines()),
            partial=partial,
            skip_non_records=skip_non_records,
            expect_head=head,
        )
    if result is None or (not result.ok and _pods(source.lines()) > 1):  # many sidecars'
        collected = verify_collection(
            source.lines(), anchors=anchored, partial=partial, skip_non_records=skip_non_records
        )
        _report_collection(collected, output, extra)
        _report_digests(digests, output)
        if not collected.ok or broken_digests:
            raise typer.Exit(1)
        return
    if output is Output.json:
        _print_json(result.to_dict() | extra)
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
    _report_digests(digests, output)
    if not result.ok or broken_digests:
        raise typer.Exit(1)


def _report_digests(report: DigestReport | None, output: Output) -> None:
    if report is None or output is Output.json:
        return  # in the JSON object already
    for line in report.describe():
        colour = "red" if "does not match" in line else "yellow" if "no key" in line else "dim"
        console.print(f"[{colour}]{escape(line)}[/{colour}]")


def _pods(lines: Iterable[SourceLine]) -> int:
    """How many pods wrote ``lines`` (a quick look at each record's ``pod``; stops at two)."""
    pods: set[str] = set()
    for item in lines:
        if not item.line:
            continue
        try:
            pods.add(str(_POD.decode(item.line).pod))
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        if len(pods) > 1:
            break
    return len(pods)


class _Pod(msgspec.Struct):
    pod: str


_POD = msgspec.json.Decoder(_Pod)


def _report_collection(
    result: CollectionResult, output: Output, extra: dict[str, Any] | None = None
) -> None:
    if output is Output.json:
        _print_json(result.to_dict() | (extra or {}))
        return
    for chain in result.chains:
        start = "continues the chain anchored at " + chain.continues[:16] if chain.continues else ""
        console.print(
            f"chain {chain.start[:16]} [{escape(chain.server)} {escape(chain.pod)}] "
            f"{chain.kind}: {chain.records} records {chain.started} .. {chain.ended}, "
            f"head {chain.head} {start}".rstrip()
        )
        for gap in chain.gaps:
            console.print(f"  [yellow]gap[/yellow] {escape(gap)}")
    for line in result.anchors:
        console.print(f"anchor {escape(line)}")
    if result.skipped:
        console.print(f"{result.skipped} other lines skipped")
    if result.ok:
        console.print(f"[green]OK[/green] {len(result.chains)} chain(s) intact")
        return
    for problem in result.problems:
        console.print(f"[red]BROKEN[/red] {escape(problem)}")


@audit_app.command()
def explain(
    file: Annotated[str, typer.Argument(help="A decision log, or - for standard input.")],
    record_id: Annotated[
        str,
        typer.Argument(
            metavar="ID", help="A decision id or its outcome's id, or a unique start of one."
        ),
    ],
    output: OutputOption = Output.text,
    consent_log: Annotated[
        list[Path] | None,
        typer.Option(
            "--consent-log",
            help="Another log holding the consent page's answers (e.g. the consent service's "
            "saved stdout); repeatable. FILE itself is always searched.",
        ),
    ] = None,
) -> None:
    """Say who acted, on whose behalf, under which consent, by which rule, and what happened."""
    others = tuple(consent_log or ())
    try:
        for other in others:
            if not other.is_file():
                raise _fail_to_read(AuditError(f"cannot read audit file {other}: not a file"))
        if file == "-":
            lines = list(record_lines([file]))
            answers = [*lines, *record_lines([str(o) for o in others])]
            explanation = explain_lines(lambda: lines, record_id, "standard input", lambda: answers)
        else:
            if not Path(file).is_file():
                raise _fail_to_read(AuditError(f"cannot read audit file {file}: not a file"))
            explanation = explain_record(Path(file), record_id, consent_logs=others)
    except AuditError as exc:
        if "cannot read" in str(exc):
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


register(audit_app)  # query and tail (audit_search.py)
