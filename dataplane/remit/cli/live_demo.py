"""The live part of ``remit demo``: a scripted agent through a real gateway, then the audit.

It starts a local OIDC issuer, the files MCP server and ``remit gateway`` with the example
policies, lets a real MCP client act for Alice and Bob, runs the consent loop (Bob's write is
denied with a consent page link, Bob approves on the page, the retry is allowed), then verifies
the decision records' hash chain and explains the consent-backed writes.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import httpx
import orjson
from rich.panel import Panel

from remit.audit import explain, verify_file
from remit.cli.common import console
from remit.demo.agent import Scene, Seen, play
from remit.demo.human import approve
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


def _consent_decision(audit: Path, *, last: bool = False) -> str | None:
    found = None
    for line in audit.read_bytes().splitlines():
        record = orjson.loads(line)
        if record.get("type") == "decision" and record.get("grant"):
            found = str(record["id"])
            if not last:
                return found
    return found


async def _scenes(stack: Stack) -> int:
    surprises = 0
    for number, scene in enumerate(SCENES, 1):
        seen: Seen = await play(scene, stack.issuer, stack.gateway_url, stack.audience)
        verdict = "[green]ALLOWED[/]" if seen.allowed else "[red]DENIED[/]"
        console.print(f"\n[bold]{number}. {scene.title}[/]", highlight=False)
        console.print(f"   {verdict}  {_short(seen.text)}", highlight=False, soft_wrap=True)
        if ("allow" if seen.allowed else "deny") != scene.expect:
            surprises += 1
            console.print(f"   [bold red]unexpected: wanted {scene.expect}[/]")
    return surprises


LINK = re.compile(r"(https?://\S+/consent\?r=[A-Za-z0-9_.%-]+)")
BOB_WRITES = Scene("For Bob it writes: Bob's grant has expired, so the answer carries a link "
                   "to the consent page", "bob@example.com", "write_file",
                   {"path": "/data/bob/todo.txt", "content": "done"}, expect="deny")  # fmt: skip
RETRY = Scene("The agent retries the same call", "bob@example.com", "write_file",
              {"path": "/data/bob/todo.txt", "content": "done"})  # fmt: skip


def _short(text: str) -> str:
    """Consent links shortened for the screen (the sealed request is long)."""
    return LINK.sub(lambda m: m.group(1)[:70] + "…", text)


RELOAD_SECONDS = 60
"""How long the demo waits for the gateway to put Bob's new grant in force."""


async def _active_grants(admin_url: str) -> int:
    """The active grants of the bundle in force, from the gateway's ``/v1/status``."""
    async with httpx.AsyncClient(timeout=10) as http:
        status = (await http.get(f"{admin_url}/v1/status")).json()
    bundle = status.get("bundle") or {}
    return int(bundle.get("grants", 0))


async def _consent_loop(stack: Stack) -> tuple[int, str | None]:
    """Denied with a link, approved by Bob on the page, allowed on retry."""
    console.print("\n[bold]The consent loop[/]")
    seen = await play(BOB_WRITES, stack.issuer, stack.gateway_url, stack.audience)
    found = LINK.search(seen.text)
    console.print(f"\n[bold]7. {BOB_WRITES.title}[/]", highlight=False)
    console.print(f"   [red]DENIED[/]  {_short(seen.text)}", highlight=False, soft_wrap=True)
    if seen.allowed or found is None:
        console.print("   [bold red]unexpected: wanted a denial with a consent link[/]")
        return 1, None
    console.print("\n[bold]8. Bob opens the link, signs in at the issuer and approves this "
                  "exact call for 15 minutes[/]", highlight=False)  # fmt: skip
    before = await _active_grants(stack.admin_url)
    notice = await asyncio.to_thread(approve, found.group(1), "bob@example.com")
    console.print(f"   {notice}", highlight=False)
    console.print(f"\n[bold]9. {RETRY.title}[/]", highlight=False)
    # The gateway sees the new grant file and compiles a new bundle: within a second or two on
    # an idle machine, longer on a busy one (docs/consent.md). Wait for that bundle (its status
    # counts the grant) instead of retrying blind, so each retry is one decision record.
    deadline = time.monotonic() + RELOAD_SECONDS
    while await _active_grants(stack.admin_url) <= before and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    seen = await play(RETRY, stack.issuer, stack.gateway_url, stack.audience)
    verdict = "[green]ALLOWED[/]" if seen.allowed else "[red]DENIED[/]"
    console.print(f"   {verdict}  {seen.text}", highlight=False, soft_wrap=True)
    if not seen.allowed:
        return 1, None
    return 0, _consent_decision(stack.audit_file, last=True)


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
        failed, looped = asyncio.run(_consent_loop(stack))
        surprises += failed
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
        if looped is not None:
            console.print(f"   remit audit explain {stack.audit_file} {looped}:", highlight=False)
            console.print(f"   {explain(stack.audit_file, looped).text}", soft_wrap=True)
    return surprises
