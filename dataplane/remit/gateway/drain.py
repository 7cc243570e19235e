"""Stopping a gateway without leaving a call unaccounted: a bounded drain.

On SIGTERM/SIGINT (``serve.run``) the gateway drains: ``/readyz`` answers 503 (a Service
stops sending), the MCP listener stops accepting connections, GET streams (no call awaits
them) are cut at once, and calls in flight may finish for up to the grace period
(``REMIT_SHUTDOWN_GRACE_SECONDS``). Then every call still open is cut: its wait on the
upstream is cancelled (the upstream connection is dropped), its outcome recorded ``shutdown``
and its client answered with the gateway's JSON-RPC error (HTTP 503, or a final error event
on an event stream already started). Before this, a stop waited for every call with no
bound, and the kubelet's SIGKILL left calls without an outcome.

``Drain`` is the one registry: each forwarded request's ``ClientWatch`` (``watch.py``) enters
it while the request is at the upstream and is cut through it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Final

from remit.errors import UpstreamError

log = logging.getLogger(__name__)

SHUTDOWN: Final = "shutdown"  # the outcome (and reason code) of a call cut off by a stop
DEFAULT_GRACE: Final = 20.0  # seconds; inside Kubernetes' 30 s terminationGracePeriodSeconds


def shutdown_error(*, forwarded: bool = True) -> UpstreamError:
    """The error a cut-off call ends with: 503, reason code ``shutdown``; one that reached
    the drain before the upstream (``forwarded=False``) says it was never sent there."""
    what = "the call was cut off" if forwarded else "the call was NOT forwarded to the upstream"
    return UpstreamError(503, f"the gateway is shutting down; {what} (retry elsewhere)", SHUTDOWN)


class Drain:
    """Which requests are at the upstream, and whether the gateway is stopping.

    ``enter`` registers a cut-off callback for one request (``stream``: a GET stream, which no
    call awaits); ``begin`` starts the drain (streams are cut at once), ``cut`` ends it (every
    request still registered is cut). A request entering once the drain has begun is cut at
    once: it has not reached the upstream, and is refused unforwarded (``forward.py``).
    """

    def __init__(self) -> None:
        self.draining = False
        self.cut_off = False
        self._open: dict[int, tuple[Callable[[], None], bool]] = {}
        self._next = 0

    def enter(self, cut: Callable[[], None], *, stream: bool) -> int:
        """Register ``cut`` for one request; the token ``leave`` takes."""
        if self.draining:
            cut()
        self._next += 1
        self._open[self._next] = (cut, stream)
        return self._next

    def leave(self, token: int) -> None:
        """The request ended: forget it."""
        self._open.pop(token, None)

    @property
    def in_flight(self) -> int:
        """How many requests are still at the upstream."""
        return len(self._open)

    def begin(self) -> None:
        """Start draining: not ready any more, and every GET stream cut."""
        self.draining = True
        _run([cut for cut, stream in list(self._open.values()) if stream])

    def cut(self) -> None:
        """The grace is over: cut every request still open."""
        self.draining = self.cut_off = True
        _run([cut for cut, _ in list(self._open.values())])


def _run(cuts: list[Callable[[], None]]) -> None:
    """Call each cut-off; one that raises is logged and the others still run."""
    for cut in cuts:
        try:
            cut()
        except Exception:
            log.exception("stopping: cutting a request off failed")


async def drain_on_stop(
    drain: Drain,
    stop: asyncio.Event,
    grace: float,
    calls: asyncio.Event,
    serving: Sequence[asyncio.Future[None]],
    admin: asyncio.Event,
) -> None:
    """When ``stop`` is set: ``begin`` the drain, stop the MCP listeners (``calls``: they
    accept no more connections and wait for their requests), give those requests ``grace``
    seconds, ``cut`` what remains, and once the listeners (``serving``) are done stop the
    admin listener (``admin``), which answered ``/readyz`` 503 meanwhile."""
    await stop.wait()
    try:
        drain.begin()
        calls.set()
        started = time.monotonic()
        log.info("stopping: %d requests in flight, %gs to finish", drain.in_flight, grace)
        _, waiting = await asyncio.wait(serving, timeout=grace)
        if waiting:
            log.warning(
                "stopping: cut off %d requests still in flight after %.1fs (outcome %s)",
                drain.in_flight,
                time.monotonic() - started,
                SHUTDOWN,
            )
            drain.cut()
            await asyncio.wait(serving)
    except Exception:
        # The listeners must still stop, and the audit chain close, whatever failed here.
        log.exception("stopping: the drain failed; stopping the listeners")
        drain.cut_off = drain.draining = True
    finally:
        calls.set()
        admin.set()


__all__ = ["DEFAULT_GRACE", "SHUTDOWN", "Drain", "drain_on_stop", "shutdown_error"]
