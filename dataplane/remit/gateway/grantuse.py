"""When each consent grant last let a call through, for the grants page ("last use").

A decision record names the grant an allow relied on; this keeps, per grant, the time of the
newest such record that was written, so the admin API's ``GET /v1/status`` can report it
(``grantsLastUsed``: ``{"namespace/name": RFC 3339 time}``) and the operator can copy it to
the ConsentGrant's ``status.lastUsedAt``. Bounded: at most ``limit`` grants, the least
recently used forgotten first (a forgotten grant is reported again at its next use).
"""

from __future__ import annotations

from collections import OrderedDict

from remit.audit.records import DecisionRecord

DEFAULT_LIMIT = 4096


class GrantUse:
    """Last use per grant name, from the allowed decisions that were recorded."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self._last: OrderedDict[str, str] = OrderedDict()
        self._limit = limit

    def note(self, record: DecisionRecord) -> None:
        """Remember ``record``'s time for its grant, if it is an allow that relied on one."""
        if record.decision != "allow" or record.grant is None:
            return
        name = record.grant.name
        previous = self._last.get(name)
        # Record times are RFC 3339 UTC with milliseconds: they sort as text.
        if previous is None or record.time > previous:
            self._last[name] = record.time
        self._last.move_to_end(name)
        while len(self._last) > self._limit:
            self._last.popitem(last=False)

    def get(self, name: str) -> str | None:
        """When grant ``name`` (``namespace/name``) last let a call through, if known."""
        return self._last.get(name)

    def snapshot(self) -> dict[str, str]:
        """``{grant name: last use}``, for ``/v1/status``."""
        return dict(self._last)


__all__ = ["GrantUse"]
