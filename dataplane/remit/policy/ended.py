"""Recently ended ConsentGrants, kept in a bundle so a denial can name them truthfully.

A grant that had already expired, or was revoked, when the bundle was compiled used to be left
out, so the gateway's denial said the subject "has no active ConsentGrant" although one had
existed moments ago. The compiler now keeps the most recent ended grants in ``grants``, in a
form every gateway, of this version or the previous one, already treats as granting nothing:

- an expired grant keeps its real, past ``expiresAt``;
- a revoked grant's ``expiresAt`` is ``REVOKED_AT`` (the Unix epoch), since revocation carries no
  time of its own; a gateway names it "revoked", a previous gateway "expired at 1970-01-01".

The engine checks ``expiresAt`` before anything else on every path (decisions and list
filtering), so an ended grant cannot allow or reveal anything; and no new bundle field is needed,
so sidecars on the previous image keep accepting bundles from a new operator during an upgrade.

Bounds: only grants that ended (or, if revoked, would end) within ``ENDED_HORIZON`` of compile
time, at most ``MAX_ENDED_GRANTS`` per server, the latest first. Their ``when`` and ``reason``
are dropped: a denial never cites them, and this keeps the bundle small.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from remit.policy.bundle import CompiledGrant

if TYPE_CHECKING:  # the sidecar imports this module and must not load pydantic
    from remit.api.consentgrant import ConsentGrant

REVOKED_AT = datetime(1970, 1, 1, tzinfo=UTC)
ENDED_HORIZON = timedelta(days=30)
MAX_ENDED_GRANTS = 1000


def is_revoked(grant: CompiledGrant) -> bool:
    """Whether a compiled grant stands for a revoked ConsentGrant."""
    return grant.expires_at <= REVOKED_AT


def is_active(grant: CompiledGrant, now: datetime) -> bool:
    """Whether a compiled grant can still give consent at ``now``."""
    return grant.expires_at > now


def ended_grants(grants: Iterable[ConsentGrant], now: datetime) -> list[ConsentGrant]:
    """The ended grants worth naming: within the horizon, newest first, at most the maximum."""
    since = now - ENDED_HORIZON
    recent = [g for g in grants if g.spec.expires_at > since and g.phase(now) != "Active"]
    recent.sort(key=lambda g: (g.spec.expires_at, g.ref), reverse=True)
    return recent[:MAX_ENDED_GRANTS]


def as_ended(compiled: CompiledGrant, *, revoked: bool) -> CompiledGrant:
    """An ended grant's compiled form: it grants nothing, and cites no condition or evidence."""
    expires_at = REVOKED_AT if revoked else compiled.expires_at
    return compiled.model_copy(
        update={"when": None, "reason": "", "evidence": None, "expires_at": expires_at}
    )
