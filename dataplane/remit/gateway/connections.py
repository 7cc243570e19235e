"""Connection limits the HTTP server does not enforce itself, in uvicorn's httptools protocol.

Uvicorn with httptools times out only idle keep-alive connections: a client that trickles its
headers (slowloris) or its body is never closed, headers are unbounded in size and count, and
its ``limit_concurrency`` counts open connections together with requests. ``LimitedProtocol``
adds, per listener (the MCP port and the admin port each have their own):

- an idle timeout before the first byte of a request (keep-alive included), closed silently;
- a header deadline from the first byte of a request to the end of its headers (408);
- a body deadline from the end of the headers to the end of the body (408);
- at most ``max_header_bytes`` of request line and headers and ``max_headers`` headers (431);
- at most ``max_connections`` open connections: a new one beyond it closes the connection that
  has waited longest without a request in progress (idle or still sending headers), or, if
  every connection has a request in progress, is answered 503 and closed;
- at most ``max_concurrent_requests`` requests in the app at once; more are answered 503 with
  ``Retry-After`` without reading their body;
- at most ``MAX_PIPELINED`` requests pipelined behind the one in progress (uvicorn queues them
  without bound): the connection is refused (503) and closed.

Every refusal is counted through ``on_refusal(reason)`` (the gateway's metrics), and every
answered one is also handed to ``record(reason, message, client)`` (the gateway's decision log,
aggregated per source like other unauthenticated refusals): a request llhttp rejects before
uvicorn sees it (a duplicate ``Content-Length``, a malformed request line) is answered 400
here, and recorded with the parser's own description. Time is the event loop's clock; nothing
here sleeps. The header and body deadlines are fixed when the headers (or body) begin, but a
timer is armed only when a read ends with them still incomplete: a request that arrives in
one read (nearly all) costs no timer. A response is written in one piece (``coalesced.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from remit.errors import RemitError
from remit.gateway.coalesced import CoalescingCycle

Refusal = Callable[[str], None]
Record = Callable[[str, str, Any], None]


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Limits of one listener; see the module docstring (times in seconds)."""

    max_connections: int = 1024
    max_concurrent_requests: int = 256
    idle_timeout: float = 5.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100


ADMIN_LIMITS = ConnectionLimits(max_connections=32, max_concurrent_requests=16)
MAX_PIPELINED = 16  # requests queued behind the one in progress on one connection


class _RefusedError(RemitError):
    """Raised inside a parser callback to stop parsing; the refusal is on the protocol."""


def protocol_class(
    limits: ConnectionLimits, on_refusal: Refusal, *, jsonrpc: bool, record: Record | None = None
) -> type[HttpToolsProtocol]:
    """A ``LimitedProtocol`` subclass bound to one listener's limits (for ``uvicorn.Config``)."""
    attributes: dict[str, Any] = {
        "limits": limits,
        "on_refusal": staticmethod(on_refusal),
        "jsonrpc": jsonrpc,
    }
    if record is not None:
        attributes["record"] = staticmethod(record)
    return type("BoundLimitedProtocol", (LimitedProtocol,), attributes)


def error_body(message: str, *, jsonrpc: bool) -> bytes:
    """A refusal's body: a JSON-RPC error on the MCP port, ``{"error"}`` on the admin port."""
    if jsonrpc:
        error = {"code": -32600, "message": message}
        return orjson.dumps({"jsonrpc": "2.0", "id": None, "error": error})
    return orjson.dumps({"error": message})


