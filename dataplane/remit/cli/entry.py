"""The ``remit`` console script: route the sidecar around the CLI framework.

``remit gateway`` with no flags is the injected sidecar: it reads only ``REMIT_*`` variables,
so it starts without Typer, Rich and every other command's imports (sidecar memory is a
product figure, ~14 MiB less this way). ``remit gateway`` with flags (standalone mode) parses
them with argparse (``remit.cli.gateway_args``, their only definition), so it too starts
without Typer, Rich, pydantic and the other commands' imports (~11 MiB; its policy directory is
compiled in a child process, see ``remit.gateway.standalone``, and its consent page loads on
first use, ``remit.cli.standalone_consent``). ``remit operator`` with no flags (the chart's
Deployment) also starts without Typer and the other commands (~20 MiB of the operator's
memory). Everything else goes through the Typer app, which imports only the named command's module
(``remit.cli.lazy``).
"""

from __future__ import annotations

import sys


def main() -> None:
    """Console-script entry point."""
    if sys.argv[1:] == ["gateway"]:
        from remit.gateway.sidecar import main as sidecar  # noqa: PLC0415

        raise SystemExit(sidecar())
    if sys.argv[1:2] == ["gateway"]:
        from remit.cli.gateway_args import main as gateway  # noqa: PLC0415

        raise SystemExit(gateway())
    if sys.argv[1:] == ["operator"]:
        from remit.cli.operator import main as operator  # noqa: PLC0415

        raise SystemExit(operator())
    from remit.cli.main import main as cli  # noqa: PLC0415

    cli()
