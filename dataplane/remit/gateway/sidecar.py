"""The injected sidecar's entry point: ``REMIT_*`` settings in, a gateway out, no CLI framework.

``remit gateway`` without flags lands here (see ``remit.cli.main``); so does
``python -m remit.gateway``. A bad setting is one line on stderr and exit code 2; a start that
fails (a port in use, an audit file that cannot be opened) is one line and exit code 1.
"""

from __future__ import annotations

import sys

import uvloop

from remit.errors import RemitError
from remit.gateway.app import Gateway
from remit.gateway.logs import log_to_stderr
from remit.gateway.serve import run
from remit.gateway.settings import from_environment


def main() -> int:
    """Run the sidecar until SIGTERM; return the process exit code."""
    try:
        settings = from_environment()
        log_to_stderr(settings.logs.level, "%(asctime)s %(levelname)s %(name)s %(message)s")
        if settings.bundle.public_key is None:
            raise RemitError("REMIT_BUNDLE_PUBLIC_KEY: the sidecar needs the bundle key")
        if not settings.instance.server:
            raise RemitError(
                "REMIT_SERVER: the sidecar needs its MCPServer (namespace/name) to check "
                "bundles against"
            )
        gateway = Gateway(settings)
    except RemitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        uvloop.run(run(gateway))
    except RemitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