class LimitedProtocol(HttpToolsProtocol):
    """Uvicorn's httptools protocol with the limits above (bound by ``protocol_class``)."""

    limits: ConnectionLimits = ConnectionLimits()
    jsonrpc: bool = True

    @staticmethod
    def on_refusal(reason: str) -> None:
        """Count a refusal (replaced by ``protocol_class``)."""

    @staticmethod
    def record(reason: str, message: str, client: Any) -> None:
        """Record an answered refusal (replaced by ``protocol_class``)."""

    def _refused(self, reason: str) -> None:
        self.on_refusal(reason)
        self._reason = reason

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._app = self.app
        self.limit_concurrency = None  # ours counts requests only, not connections
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._in_head = False
        self._head_bytes = 0
        self._head_size = 0
        self._body_done = True
        self._head_deadline = 0.0
        self._body_deadline = 0.0
        self._refusal: tuple[int, str, str] | None = None
        self._reason = ""
        self.waiting_since = 0.0

    # -- connection lifecycle -------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.waiting_since = self.loop.time()
        if len(self.connections) > self.limits.max_connections and self._over_limit():
            victim = self._longest_waiting()
            if victim is None:
                self._refused("too_many_connections")
                self._respond_and_close(503, "Too many connections; retry later")
                return
            self.on_refusal("evicted_waiting")
            victim.transport.close()
        self.timeout_keep_alive_task = self.loop.call_later(
            self.limits.idle_timeout, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def _over_limit(self) -> bool:
        """More connections open than allowed, not counting those already closing."""
        open_ = sum(1 for other in self.connections if not other.transport.is_closing())
        return open_ > self.limits.max_connections

    def _longest_waiting(self) -> LimitedProtocol | None:
        """The other connection without a request in progress that has waited longest."""
        best: LimitedProtocol | None = None
        for other in self.connections:
            if (
                other is self
                or not isinstance(other, LimitedProtocol)
                or not other.waiting
                or other.transport.is_closing()
            ):
                continue
            if best is None or other.waiting_since < best.waiting_since:
                best = other
        return best

    @property
    def waiting(self) -> bool:
        """No request of this connection is in the app (idle, or still sending headers)."""
        cycle = self.cycle
        return (cycle is None or cycle.response_complete) and not self.pipeline

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self.waiting_since = self.loop.time()

    # -- reading --------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        # The idle timer stops when a request begins, not on any byte: blank lines keep no
        # connection open.
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            if self._refusal is None:
                self._refused("malformed")
                self._respond_and_close(400, f"Invalid HTTP request: {str(exc)[:200]}")
            else:
                self._refuse()
            return
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._refusal = (431, "header_too_large", self._too_large())
                self._refuse()
            elif self._head_timer is None:
                self._head_timer = self.loop.call_at(self._head_deadline, self._head_timed_out)
        elif not self._body_done and self._body_timer is None and not self.transport.is_closing():
            self._body_timer = self.loop.call_at(self._body_deadline, self._body_timed_out)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._unset_keepalive_if_required()
        self._in_head = True
        self._head_bytes = 0
        self._head_size = 0
        self._body_done = False
        self._cancel("_head_timer")
        self._head_deadline = self.loop.time() + self.limits.header_timeout  # armed on demand

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._grow(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        if len(self.headers) > self.limits.max_headers:
            message = f"More than {self.limits.max_headers} request headers"
            self._refusal = (431, "too_many_headers", message)
            raise _RefusedError
        self._grow(len(name) + len(value) + 4)

    def _grow(self, size: int) -> None:
        self._head_size += size
        if self._head_size > self.limits.max_header_bytes:
            self._refusal = (431, "header_too_large", self._too_large())
            raise _RefusedError

    def _too_large(self) -> str:
        return f"Request line and headers exceed {self.limits.max_header_bytes} bytes"

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel("_head_timer")
        if len(self.pipeline) >= MAX_PIPELINED:
            message = f"More than {MAX_PIPELINED} pipelined requests"
            self._refusal = (503, "pipelined", message)
            raise _RefusedError
        busy = len(self.tasks) >= self.limits.max_concurrent_requests
        if busy:
            self.on_refusal("busy")
        self.app = self._busy if busy else self._app
        super().on_headers_complete()
        cycle = self.cycle
        if type(cycle) is RequestResponseCycle and not cycle.response_started:
            cycle.__class__ = CoalescingCycle  # its task has not run yet
        self._cancel("_body_timer")
        self._body_deadline = self.loop.time() + self.limits.body_timeout  # armed on demand

    def on_message_complete(self) -> None:
        self._body_done = True
        self._cancel("_body_timer")
        super().on_message_complete()

    # -- timers ---------------------------------------------------------------------------

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self._refused("header_timeout")
            timeout = self.limits.header_timeout
            self._respond_and_close(408, f"Request headers not received within {timeout:g} s")

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self._body_done or self.transport.is_closing():
            return
        self._refused("body_timeout")
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            timeout = self.limits.body_timeout
            self._respond_and_close(408, f"Request body not received within {timeout:g} s")
        else:
            self.transport.close()

    def _cancel(self, name: str) -> None:
        timer: asyncio.TimerHandle | None = getattr(self, name)
        if timer is not None:
            timer.cancel()
            setattr(self, name, None)

    def _cancel_timers(self) -> None:
        self._cancel("_head_timer")
        self._cancel("_body_timer")

    # -- answers --------------------------------------------------------------------------

    def _refuse(self) -> None:
        assert self._refusal is not None
        status, reason, message = self._refusal
        self._refused(reason)
        self._respond_and_close(status, message)

    def _respond_and_close(self, status: int, message: str) -> None:
        """Write a complete response, close the connection, and end any request in the app."""
        self._cancel_timers()
        self._in_head = False
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's receive() returns http.disconnect
            cycle.message_event.set()
        if self.transport.is_closing():
            return
        if self._reason:
            self.record(self._reason, message, self.client)
            self._reason = ""
        if cycle is None or cycle.response_complete or not cycle.response_started:
            body = error_body(message, jsonrpc=self.jsonrpc)
            head = [
                STATUS_LINE[status],
                b"content-type: application/json\r\n",
                b"content-length: %d\r\n" % len(body),
                b"connection: close\r\n\r\n",
            ]
            self.transport.write(b"".join(head) + body)
        self.transport.close()

    async def _busy(self, scope: Any, receive: Any, send: Any) -> None:
        """The app for a request over ``max_concurrent_requests``: 503, body unread."""
        limit = self.limits.max_concurrent_requests
        message = f"More than {limit} requests in progress; retry later"
        self.record("busy", message, scope.get("client"))
        body = error_body(message, jsonrpc=self.jsonrpc)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", b"1"),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})
