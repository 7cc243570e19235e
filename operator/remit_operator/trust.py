"""Which indexed pods a syncer counts as its server's sidecars, and which reported serials.

Pure functions over what the index holds: the seal check of ``remit_operator.seal`` plus the
server's selector, and the plausibility of a serial a sidecar reports (serials are wall-clock
milliseconds, so one far ahead of the clock can only be forged).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from joserfc.jwk import OKPKey

from remit.api.mcpserver import MCPServer
from remit_operator.index import Sidecar
from remit_operator.seal import verify
from remit_operator.webhook import selector_matches

MAX_SERIAL_AHEAD = timedelta(minutes=10)


def sort_sidecars(
    server: MCPServer, sidecars: Iterable[Sidecar], keys: list[OKPKey]
) -> tuple[list[Sidecar], list[tuple[Sidecar, str]]]:
    """The sidecars sealed for this server that its selector matches; the others with why."""
    trusted: list[Sidecar] = []
    refused: list[tuple[Sidecar, str]] = []
    for sidecar in sidecars:
        sealed = verify(keys, server.metadata.uid, server.ref, sidecar.spec_digest, sidecar.seal)
        if not sealed:
            refused.append((sidecar, "not sealed by the webhook for this server"))
        elif not selector_matches(server.spec.selector, dict(sidecar.labels)):
            refused.append((sidecar, "the server's selector no longer matches it"))
        else:
            trusted.append(sidecar)
    return trusted, refused


def plausible_serial(serial: int | None, now: datetime, floor: int) -> bool:
    """Whether a reported serial can be one this operator signed (not past the clock + 10 min,
    unless the floor itself is that high)."""
    if serial is None:
        return False
    limit = int((now + MAX_SERIAL_AHEAD).timestamp() * 1000)
    return serial <= max(limit, floor)
