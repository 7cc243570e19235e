"""Forwarding one decided HTTP request upstream and relaying its answer, every end recorded.

The proxy (``proxy.py``) decides; this module sends and reports how each decided message
ended: an upstream that cannot be reached, a notification the upstream accepted or refused,
a session it issued (bound to the caller) or ended, an answer relayed (``relay.py``; each
call's outcome in ``exchange.py``) or refused, and a client that left before its answer
(``watch.py``): then each open call ends ``cancelled`` and the upstream connection is closed.
A ``notifications/cancelled`` it carries marks the session's request it names cancelled
(``pending.py``). Nothing reaches the client before the request's decision records are on
disk (``durability.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final

from remit.errors import ClientGoneError, ProtocolError, UpstreamError
from remit.gateway.asgi import Send
from remit.gateway.drain import SHUTDOWN, shutdown_error
from remit.gateway.durability import gated
from remit.gateway.exchange import Exchange
from remit.gateway.hooks import GatewayHooks, HttpRequest, Identity
from remit.gateway.pending import Call
from remit.gateway.protocol import INTERNAL_ERROR, SESSION_HEADER
from remit.gateway.relay import relay
from remit.gateway.sessions import MAX_SESSION_ID_CHARS, valid_session_id
from remit.gateway.stream import STREAM_CLOSED
from remit.gateway.upstream import HTTP_ERROR, Upstream, UpstreamResponse
from remit.gateway.watch import CANCELLED, CLIENT_GONE, ClientWatch
from remit.policy.decision import Reason

log = logging.getLogger(__name__)
CLOSED: Final = "closed"  # the outcome of a stream the gateway ended (its lifetime, idle time)


class Sender:
    """Wraps ``send`` to know whether a response has started (then no error can be sent),
    and to turn a send the server refuses with ``OSError`` (ASGI: the client closed the
    connection; it may say so before ``http.disconnect`` is seen) into ``ClientGoneError``:
    the client left, which is no internal error, and whatever outcome was recorded before
    the send stays the only one."""

    __slots__ = ("send", "started")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False

    async def __call__(self, message: dict[str, Any]) -> None:
        self.started = True
        try:
            await self.send(message)
        except OSError as exc:
            raise ClientGoneError from exc


async def forward(
    upstream: Upstream,
    hooks: GatewayHooks,
    request: HttpRequest,
    identity: Identity,
    session: str | None,
    exchange: Exchange,
    notices: Sequence[Call],
    stream: Call | None,
    headers: Any,
    body: bytes | None,
    send: Send,
    watch: ClientWatch,
) -> None:
    """Send the decided request upstream and relay its answer. ``exchange.calls`` are
    answered by responses; ``notices`` (decided notifications) end when the upstream accepts
    the POST; ``stream`` (a GET or DELETE) ends with its response; a client that leaves
    (``watch``) ends every open one ``cancelled``."""
    ends = [*notices, *([stream] if stream else [])]
    send = gated(send, [*exchange.calls.values(), *ends])  # decisions on disk first
    cancels = exchange.pending.cancel(session, exchange.cancels) if session is not None else []
    unsent = watch.cut
    try:
        response = await _send(upstream, request.method, headers, body, exchange, watch)
    except ClientGoneError:
        exchange.pending.settle(cancels, accepted=False)
        await _cancelled(exchange, ends)
        return
    except UpstreamError as exc:
        exchange.pending.settle(cancels, accepted=False)
        log.warning("upstream failed for %s: %s", request.method, exc.detail)
        exchange.cut = exc.code == SHUTDOWN
        for call in ends:
            await exchange.ended(call, 0, exc.detail)
        await exchange.refuse(exc, send, sent=not unsent)
        return
    issued = response.header(SESSION_HEADER.encode())
    if issued is not None and not valid_session_id(issued):
        await _invalid_session(exchange, hooks, request, identity, ends, response.status, send)
        response.abort()
        return
    for call in notices:  # the upstream answered the POST: that is all a notification gets
        failed = None if 200 <= response.status < 300 else _http_error(response.status)
        await exchange.ended(call, response.status, failed)
    exchange.pending.settle(cancels, accepted=200 <= response.status < 300)  # pending.py
    if issued is not None and issued != session and 200 <= response.status < 300:
        await hooks.bind_session(identity, issued)
    if request.method == "DELETE" and session is not None and 200 <= response.status < 300:
        # Forget the session before the client hears it ended: no window where it lingers.
        await hooks.end_session(identity, session)
    sender = Sender(send)
    try:
        await relay(exchange, response, sender, watch)
    except ClientGoneError:
        await _cancelled(exchange, [stream] if stream else [], response.status)
        return
    except UpstreamError as exc:
        log.warning("upstream answer refused for %s: %s", request.method, exc.detail)
        exchange.cut = exc.code == SHUTDOWN
        if stream is not None:
            await exchange.ended(stream, response.status, exc.detail)
        if sender.started:
            await exchange.fail(exc.detail)
            return
        await exchange.refuse(exc, send)
        return
    if stream is not None:
        failed = exchange.failed or (
            None if response.status < 400 else _http_error(response.status)
        )
        kind = SHUTDOWN if exchange.cut else CLOSED if exchange.closed is not None else None
        await exchange.ended(stream, response.status, exchange.closed or failed, kind=kind)
    elif not exchange.awaits_responses and (exchange.closed or exchange.failed):
        # a POST of notifications whose event stream the gateway closed, or that failed
        why = exchange.closed or exchange.failed or ""
        closed = ProtocolError(INTERNAL_ERROR, why, 200, reason=STREAM_CLOSED)
        await hooks.refuse(identity, request, closed)


async def _send(
    upstream: Upstream,
    method: str,
    headers: Any,
    body: bytes | None,
    exchange: Exchange,
    watch: ClientWatch,
) -> UpstreamResponse:
    """The upstream's answer to the request; never sent once the drain has begun (the request
    is cut at once, ``drain.py``): then the shutdown error saying it was not forwarded."""
    if watch.cut:
        raise shutdown_error(forwarded=False)
    return await watch.race(upstream.send(method, headers, body, exchange.limits))


async def _invalid_session(
    exchange: Exchange,
    hooks: GatewayHooks,
    request: HttpRequest,
    identity: Identity,
    ends: Sequence[Call],
    status: int,
    send: Send,
) -> None:
    """The upstream issued a session id the gateway will not bind nor relay: every decided
    message ends with ``invalid_session_id`` (a refusal record if none was decided)."""
    text = (
        f"upstream issued an invalid {SESSION_HEADER} (1-{MAX_SESSION_ID_CHARS} visible ASCII "
        "characters required)"
    )
    exc = UpstreamError(502, text, Reason.INVALID_SESSION_ID)
    log.warning("%s", exc.detail)
    if not ends and not exchange.calls:
        error = ProtocolError(INTERNAL_ERROR, exc.detail, 502, reason=Reason.INVALID_SESSION_ID)
        await hooks.refuse(identity, request, error)
    for call in ends:
        await exchange.ended(call, status, exc.detail)
    await exchange.refuse(exc, send)


async def _cancelled(exchange: Exchange, ends: Sequence[Call], status: int = 0) -> None:
    """The client left before its answer: each call still open ends ``cancelled``."""
    for call in ends:
        await exchange.ended(call, status, CLIENT_GONE, kind=CANCELLED)
    await exchange.fail(CLIENT_GONE, kind=CANCELLED)


def _http_error(status: int) -> str:
    """The outcome error of a notification or stream the upstream refused."""
    return f"{HTTP_ERROR}: upstream answered HTTP {status}"
