"""``remit demo``: a walkthrough a person can follow, on the policies in ``examples/``.

It compiles the example resources for the files server and asks the engine the questions an
operator would: what may the support bot do, for whom, under which consent, and why not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.panel import Panel

from remit.cli.common import console, fail, load_valid
from remit.errors import CompileError
from remit.policy.compiler import compile_bundle
from remit.policy.ended import is_active
from remit.policy.engine import Engine
from remit.policy.request import Identity, Request

READ_ONLY = {"readOnlyHint": True}
WRITE = {"destructiveHint": False, "idempotentHint": True}
DESTRUCTIVE = {"destructiveHint": True}


@dataclass(frozen=True)
class Step:
    """One question the walkthrough asks, and the answer it expects."""

    title: str
    subject: str
    agent: str
    tool: str
    args: dict[str, Any]
    annotations: dict[str, Any] = field(default_factory=dict)
    expect: str = "allow"


STEPS = (
    Step("A read is allowed by a plain rule", "alice@example.com", "support-bot", "read_file",
         {"path": "/data/alice/notes.txt"}, READ_ONLY),
    Step("A write needs consent: Alice gave it for /data/alice/", "alice@example.com",
         "support-bot", "write_file", {"path": "/data/alice/notes.txt", "content": "hi"}, WRITE),
    Step("Outside the consent's scope, the same write is denied", "alice@example.com",
         "support-bot", "write_file", {"path": "/data/bob/notes.txt", "content": "hi"}, WRITE,
         "deny"),
    Step("Bob's consent expired, so his write is denied", "bob@example.com", "support-bot",
         "write_file", {"path": "/data/bob/notes.txt", "content": "hi"}, WRITE, "deny"),
    Step("Destructive tools are denied whatever else allows them", "alice@example.com",
         "support-bot", "delete_file", {"path": "/data/alice/notes.txt"}, DESTRUCTIVE, "deny"),
    Step("Deny overrides: secrets are never read", "alice@example.com", "support-bot",
         "read_file", {"path": "/data/secrets/key.pem"}, READ_ONLY, "deny"),
    Step("An agent no policy names gets nothing (default deny)", "alice@example.com",
         "unknown-agent", "read_file", {"path": "/data/alice/notes.txt"}, READ_ONLY, "deny"),
)  # fmt: skip


def walkthrough(examples: Path) -> int:
    """Run the policy walkthrough; return the number of answers that were not as expected."""
    loaded = load_valid([examples])
    try:
        bundle = compile_bundle(loaded.resources, "files", namespace="agents")
    except CompileError as exc:
        fail(str(exc))
    engine = Engine(bundle)
    console.print(
        Panel.fit(
            f"Policy bundle for agents/files: {len(bundle.policies)} policies, "
            f"{sum(is_active(g, bundle.issued_at) for g in bundle.grants)} active grant(s), "
            f"{bundle.excluded_grants.expired} expired and {bundle.excluded_grants.revoked} "
            f"revoked (they grant nothing)\ndigest {bundle.digest}",
            title="remit demo: policy walkthrough",
        )
    )
    surprises = 0
    for number, step in enumerate(STEPS, 1):
        identity = Identity(step.subject, step.agent)
        decision = engine.decide(
            Request(identity, "tools/call", step.tool, step.args, step.annotations)
        )
        verdict = "[green]ALLOW[/]" if decision.allowed else f"[red]DENY[/] ({decision.reason})"
        console.print(f"\n[bold]{number}. {step.title}[/]", highlight=False)
        console.print(
            f"   {step.agent} → {step.tool}({step.args}) for {step.subject}: {verdict}",
            highlight=False,
        )
        console.print(f"   why: {decision.message}", highlight=False, soft_wrap=True)
        if decision.grant:
            console.print(
                f"   consent: {decision.grant.name}, granted by {decision.grant.granted_by} "
                f"({decision.grant.reason}), expires {decision.grant.expires_at:%Y-%m-%d}",
                highlight=False,
            )
        if decision.effect != step.expect:
            surprises += 1
            console.print(f"   [bold red]unexpected: wanted {step.expect}[/]")
    return surprises


def examples_dir(given: Path | None) -> Path:
    """``--examples``, else ``examples/`` here, else the examples of this source checkout."""
    if given is not None:
        return given
    here = Path("examples")
    if (here / "policies.yaml").is_file():
        return here
    checkout = Path(__file__).resolve().parents[3] / "examples"
    if (checkout / "policies.yaml").is_file():
        return checkout
    fail("no examples/ directory here or in the Remit checkout: pass --examples DIR")


def demo(
    examples: Annotated[
        Path | None,
        typer.Option("--examples", help="Directory of example resources [the repo's examples/]."),
    ] = None,
    policy_only: Annotated[
        bool, typer.Option("--policy-only", help="Only the policy walkthrough; start nothing.")
    ] = False,
) -> None:
    """Show Remit governing a real agent: an MCP server, an issuer, the gateway, the audit trail."""
    folder = examples_dir(examples)
    if policy_only:
        surprises = walkthrough(folder)
    else:
        from remit.cli.live_demo import live  # noqa: PLC0415 - needs the demo extras

        surprises = live(folder)
    if surprises:
        fail(f"{surprises} step(s) did not decide as expected", 1)
    console.print("\n[bold green]Every decision was as expected.[/]")
