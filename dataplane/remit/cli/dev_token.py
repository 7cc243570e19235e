"""``remit dev token``: a token from the issuer a running ``remit dev`` started.

``remit dev`` writes its issuer's URL to a state file (``REMIT_DEV_STATE``, default
``~/.cache/remit/dev/issuer``) and removes it on exit; this command reads it (or ``--issuer``)
and asks that issuer's token endpoint. The token alone goes to stdout, for
``TOKEN=$(remit dev token ...)``.
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from remit.cli.common import fail

MAX_ANSWER = 64 * 1024


def state_path() -> Path:
    """Where ``remit dev`` leaves its issuer URL."""
    configured = os.environ.get("REMIT_DEV_STATE")
    return Path(configured) if configured else Path.home() / ".cache/remit/dev/issuer"


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
        path = state_path()
        try:
            issuer = path.read_text(encoding="utf-8").strip()
        except OSError:
            fail(f"no running `remit dev` found ({path} is missing): start it, or pass --issuer")
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
    typer.echo(access)
