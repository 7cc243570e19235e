"""What one caller may hold open at once: sessions, and server-to-client streams.

A GET stream (the server's standalone SSE stream) holds a request slot for as long as it is
open, and used to have no end: one caller could hold every slot. So each caller (issuer,
subject, agent) may hold at most ``streams_per_identity`` open GET streams (more are refused
with ``stream_quota`` and recorded), and the gateway closes any GET stream cleanly after
``stream_lifetime`` seconds (the stream's outcome records ``stream_closed``; MCP clients
reconnect and resume with ``Last-Event-ID``). A POST holding only notifications or responses
needs no answer but its HTTP status; if the upstream answers it with an event stream, that
stream is closed after ``notice_stream_timeout`` seconds without an event.

``OpenStreams`` counts the leases; a lease older than the lifetime (plus a margin) no longer
counts, so a stream whose end was somehow never reported cannot lock its caller out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from remit.gateway.sessions import DEFAULT_MAX_SESSIONS, DEFAULT_PER_IDENTITY, Owner, owner_of
from remit.policy.request import Identity

_MARGIN: Final = 60.0  # seconds past the lifetime before a lease is presumed lost


@dataclass(frozen=True, slots=True)
class CallerLimits:
    """Per-caller quotas and stream lifetimes (``REMIT_MAX_SESSIONS*``, ``REMIT_*STREAM*``)."""

    max_sessions: int = DEFAULT_MAX_SESSIONS
    sessions_per_identity: int = DEFAULT_PER_IDENTITY
    streams_per_identity: int = 4
    stream_lifetime: float = 3600.0
    notice_stream_timeout: float = 30.0


class OpenStreams:
    """Open GET streams per caller, as leases keyed by the stream's decision id."""

    def __init__(self, limits: CallerLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._leases: dict[str, tuple[Owner, float]] = {}
        self._held: dict[Owner, dict[str, float]] = {}
        self._next = 0

    def reserve(self, identity: Identity) -> str | None:
        """Open a stream for ``identity``: its lease, or None when its quota is used up."""
        owner = owner_of(identity)
        held = self._held.get(owner, {})
        stale = self._clock() - (self.limits.stream_lifetime + _MARGIN)
        for old in [key for key, opened in held.items() if opened < stale]:
            self.release(old)
        held = self._held.setdefault(owner, {})
        if len(held) >= self.limits.streams_per_identity:
            return None
        self._next += 1
        lease = f"lease-{self._next}"
        now = self._clock()
        held[lease] = now
        self._leases[lease] = (owner, now)
        return lease

    def attach(self, lease: str, key: str) -> None:
        """Name ``lease`` by ``key`` from now on (the stream's decision id)."""
        entry = self._leases.pop(lease, None)
        if entry is None:
            return
        held = self._held[entry[0]]
        held[key] = held.pop(lease)
        self._leases[key] = entry

    def release(self, lease: str) -> None:
        """The stream under ``lease`` ended (unknown leases are ignored)."""
        entry = self._leases.pop(lease, None)
        if entry is None:
            return
        held = self._held.get(entry[0])
        if held is not None:
            held.pop(lease, None)
            if not held:
                del self._held[entry[0]]

    def held(self, identity: Identity) -> int:
        """How many streams ``identity`` has open."""
        return len(self._held.get(owner_of(identity), ()))

    def __len__(self) -> int:
        return len(self._leases)


__all__ = ["CallerLimits", "OpenStreams"]
