"""Aggregate identical refusals, so a flood of them cannot fill the audit disk.

Every refusal must stay accountable, but a refusal of a caller without a valid token costs the
caller nothing and cost the gateway one fsynced ~630-byte record: an anonymous client could
write the disk full at thousands of records a second. So refusals before authentication (bad
or missing token, duplicate identity headers, no bundle in force) are aggregated per *window*:
(source address, reason code, error kind) for ``interval`` seconds. Protocol refusals of an
authenticated caller (a malformed body, a header mismatch, a client response nobody asked for)
and server messages dropped as unattributable are aggregated the same way, per (caller, source,
reason, kind): a valid token does not buy the right to fill the disk either.

- The first refusal of a window gets its own record, written at once, as before.
- Identical refusals while the window is open are only counted (``remit_refusals_aggregated``).
- When the window closes (the next refusal after it, the periodic flush, or shutdown), one
  summary record carries their ``count`` and names the first record, so the records' counts
  add up to every refusal.

Windows are bounded (``max_windows``): when that many are open, refusals from further sources
share one overflow window per reason (source ``*``). The error kind is a fixed code (e.g. the
RFC 6750 error), never caller-controlled text, so a client cannot dodge aggregation by varying
its token. ``RefusalAggregator`` is the bookkeeping (clock injected); ``AnonymousRefusals``
writes the records through the guard's ``Recorder`` and flushes closed windows periodically.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from remit.gateway.hooks import ANONYMOUS, HttpRequest
from remit.gateway.metrics import Metrics
from remit.gateway.recorder import Recorder
from remit.gateway.state import Policy
from remit.policy.decision import Reason
from remit.policy.request import Identity, Request

OVERFLOW_SOURCE: Final = "*"
DEFAULT_INTERVAL: Final = 60.0
DEFAULT_MAX_WINDOWS: Final = 4096


@dataclass(frozen=True, slots=True)
class RefusalKey:
    """What makes two refusals identical: where from, the reason code, the error kind, and
    the caller (empty before authentication)."""

    source: str
    reason: Reason
    kind: str
    owner: tuple[str, str, str] = ("", "", "")


@dataclass(slots=True)
class Window:
    """One open aggregation window. ``record_id`` is the record of its first refusal."""

    key: RefusalKey
    message: str
    opened: float
    record_id: str = ""
    suppressed: int = 0
    identity: Identity = ANONYMOUS
    method: str = ""


@dataclass(frozen=True, slots=True)
class Summary:
    """A closed window with refusals that got no record of their own."""

    key: RefusalKey
    count: int
    message: str
    record_id: str
    seconds: float
    identity: Identity = ANONYMOUS
    method: str = ""

    def describe(self) -> str:
        """The summary record's message."""
        first = f"record {self.record_id}" if self.record_id else "the first refusal"
        return (
            f"{self.count} more identical refusals from {self.key.source} within "
            f"{self.seconds:g}s of {first}: {self.message}"
        )


