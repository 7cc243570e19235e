"""The live part of ``remit demo``: a scripted agent through a real gateway, then the audit.

It starts a local OIDC issuer, the files MCP server and ``remit gateway`` with the example
policies, lets a real MCP client act for Alice and Bob, then verifies the decision records'
hash chain and explains the consent-backed write.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
from rich.panel import Panel

from remit.audit import explain, verify_file
from remit.cli.common import console
from remit.demo.agent import Scene, Seen, play
from remit.demo.stack import Stack, running_stack

SCENES = (
    Scene("Alice's support bot lists the tools it may use (delete_file is hidden)",
          "alice@example.com"),
    Scene("It reads a file: a plain Allow rule", "alice@example.com", "read_file",
          {"path": "/data/alice/notes.txt"}),
    Scene("It writes in /data/alice/: allowed by Alice's ConsentGrant", "alice@example.com",
          "write_file", {"path": "/data/alice/reply.txt", "content": "Ticket answered."}),
    Scene("It writes in /data/bob/: outside the consent's scope, denied", "alice@example.com",
          "write_file", {"path": "/data/bob/todo.txt", "content": "overwrite"}, expect="deny"),
    Scene("For Bob it writes: Bob's grant has expired, denied", "bob@example.com",
          "write_file", {"path": "/data/bob/todo.txt", "content": "done"}, expect="deny"),
    Scene("It tries to delete a file: destructive tools are denied (and hidden)",
          "alice@example.com", "delete_file", {"path": "/data/alice/notes.txt"}, expect="deny"),
)  # fmt: skip


def _consent_decision(audit: Path) -> str | None:
    for line in audit.read_bytes().splitlines():
        record = orjson.loads(line)
        if record.get("type") == "decision" and record.get("grant"):
            return str(record["id"])
    return None


async def _scenes(stack: Stack) -> int:
    surprises = 0
    for number, scene in enumerate(SCENES, 1):
        seen: Seen = await play(scene, stack.issuer, stack.gateway_url, stack.audience)
        verdict = "[green]ALLOWED[/]" if seen.allowed else "[red]DENIED[/]"
        console.print(f"\n[bold]{number}. {scene.title}[/]", highlight=False)
        console.print(f"   {verdict}  {seen.text}", highlight=False, soft_wrap=True)
        if ("allow" if seen.allowed else "deny") != scene.expect:
            surprises += 1
            console.print(f"   [bold red]unexpected: wanted {scene.expect}[/]")
    return surprises


def live(examples: Path) -> int:
    """Run the live demo; return the number of steps that did not go as expected."""
    with running_stack(examples) as stack:
        console.print(
            Panel.fit(
                f"MCP server (files) behind the Remit gateway at {stack.gateway_url}\n"
                f"tokens from a local OIDC issuer at {stack.issuer.issuer}\n"
                f"policies: {stack.policy_dir}\ndecision records: {stack.audit_file}",
                title="remit demo",
            )
        )
        surprises = asyncio.run(_scenes(stack))
        console.print("\n[bold]The evidence[/]")
        result = verify_file(stack.audit_file)
        mark = "[green]intact[/]" if result.ok else f"[red]BROKEN[/]: {result.message}"
        console.print(
            f"   remit audit verify {stack.audit_file}: {mark} ({result.records} records)",
            highlight=False,
        )
        if not result.ok:
            surprises += 1
        record_id = _consent_decision(stack.audit_file)
        if record_id is None:
            console.print("   [red]no consent-backed decision was recorded[/]")
            return surprises + 1
        console.print(f"   remit audit explain {stack.audit_file} {record_id}:", highlight=False)
        console.print(f"   {explain(stack.audit_file, record_id).text}", soft_wrap=True)
    return surprises
