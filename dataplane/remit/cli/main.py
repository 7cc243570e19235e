"""The ``remit`` entry point: one Typer app with a sub-command per concern."""

from __future__ import annotations

import typer

from remit.cli import gateway, policy
from remit.cli.access import access_app
from remit.cli.audit import audit_app
from remit.cli.consent import consent
from remit.cli.crds import crds_app
from remit.cli.demo import demo
from remit.cli.dev import dev_app
from remit.cli.grant import grant_app
from remit.cli.keys import keys_app
from remit.cli.operator import operator
from remit.cli.policytest import test

app = typer.Typer(
    name="remit",
    help="Govern what AI agents do with MCP tools: decide, enforce and record every call.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("check")(policy.check)
app.command("compile")(policy.compile_)
app.command("validate")(policy.validate)
app.command("test")(test)
app.command("demo")(demo)
gateway.register(app)
app.command("operator")(operator)
app.command("consent")(consent)
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(crds_app, name="crds")
app.add_typer(dev_app, name="dev")
app.add_typer(grant_app, name="grant")
app.add_typer(access_app, name="access")


def main() -> None:
    """Run the Typer app (the console script goes through ``remit.cli.entry``)."""
    app()
