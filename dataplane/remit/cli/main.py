"""The ``remit`` entry point: one Typer app with a sub-command per concern, each imported when run.

``COMMANDS`` lists them in the order ``remit --help`` shows, each with its line there (a test
checks each line against the command's own help); ``remit --help`` and ``remit audit verify``
import no other command's module (``remit.cli.lazy``).
"""

from __future__ import annotations

from typing import ClassVar

import typer

from remit.cli.lazy import Lazy, LazyGroup

COMMANDS = (
    Lazy(
        "check",
        "remit.cli.policy:check",
        "Would this agent be allowed to do this for this human? Exit 0 if allowed, 1 if denied.",
    ),
    Lazy(
        "compile",
        "remit.cli.policy:compile_",
        "Print the compiled bundle for one MCP server (a signed JWS when --key is given).",
    ),
    Lazy(
        "validate",
        "remit.cli.policy:validate",
        "Validate every resource; list every problem and warning; exit 1 on an error.",
    ),
    Lazy(
        "test",
        "remit.cli.policytest:test",
        "Decide every case of the test tables against the policies; fail on any mismatch.",
    ),
    Lazy(
        "demo",
        "remit.cli.demo:demo",
        "Show Remit governing a real agent: an MCP server, an issuer, the gateway, "
        "the audit trail.",
    ),
    Lazy(
        "gateway",
        "remit.cli.gateway:register",
        "Run the gateway. Decision records go to stdout (or --audit-file); logs to stderr.",
    ),
    Lazy(
        "operator",
        "remit.cli.operator:operator",
        "Run the operator: watch MCPServers, AgentPolicies and ConsentGrants; "
        "push bundles; inject.",
    ),
    Lazy(
        "consent",
        "remit.cli.consent:consent",
        "Run the consent service (settings: REMIT_CONSENT_* variables, docs/consent.md).",
    ),
    Lazy("keys", "remit.cli.keys:keys_app", "Bundle signing keys."),
    Lazy("audit", "remit.cli.audit:audit_app", "Verify decision logs and explain decisions."),
    Lazy(
        "crds",
        "remit.cli.crds:crds_app",
        "Generate or check the CustomResourceDefinitions in crds/.",
    ),
    Lazy(
        "dev",
        "remit.cli.dev:dev_app",
        "Try a policy directory end to end: local issuer, gateway, ready tokens.",
    ),
    Lazy(
        "grant",
        "remit.cli.grant:grant_app",
        "Create, revoke and list ConsentGrants (a directory or a cluster).",
    ),
    Lazy("access", "remit.cli.access:access_app", "Access reviews."),
)
HELP = "Govern what AI agents do with MCP tools: decide, enforce and record every call."


class Remit(LazyGroup):
    """The ``remit`` group: ``COMMANDS``, each loaded when the command line names it."""

    table: ClassVar[tuple[Lazy, ...]] = COMMANDS


def _root() -> None:
    """Nothing before a sub-command (Typer builds a group only for an app with a callback)."""


def build(*, lazy: bool = True) -> typer.Typer:
    """The app; with ``lazy=False`` every command is imported and registered now (as before)."""
    app = typer.Typer(
        name="remit",
        help=HELP,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        cls=Remit if lazy else None,
        callback=_root if lazy else None,
    )
    for entry in () if lazy else COMMANDS:
        entry.add_to(app)
    return app


app = build()


def main() -> None:
    """Run the Typer app (the console script goes through ``remit.cli.entry``)."""
    app()
