"""Which indexed pods a syncer counts as its server's sidecars, and which reported serials.

Pure functions over what the index holds: the seal check of ``remit_operator.seal`` (or, for
pods a previous release injected before the cutoff, ``remit_operator.seal_v1``), the pod's
shape (``remit_operator.podshape``) plus the server's selector,
and the plausibility of a serial a sidecar reports (serials are wall-clock milliseconds, so
one far ahead of the clock can only be forged).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import NamedTuple

from joserfc.jwk import OKPKey

from remit.api.mcpserver import MCPServer
from remit.times import utc_text
from remit_operator.index import Sidecar
from remit_operator.seal import verify
from remit_operator.seal_v1 import V1_CONTEXT, volumes_as_injected
from remit_operator.selectors import selector_matches

MAX_SERIAL_AHEAD = timedelta(minutes=10)


class Sorted(NamedTuple):
    """The sidecars counted, those refused with why, and which counted by a v1 seal."""

    trusted: list[Sidecar]
    refused: list[tuple[Sidecar, str]]
    legacy: frozenset[str]  # pods of ``trusted`` a previous release injected (seal_v1.py)


class V1Seals(NamedTuple):
    """Accept v1 seals (``REMIT_ACCEPT_V1_SEALS``): with this public-key ConfigMap, on pods the
    API server created before ``before`` (``REMIT_V1_SEALS_BEFORE``)."""

    key_configmap: str
    before: datetime


def created_before(created: str | None, cutoff: datetime) -> bool:
    """Whether an API-server ``creationTimestamp`` (RFC 3339) is before ``cutoff``."""
    if not created:
        return False
    try:
        when = datetime.fromisoformat(created)
    except ValueError:
        return False
    if when.tzinfo is None:
        return False
    return when < cutoff


def _unsealed(
    server: MCPServer, sidecar: Sidecar, keys: list[OKPKey], v1: V1Seals | None
) -> tuple[str | None, bool]:
    """Why the seal does not count (None: it does), and whether it is a v1 seal."""
    uid, ref = server.metadata.uid, server.ref
    if sidecar.exposed is not None:
        return f"{sidecar.exposed}: something else could pose as its gateway", False
    if verify(keys, uid, ref, sidecar.spec_digest, sidecar.seal):
        return None, False
    if v1 is not None and verify(
        keys, uid, ref, sidecar.v1_digest, sidecar.seal, context=V1_CONTEXT
    ):
        if not created_before(sidecar.created, v1.before):
            return (
                "sealed by the previous release, but created after it was replaced "
                f"({sidecar.created} is not before {utc_text(v1.before)}): a copied seal",
                False,
            )
        return volumes_as_injected(sidecar.volumes, v1.key_configmap, server.metadata.name), True
    return "not sealed by the webhook for this server", False


def sort_sidecars(
    server: MCPServer,
    sidecars: Iterable[Sidecar],
    keys: list[OKPKey],
    *,
    v1: V1Seals | None = None,
) -> Sorted:
    """The sidecars sealed for this server that its selector matches; the others with why.

    ``v1``: accept v1 seals on pods created before its cutoff whose volumes are as v1
    injected them, with its public-key ConfigMap; None refuses every v1 seal. A pod whose
    shape lets something else pose as its gateway (``podshape.py``) never counts."""
    trusted: list[Sidecar] = []
    refused: list[tuple[Sidecar, str]] = []
    legacy: set[str] = set()
    for sidecar in sidecars:
        why, legacy_seal = _unsealed(server, sidecar, keys, v1)
        if why is not None:
            refused.append((sidecar, why))
        elif not selector_matches(server.spec.selector, dict(sidecar.labels)):
            refused.append((sidecar, "the server's selector no longer matches it"))
        else:
            trusted.append(sidecar)
            if legacy_seal:
                legacy.add(sidecar.pod)
    return Sorted(trusted, refused, frozenset(legacy))


def plausible_serial(serial: int | None, now: datetime, floor: int) -> bool:
    """Whether a reported serial can be one this operator signed (not past the clock + 10 min,
    unless the floor itself is that high)."""
    if serial is None:
        return False
    limit = int((now + MAX_SERIAL_AHEAD).timestamp() * 1000)
    return serial <= max(limit, floor)
