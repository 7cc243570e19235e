"""When each ConsentGrant last let a call through: from the sidecars to ``status.lastUsedAt``.

Sidecars report, in ``GET /v1/status``, ``grantsLastUsed``: the time of the newest allowed
decision each grant backed (``remit.gateway.grantuse``). The operator reads it on every
periodic check (``REMIT_RESYNC_SECONDS``), keeps the newest time per grant across the
server's sealed sidecars, and patches a grant's ``status.lastUsedAt`` only when a newer use
was reported: at most one write per grant per check, none while a grant is unused. The
consent page's grants list shows it ("last use where known").

What a sidecar says is bounded and checked: only names of grants of this server count, only
RFC 3339 times, and a time later than the operator's clock (plus a minute of skew) is
ignored, so a sidecar cannot pin a grant's last use in the future.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from remit.api.consentgrant import ConsentGrant
from remit.times import utc_text

MAX_REPORTED = 4096
MAX_NAME = 320
MAX_SKEW = timedelta(minutes=1)


def reported_uses(value: Any) -> dict[str, datetime]:
    """``grantsLastUsed`` as a sidecar reports it, bounded; malformed entries are dropped."""
    if not isinstance(value, Mapping):
        return {}
    uses: dict[str, datetime] = {}
    for name, when in value.items():
        if len(uses) >= MAX_REPORTED:
            break
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
            continue
        if not isinstance(when, str) or len(when) > 40:
            continue
        try:
            moment = datetime.fromisoformat(when)
        except ValueError:
            continue
        if moment.tzinfo is not None:
            uses[name] = moment
    return uses


class LastUse:
    """The newest reported use per grant of one server, and which grants need a write."""

    def __init__(self) -> None:
        self.seen: dict[str, datetime] = {}
        self.written: dict[str, datetime] = {}

    def observe(self, uses: Mapping[str, datetime], now: datetime) -> None:
        """Merge one sidecar's report (times ahead of ``now`` are not believed)."""
        for name, moment in uses.items():
            if moment > now + MAX_SKEW:
                continue
            if name in self.seen or len(self.seen) < MAX_REPORTED:
                self.seen[name] = max(moment, self.seen.get(name, moment))

    def due(self, grants: Iterable[ConsentGrant]) -> list[tuple[ConsentGrant, dict[str, Any]]]:
        """The grants whose ``status.lastUsedAt`` is behind a reported use, with the patch."""
        out = []
        for grant in grants:
            moment = self.seen.get(grant.ref)
            if moment is None:
                continue
            status = grant.status
            recorded = self.written.get(grant.ref) or (status.last_used_at if status else None)
            if recorded is not None and recorded >= moment:
                continue
            out.append((grant, {"lastUsedAt": utc_text(moment, "milliseconds")}))
        return out

    def wrote(self, grant: ConsentGrant) -> None:
        """The patch of ``grant`` succeeded: do not write the same time again."""
        moment = self.seen.get(grant.ref)
        if moment is not None:
            self.written[grant.ref] = moment

    def retain(self, names: Iterable[str]) -> None:
        """Forget grants that no longer exist."""
        keep = set(names)
        self.seen = {k: v for k, v in self.seen.items() if k in keep}
        self.written = {k: v for k, v in self.written.items() if k in keep}


__all__ = ["LastUse", "reported_uses"]
