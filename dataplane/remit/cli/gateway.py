"""``remit gateway`` in the full Typer app: a pass-through to the one argparse definition.

The console script never comes here (``remit.cli.entry`` sends ``remit gateway ...`` to
``gateway_args.py`` before Typer is imported: the gateway process holds no CLI framework). The
app still has the command so that ``remit --help`` lists it and an in-process call of the app
(``app(["gateway", ...])``) behaves as the console script does: every argument, ``--help``
included, goes to the same argparse parser, so its flags, help and errors exist once.
"""

from __future__ import annotations

import typer

from remit.cli.gateway_args import SUMMARY, main

PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def gateway(ctx: typer.Context) -> None:
    """Hand the command line to ``gateway_args.main``; its exit code is the command's."""
    code = main(ctx.args)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add ``gateway`` to ``app``: listed with its one-line help, its arguments unparsed."""
    app.command("gateway", help=SUMMARY, context_settings=PASS_THROUGH)(gateway)


__all__ = ["gateway", "register"]
