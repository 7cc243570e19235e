"""The ``remit`` console script: route the sidecar around the CLI framework.

``remit gateway`` with no flags is the injected sidecar: it reads only ``REMIT_*`` variables,
so it starts without Typer, Rich and every other command's imports (sidecar memory is a
product figure, ~14 MiB less this way). Everything else goes through the Typer app.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Console-script entry point."""
    if sys.argv[1:] == ["gateway"]:
        from remit.gateway.sidecar import main as sidecar  # noqa: PLC0415

        raise SystemExit(sidecar())
    from remit.cli.main import main as cli  # noqa: PLC0415

    cli()
