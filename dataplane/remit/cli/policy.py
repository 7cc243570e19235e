"""``remit check``, ``remit compile`` and ``remit validate``: the policy core without a cluster."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from remit.api.agentpolicy import AgentPolicy
from remit.api.consentgrant import ConsentGrant
from remit.api.lint import lint
from remit.api.loader import load
from remit.api.mcpserver import MCPServer
from remit.cli.common import (
    EXIT_DENY,
    EXIT_OK,
    Output,
    OutputOption,
    PolicyDir,
    RecursiveOption,
    console,
    errors,
    fail,
    load_valid,
    print_json,
)
from remit.errors import CompileError
from remit.policy.compiler import compile_bundle
from remit.policy.decision import Decision, Reason
from remit.policy.engine import Engine
from remit.policy.request import Identity, Request
from remit.policy.signing import load_key, sign

ServerOption = Annotated[str, typer.Option("--server", "-s", help="MCPServer name.")]
NamespaceOption = Annotated[
    str | None, typer.Option("--namespace", "-n", help="MCPServer namespace (if ambiguous).")
]


def _json_object(value: str | None, option: str) -> dict[str, Any]:
    if not value:
        return {}
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        fail(f"{option}: invalid JSON at position {exc.pos}: {exc.msg}")
    if not isinstance(parsed, dict):
        fail(f"{option}: expected a JSON object, got {type(parsed).__name__}")
    return parsed


def _target(tool: str | None, resource: str | None, prompt: str | None) -> tuple[str, str]:
    given = [(m, v) for m, v in (("tools/call", tool), ("resources/read", resource),
                                 ("prompts/get", prompt)) if v]  # fmt: skip
    if len(given) != 1:
        fail("name exactly one of --tool, --resource or --prompt")
    return given[0]


def check(
    files: PolicyDir,
    server: ServerOption,
    subject: Annotated[str, typer.Option(help="The human (token `sub`).")],
    agent: Annotated[str, typer.Option(help="The agent id (token `act.sub`).")],
    tool: Annotated[str | None, typer.Option(help="Tool to call.")] = None,
    resource: Annotated[str | None, typer.Option(help="Resource URI to read.")] = None,
    prompt: Annotated[str | None, typer.Option(help="Prompt to get.")] = None,
    args: Annotated[str | None, typer.Option("--args", help="Arguments as JSON.")] = None,
    groups: Annotated[str, typer.Option(help="Comma-separated groups of the human.")] = "",
    annotations: Annotated[
        str | None, typer.Option(help='Tool annotations as JSON, e.g. {"readOnlyHint": true}.')
    ] = None,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Shorthand: readOnlyHint.")
    ] = False,
    issuer: Annotated[str, typer.Option(help="Token issuer, for conditions on it.")] = "",
    at: Annotated[
        datetime | None, typer.Option(help="Decide as of this time (RFC 3339); default now.")
    ] = None,
    namespace: NamespaceOption = None,
    recursive: RecursiveOption = False,
    output: OutputOption = Output.text,
) -> None:
    """Would this agent be allowed to do this for this human? Exit 0 if allowed, 1 if denied."""
    method, name = _target(tool, resource, prompt)
    loaded = load_valid(files, recursive)
    try:
        bundle = compile_bundle(loaded.resources, server, namespace=namespace, now=at)
    except CompileError as exc:
        fail(str(exc))
    hints = _json_object(annotations, "--annotations")
    if read_only:
        hints["readOnlyHint"] = True
    identity = Identity(
        subject=subject,
        agent=agent,
        issuer=issuer,
        groups=tuple(g.strip() for g in groups.split(",") if g.strip()),
    )
    request = Request(identity, method, name, _json_object(args, "--args"), hints, at)
    decision = Engine(bundle).decide(request)
    if output == Output.json:
        print_json({"request": {"method": method, "name": name}, **decision.document()})
    else:
        _print_decision(decision, bool(hints) or method != "tools/call")
        if decision.reason == Reason.CONSENT_REQUIRED:
            _left_out(loaded.of(ConsentGrant), bundle.server.namespace, server, identity, at)
    raise typer.Exit(EXIT_OK if decision.allowed else EXIT_DENY)


def _print_decision(decision: Decision, annotated: bool) -> None:
    if decision.allowed:
        console.print("[bold green]allowed[/]", highlight=False)
    else:
        console.print(f"[bold red]denied[/] ({decision.reason})", highlight=False)
    console.print(f"  why:     {decision.message}", highlight=False, soft_wrap=True)
    if decision.rules:
        console.print(f"  rules:   {', '.join(decision.rules)}", highlight=False)
    if decision.grant:
        g = decision.grant
        console.print(
            f"  consent: {g.name} (uid {g.uid or '-'}, resourceVersion "
            f"{g.resource_version or '-'}, expires {g.expires_at.isoformat()}, granted by "
            f"{g.granted_by}{', ' + g.reason if g.reason else ''})",
            highlight=False,
        )
    console.print(f"  bundle:  {decision.bundle}", highlight=False)
    if decision.reason == Reason.DENIED_BY_RULE and not annotated:
        console.print(
            "  note:    no --annotations given; MCP defaults treat an undeclared tool as "
            "destructive (try --read-only or --annotations)",
            style="yellow",
            highlight=False,
        )


def _left_out(
    grants: list[ConsentGrant],
    namespace: str,
    server: str,
    identity: Identity,
    at: datetime | None,
) -> None:
    """Name the grants for this subject and agent that the bundle left out, and why."""
    now = at or datetime.now(UTC)
    for grant in grants:
        spec = grant.spec
        if (grant.metadata.namespace, spec.server, spec.subject, spec.agent) != (
            namespace, server, identity.subject, identity.agent,
        ):  # fmt: skip
            continue
        phase = grant.phase(now)
        if phase == "Expired":
            why = f"expired at {spec.expires_at.isoformat()}"
        elif phase == "Revoked":
            why = "was revoked"
        else:
            continue
        console.print(f"  grant:   {grant.ref} {why}", style="yellow", highlight=False)


def compile_(
    files: PolicyDir,
    server: ServerOption,
    key: Annotated[Path | None, typer.Option(help="Ed25519 private key: sign the bundle.")] = None,
    serial: Annotated[int, typer.Option(min=0, help="Bundle serial.")] = 0,
    namespace: NamespaceOption = None,
    recursive: RecursiveOption = False,
) -> None:
    """Print the compiled bundle for one MCP server (a signed JWS when --key is given)."""
    loaded = load_valid(files, recursive)
    try:
        bundle = compile_bundle(loaded.resources, server, namespace=namespace, serial=serial)
    except CompileError as exc:
        fail(str(exc))
    if key is None:
        print_json(bundle.document())
        return
    typer.echo(sign(bundle, load_key(key)))


def validate(
    files: PolicyDir,
    recursive: RecursiveOption = False,
    output: OutputOption = Output.text,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail (exit 1) on warnings too, not only errors.")
    ] = False,
) -> None:
    """Validate every resource; list every problem and warning; exit 1 on an error.

    Warnings are resources that load but cannot do what they say: a server that does not
    exist, a glob that never matches, a non-boolean `when`, a grant already expired, a
    resource without a namespace, a directory without resources. --strict fails on them.
    """
    loaded = load(files, recursive=recursive)
    warnings = [
        *loaded.warnings,
        *lint(loaded.resources, now=datetime.now(UTC), sources=loaded.sources),
    ]
    if output == Output.json:
        print_json(
            {
                "valid": [f"{r.KIND} {r.ref}" for r in loaded.resources],
                "errors": [str(e) for e in loaded.errors],
                "warnings": [
                    {
                        "kind": w.kind,
                        "resource": w.ref,
                        "field": w.field,
                        "reason": w.reason,
                        "message": w.message,
                        "source": w.source,
                        "text": str(w),
                    }
                    for w in warnings
                ],
                "skipped": loaded.skipped,
            }
        )
    else:
        table = Table("kind", "resource", "status", box=None, pad_edge=False)
        for r in loaded.resources:
            table.add_row(r.KIND, r.ref, "[green]valid[/]")
        if loaded.resources:
            console.print(table)
        for problem in loaded.errors:
            errors.print(f"[red]✗[/] {problem}", highlight=False, soft_wrap=True)
        for warning in warnings:
            errors.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
        for skipped in loaded.skipped:
            console.print(f"[dim]skipped (not a Remit resource): {skipped}[/]", highlight=False)
        counts = {
            kind.KIND: len(loaded.of(kind)) for kind in (MCPServer, AgentPolicy, ConsentGrant)
        }
        summary = ", ".join(f"{n} {k}" for k, n in counts.items())
        console.print(
            f"{summary}; {len(loaded.errors)} error(s), {len(warnings)} warning(s)"
            + (" (--strict: warnings fail)" if strict and warnings else ""),
            highlight=False,
        )
    if loaded.errors or (strict and warnings):
        raise typer.Exit(EXIT_DENY)
