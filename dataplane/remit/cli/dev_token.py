"""``remit dev token`` and ``remit dev call``: tokens and calls for a running ``remit dev``.

``remit dev`` writes its issuer's URL to a state file (``REMIT_DEV_STATE``, default
``~/.cache/remit/dev/issuer``) and removes it on exit; this command reads it (or ``--issuer``)
and asks that issuer's token endpoint. The token alone goes to stdout, for
``TOKEN=$(remit dev token ...)``; ``remit dev call`` uses one with a real MCP client.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from remit.cli.common import fail
from remit.settings import load, setting

MAX_ANSWER = 64 * 1024


@dataclass(frozen=True, slots=True)
class DevSettings:
    """Where ``remit dev`` leaves its issuer URL and MCP URL for the commands that follow."""

    state: str = setting(
        "", env="DEV_STATE", doc="File naming the running `remit dev` (default under ~/.cache)."
    )


def state_path() -> Path:
    """Where ``remit dev`` leaves its issuer URL and MCP URL (two lines)."""
    configured = load(DevSettings).state
    return Path(configured) if configured else Path.home() / ".cache/remit/dev/issuer"


def running(wait: float = 15.0) -> tuple[str, str]:
    """(issuer URL, MCP URL) of the running ``remit dev``; waits ``wait`` s for it to start."""
    path = state_path()
    deadline = time.monotonic() + wait
    while True:
        try:
            lines = path.read_text(encoding="utf-8").split()
        except OSError:
            lines = []
        if len(lines) == 2:
            return lines[0], lines[1]
        if time.monotonic() >= deadline:
            fail(f"no running `remit dev` found ({path} is missing): start it, or pass --issuer")
        time.sleep(0.2)


def fetch_token(issuer: str, subject: str, agent: str, groups: str) -> str:
    """Ask the dev issuer's token endpoint for a token."""
    parts = urlsplit(issuer)
    if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        fail(f"--issuer: expected the loopback URL remit dev printed, got {issuer!r}")
    body = json.dumps(
        {"subject": subject, "agent": agent,
         "groups": [g.strip() for g in groups.split(",") if g.strip()]}
    ).encode()  # fmt: skip
    request = urllib.request.Request(  # noqa: S310 - loopback http only, checked above
        f"{issuer}/token", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            document = json.loads(answer.read(MAX_ANSWER))
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        fail(f"the dev issuer at {issuer} did not answer: {reason} (is `remit dev` running?)", 1)
    access = document.get("access_token") if isinstance(document, dict) else None
    if not isinstance(access, str):
        fail(f"the dev issuer at {issuer} gave no token", 1)
    return access


def token(
    subject: Annotated[str, typer.Option(help="The human (token `sub`).")],
    agent: Annotated[str, typer.Option(help="The agent (token `act.sub`).")],
    groups: Annotated[str, typer.Option(help="Comma-separated groups of the human.")] = "",
    issuer: Annotated[
        str | None, typer.Option(help="The dev issuer URL (default: the running remit dev's).")
    ] = None,
) -> None:
    """Print an access token for SUBJECT acting through AGENT, from the running `remit dev`."""
    if issuer is None:
        issuer, _ = running()
    typer.echo(fetch_token(issuer, subject, agent, groups))


def call(
    subject: Annotated[str, typer.Option(help="The human (token `sub`).")],
    agent: Annotated[str, typer.Option(help="The agent (token `act.sub`).")],
    tool: Annotated[str, typer.Option(help="Tool to call; omit to list the tools.")] = "",
    args: Annotated[str, typer.Option("--args", help="Arguments as JSON.")] = "{}",
    groups: Annotated[str, typer.Option(help="Comma-separated groups of the human.")] = "",
) -> None:
    """Call a tool through the running `remit dev` gateway with a real MCP client.

    Prints what the agent saw; exit 0 if allowed, 1 if denied.
    """
    try:
        arguments = json.loads(args)
    except ValueError as exc:
        fail(f"--args: invalid JSON: {exc}")
    if not isinstance(arguments, dict):
        fail("--args: expected a JSON object")
    try:
        from remit.demo.agent import act  # noqa: PLC0415 - the MCP SDK is a dev dependency
    except ImportError:
        fail("remit dev call needs the MCP SDK: pip install mcp")
    issuer, url = running()
    seen = asyncio.run(act(url, fetch_token(issuer, subject, agent, groups), tool, arguments))
    typer.echo(("ALLOWED " if seen.allowed else "DENIED  ") + seen.text)
    raise typer.Exit(0 if seen.allowed else 1)
