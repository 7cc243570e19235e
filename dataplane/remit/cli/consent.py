"""``remit consent``: run the consent service (in a cluster, the chart's Deployment).

The consent page a standalone ``remit gateway -f DIR`` serves beside the gateway is in
``standalone_consent.py``.
"""

from __future__ import annotations

import os

import uvloop

from remit.cli.common import fail
from remit.consent.serve import serve
from remit.consent.settings import ConsentSettings
from remit.errors import RemitError
from remit.settings import load


def consent() -> None:
    """Run the consent service (settings: REMIT_CONSENT_* variables, docs/consent.md)."""
    try:
        settings = load(ConsentSettings, os.environ)
        uvloop.run(serve(settings))
    except RemitError as exc:
        fail(str(exc))


__all__ = ["consent"]