class RefusalAggregator:
    """Windows of identical unauthenticated refusals; see the module docstring."""

    def __init__(
        self,
        interval: float = DEFAULT_INTERVAL,
        *,
        max_windows: int = DEFAULT_MAX_WINDOWS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.max_windows = max_windows
        self._clock = clock
        self._windows: dict[RefusalKey, Window] = {}
        self._closed: list[Summary] = []
        self.aggregated = 0

    def note(self, key: RefusalKey, message: str) -> Window | None:
        """Count one refusal. A window when it opens one (the caller records this refusal and
        sets ``record_id``); None when it was counted into an open window."""
        now = self._clock()
        window = self._windows.get(key)
        if window is not None and now - window.opened >= self.interval:
            self._close(window, now)
            window = None
        if window is None and key not in self._windows and len(self._windows) >= self.max_windows:
            self._close_expired(now)
            if len(self._windows) >= self.max_windows:
                key = RefusalKey(OVERFLOW_SOURCE, key.reason, key.kind, key.owner)
                window = self._windows.get(key)
        if window is None:
            window = Window(key, message, now)
            self._windows[key] = window
            return window
        window.suppressed += 1
        self.aggregated += 1
        return None

    def due(self, *, final: bool = False) -> list[Summary]:
        """Summaries of windows that have closed (every open window too when ``final``)."""
        now = self._clock()
        if final:
            for window in list(self._windows.values()):
                self._close(window, now)
        else:
            self._close_expired(now)
        closed, self._closed = self._closed, []
        return closed

    def __len__(self) -> int:
        return len(self._windows)

    def _close_expired(self, now: float) -> None:
        expired = []
        for window in self._windows.values():  # in the order they opened: oldest first
            if now - window.opened < self.interval:
                break
            expired.append(window)
        for window in expired:
            self._close(window, now)

    def _close(self, window: Window, now: float) -> None:
        del self._windows[window.key]
        if window.suppressed:
            seconds = round(min(now - window.opened, self.interval), 3)
            key, message, first = window.key, window.message, window.record_id
            self._closed.append(
                Summary(
                    key, window.suppressed, message, first, seconds, window.identity, window.method
                )
            )


def source_of(request: HttpRequest) -> str:
    """The client address a refusal is attributed to (the TCP peer; headers are not trusted)."""
    return request.client[0] if request.client else "unknown"


class AnonymousRefusals:
    """Records refusals, aggregated per window (``identity`` None: not authenticated)."""

    def __init__(
        self, recorder: Recorder, metrics: Metrics, aggregator: RefusalAggregator | None = None
    ) -> None:
        self.recorder = recorder
        self.metrics = metrics
        self.aggregator = aggregator if aggregator is not None else RefusalAggregator()
        self._opened = asyncio.Event()  # a window opened: ``run`` has something to close

    async def refuse(
        self,
        policy: Policy | None,
        request: HttpRequest | None,
        reason: Reason,
        kind: str,
        message: str,
        *,
        identity: Identity | None = None,
        session: str | None = None,
        method: str = "",
    ) -> None:
        """Count one refusal; record it if it opens a window; write summaries now due.
        ``request`` None: not an HTTP request of the caller (a server message)."""
        self.metrics.decisions.labels("deny", reason).inc()
        source = source_of(request) if request is not None else "upstream"
        caller = identity if identity is not None else ANONYMOUS
        owner = (caller.issuer, caller.subject, caller.agent)
        window = self.aggregator.note(RefusalKey(source, reason, kind, owner), message)
        if window is None:
            self.metrics.refusals_aggregated.labels(reason).inc()
        else:
            window.identity, window.method = caller, method
            record = await self.recorder.refusal(
                policy, Request(caller, method), reason, message, session=session,
                source=source if identity is None else None, counted=True,
            )  # fmt: skip
            window.record_id = record.id
            self._opened.set()
        await self.flush(policy)

    async def connection(
        self, policy: Policy | None, reason: str, message: str, client: Any
    ) -> None:
        """A request the HTTP protocol refused before the app saw it (``connections.py``):
        aggregated per source, kind ``http/<reason>``."""
        request = HttpRequest("", "", b"", (), client if isinstance(client, tuple) else None)
        await self.refuse(policy, request, Reason.INVALID_REQUEST, f"http/{reason}", message)

    async def flush(self, policy: Policy | None, *, final: bool = False) -> None:
        """Write one summary record per closed window that counted refusals."""
        for summary in self.aggregator.due(final=final):
            anonymous = summary.identity == ANONYMOUS
            await self.recorder.refusal(
                policy,
                Request(summary.identity, summary.method),
                summary.key.reason,
                summary.describe(),
                source=summary.key.source if anonymous else None,
                count=summary.count,
                counted=True,
            )

    async def run(self, current: Callable[[], Policy | None]) -> None:
        """Flush windows as they close, until cancelled (the gateway's lifetime). While no
        window is open it sleeps until one opens: an idle gateway is not woken for nothing."""
        while True:
            if not self.aggregator:
                self._opened.clear()
                await self._opened.wait()
            await asyncio.sleep(max(self.aggregator.interval / 4, 0.05))
            await self.flush(current())


__all__ = [
    "AnonymousRefusals",
    "RefusalAggregator",
    "RefusalKey",
    "Summary",
    "Window",
    "source_of",
]
