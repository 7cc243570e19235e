"""Relaying an upstream SSE stream: every event parsed, inspected and written again.

The stream is parsed as a client parses it (``sse.py``); each event's data must be empty (a
priming event) or one JSON-RPC message or batch, which goes through ``Exchange.message``
(responses hooked, malformed or unmatched messages dropped) and is written again as one
canonical event. The stream is bounded: one event may not exceed ``max_response_bytes``; on a
POST, the upstream must complete an event within ``read_timeout`` (on a GET stream, an event
once begun must complete within it), and the relay ends once every request is answered. A
GET stream ends cleanly after ``exchange.lifetime`` seconds, and a stream answering a POST of
only notifications after ``exchange.idle_timeout`` seconds without an event; either sets
``exchange.closed`` (``stream_closed: ...``) for the record (``quotas.py``).
When the stream fails or ends early, each request still unanswered gets its outcome and, in
the stream, the gateway's own JSON-RPC error, so no client waits on a stream that is gone. A
client that left (its disconnect seen, even in the same loop pass as the stream's end, or a
send refused with ``OSError`` as ASGI says, which ``forward.Sender`` turns into
``ClientGoneError``) ends the relay with ``ClientGoneError`` instead, and no error event: the
caller records each open call, and a GET stream, ``cancelled``. A stopping gateway that
cuts the request off (``drain.py``) ends the upstream stream the same way; each open call
then gets its ``shutdown`` outcome and error event, and the stream ends; a send the client
is not taking (it stopped reading) is cancelled by the cut, and then no error event is
written: the outcomes are recorded and the stream ends.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final

import orjson

from remit.errors import ClientGoneError, SseEventTooLargeError, UpstreamError
from remit.gateway.drain import shutdown_error
from remit.gateway.protocol import UPSTREAM_ERROR, error_object, error_response
from remit.gateway.sse import SseEvent, SseParser, encode_event
from remit.gateway.upstream import NO_RESPONSE, TIMEOUT, TOO_LARGE, UpstreamResponse
from remit.policy.decision import Reason

if TYPE_CHECKING:
    from remit.gateway.asgi import Send
    from remit.gateway.exchange import Exchange
    from remit.gateway.watch import ClientWatch

log = logging.getLogger(__name__)
STREAM_CLOSED: Final = Reason.STREAM_CLOSED

# The gateway writes the stream, so it says how to carry it: never cached nor transformed,
# never buffered by a reverse proxy (nginx), as the MCP transport asks of an SSE stream.
_STREAM_HEADERS: Final = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]


async def relay_sse(
    exchange: Exchange, response: UpstreamResponse, send: Send, watch: ClientWatch
) -> None:
    """Relay ``response`` (an event stream) to the client, event by event."""
    parser = SseParser(exchange.limits.max_response_bytes)
    headers = [(k, v) for k, v in response.client_headers() if k != b"cache-control"]
    headers += _STREAM_HEADERS
    watch.on_gone(response.abort)  # ends the upstream stream too
    out = _CutSend(send, response, watch)
    failure: UpstreamError | None = None
    try:
        await out({"type": "http.response.start", "status": response.status, "headers": headers})
        out.gated = True  # once cut off, no more of the stream reaches the client
        await _pump(exchange, response, parser, out)
        if exchange.closed is not None:
            response.abort()  # the upstream sees the stream end too
    except UpstreamError as exc:
        failure = exc
    except SseEventTooLargeError as exc:
        failure = UpstreamError(502, f"upstream sent {exc}", TOO_LARGE)
    except asyncio.CancelledError:
        if not out.stopped:
            raise
        task = asyncio.current_task()
        assert task is not None
        task.uncancel()  # the cut's own cancellation of a send the client did not take
    if watch.cut and not (exchange.awaits_responses and not exchange.calls):
        failure = shutdown_error()  # whatever the aborted stream raised, if anything
        exchange.cut = True
    # A disconnect woken in the same loop pass as the stream's end is seen before the stream,
    # an unanswered call or a failure gets its outcome (``ClientWatch.left``); only a POST
    # stream whose every request was answered has nothing left to record.
    answered = exchange.awaits_responses and not exchange.calls and failure is None
    if watch.gone or (not answered and await watch.left()):
        raise ClientGoneError  # the caller records each open call, and a GET stream, cancelled
    if failure is not None:
        log.warning("upstream SSE stream failed: %s", failure.detail)
        code, reason = failure.code, failure.detail
        exchange.failed = failure.detail  # a stream no call awaits still records how it ended
    else:
        code, reason = NO_RESPONSE, f"{NO_RESPONSE}: the upstream's stream ended without one"
    missing = await exchange.fail(reason)
    if out.stopped:
        return  # the client took no send: the outcomes are recorded, no tail is written
    text = "Upstream stream failed" if failure is not None else "Upstream stream ended early"
    if exchange.cut:
        text = "The gateway is shutting down; the call was cut off"
    tail = b"".join(_error_event(id_, text, code) for id_ in missing)
    await send({"type": "http.response.body", "body": tail})


class _CutSend:
    """``send`` for a stream a stopping gateway may cut off (``drain.py``). The cut drops the
    upstream stream, and a send the client is not taking (it stopped reading) is cancelled
    (``stopped``): else the relay would wait in it until the server's backstop cancels the
    request, and its open calls would end with no outcome. Once ``gated``, a send after the
    cut raises the shutdown ``UpstreamError`` instead of writing more of the stream."""

    __slots__ = ("gated", "response", "send", "sending", "stopped", "task", "watch")

    def __init__(self, send: Send, response: UpstreamResponse, watch: ClientWatch) -> None:
        self.send, self.response, self.watch = send, response, watch
        self.task = asyncio.current_task()
        self.gated = self.sending = self.stopped = False
        watch.on_cut(self._cut)

    def _cut(self) -> None:
        self.response.abort()
        if self.sending and not self.stopped and self.task is not None:
            self.stopped = True
            self.task.cancel()

    async def __call__(self, message: dict[str, Any]) -> None:
        if self.gated and self.watch.cut:
            raise shutdown_error()
        self.sending = True
        try:
            await self.send(message)
        finally:
            self.sending = False


async def _pump(
    exchange: Exchange, response: UpstreamResponse, parser: SseParser, send: Send
) -> None:
    """Move events until the stream ends, or (on a POST) every request is answered."""
    timeout = exchange.limits.read_timeout
    awaiting = bool(exchange.calls)
    loop = asyncio.get_running_loop()
    progress = pending_since = loop.time()
    idle = exchange.idle_timeout if not awaiting else None
    ends = None if exchange.lifetime is None else progress + exchange.lifetime
    while not (awaiting and not exchange.calls):
        if awaiting:
            deadline: float | None = progress + timeout
        else:
            deadline = pending_since + timeout if parser.pending else None
        closing = _closing(progress, idle, ends, deadline)
        if closing is not None:
            deadline, why = closing
        was_pending = parser.pending
        try:
            chunk = await response.next_chunk(
                None if deadline is None else max(deadline - loop.time(), 0.0)
            )
        except UpstreamError as exc:
            if closing is None or exc.code != TIMEOUT:
                raise
            exchange.closed = f"{STREAM_CLOSED}: {why}"
            return
        if not chunk:
            return
        events = parser.feed(chunk)
        now = loop.time()
        if events:
            progress = now
        if parser.pending and (events or not was_pending):
            pending_since = now
        out: list[bytes] = []
        for event in events:
            out.append(await _event(exchange, event))
            if awaiting and not exchange.calls:
                break  # every request answered: what follows belongs to no call
        if any(out):
            await send({"type": "http.response.body", "body": b"".join(out), "more_body": True})


def _closing(
    progress: float, idle: float | None, ends: float | None, deadline: float | None
) -> tuple[float, str] | None:
    """When the gateway itself closes the stream, and why, if that comes before ``deadline``
    (the upstream's own timeout, which fails the stream instead)."""
    options = []
    if idle is not None:
        options.append((progress + idle, f"no event for {idle:g}s on a stream no call awaits"))
    if ends is not None:
        options.append((ends, "the stream reached its lifetime; resume with Last-Event-ID"))
    if not options:
        return None
    chosen = min(options)
    return chosen if deadline is None or chosen[0] < deadline else None


async def _event(exchange: Exchange, event: SseEvent) -> bytes:
    """One event as the client may see it (b"" drops it); ``UpstreamError`` if its data
    cannot be inspected (then the stream ends)."""
    if event.id:  # the caller sees an id bound to them (events.py)
        event = replace(event, id=await exchange.hooks.event_id(exchange.identity, event.id))
    if not event.data:
        return encode_event(event, event.data)  # no data, or a priming event's empty data
    message = await exchange.message(exchange.decode(event.data))
    if message is None:
        return b""
    return encode_event(event, orjson.dumps(message).decode())


def _error_event(id_: Any, text: str, code: str) -> bytes:
    error = error_response(id_, error_object(UPSTREAM_ERROR, text, {"reason": code}))
    return encode_event(SseEvent(), orjson.dumps(error).decode())
