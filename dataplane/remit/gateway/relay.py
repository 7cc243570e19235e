"""Relaying one upstream response to the client, with every JSON-RPC response hooked.

A forwarded POST's answer is JSON (read whole, each response message transformed) or an SSE
stream (split event by event as chunks arrive, response events transformed and re-emitted,
every other server message judged by ``server_message``, event ids bound to the caller by
``event_id``, everything else passed byte for byte). Each forwarded request gets exactly one
``outcome``. Responses replayed later on a GET stream (``Last-Event-ID``) are matched through
``PendingCalls``; a response that matches no known request is dropped (fail closed).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from remit.errors import UpstreamError
from remit.gateway.asgi import Receive, Send
from remit.gateway.hooks import GatewayHooks, Identity, Outcome
from remit.gateway.protocol import Message, RequestId
from remit.gateway.sse import SseSplitter, event_id, replace_data, replace_id
from remit.gateway.upstream import UpstreamResponse

log = logging.getLogger(__name__)


async def _disconnected(receive: Receive) -> None:
    """Return when the client has gone (the request body was already read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


@dataclass(frozen=True, slots=True)
class Call:
    """A forwarded request awaiting its response: the request and its decision token."""

    message: Message
    token: Any


class PendingCalls:
    """Requests forwarded in a session whose responses have not been seen, bounded LRU."""

    def __init__(self, limit: int = 10_000) -> None:
        self._calls: OrderedDict[tuple[str, RequestId], Call] = OrderedDict()
        self._limit = limit

    def add(self, session: str, call: Call) -> None:
        """Remember ``call`` until its response is relayed."""
        assert call.message.id is not None
        self._calls[(session, call.message.id)] = call
        if len(self._calls) > self._limit:
            self._calls.popitem(last=False)

    def pop(self, session: str, id_: RequestId) -> Call | None:
        """Forget and return the call answered by a response with ``id_``."""
        return self._calls.pop((session, id_), None)


class Exchange:
    """The response side of one forwarded HTTP request."""

    def __init__(
        self,
        hooks: GatewayHooks,
        identity: Identity,
        calls: dict[RequestId, Call],
        pending: PendingCalls,
        *,
        session: str | None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.hooks = hooks
        self.identity = identity
        self.calls = calls
        self.pending = pending
        self.session = session
        self.clock = clock
        self.started = clock()
        self.status = 0
        if session is not None:
            for call in calls.values():
                pending.add(session, call)

    async def message(self, value: Any) -> Any | None:
        """The decoded server message as the client may see it; None drops it."""
        if isinstance(value, list):
            out = [m for m in [await self.message(item) for item in value] if m is not None]
            return out or None
        if isinstance(value, dict) and "method" in value:  # a server notification or request
            return await self.hooks.server_message(self.identity, value)
        if not isinstance(value, dict) or "id" not in value:
            return value
        id_ = value["id"]
        if id_ is None and isinstance(value.get("error"), dict):
            return value  # an error about the whole request (e.g. a rejected batch): no data
        if not isinstance(id_, str | int):
            log.warning("dropped a response with an unusable id")
            return None
        local = self.calls.pop(id_, None)
        replayed = self.pending.pop(self.session, id_) if self.session is not None else None
        call = local or replayed
        if call is None:
            log.warning("dropped a response that answers no forwarded request (id %r)", id_)
            return None
        transformed = await self.hooks.transform(self.identity, call.message, call.token, value)
        if local is not None:
            error = value.get("error")
            reason = str(error.get("message", "error")) if isinstance(error, dict) else None
            await self._outcome(local, reason, value)
        return transformed

    async def _outcome(self, call: Call, error: str | None, response: Any = None) -> None:
        outcome = Outcome(self.status, self.clock() - self.started, error, response)
        await self.hooks.outcome(self.identity, call.message, call.token, outcome)

    async def ended(self, call: Call, status: int, error: str | None) -> None:
        """Report the end of a decided message no response answers (a notification, a GET
        stream, a DELETE): ``status`` is the upstream's HTTP status (0 if none)."""
        outcome = Outcome(status, self.clock() - self.started, error)
        await self.hooks.outcome(self.identity, call.message, call.token, outcome)

    async def fail(self, reason: str) -> None:
        """Report every still-unanswered call as failed."""
        calls, self.calls = self.calls, {}
        for call in calls.values():
            if self.session is not None and call.message.id is not None:
                self.pending.pop(self.session, call.message.id)
            await self._outcome(call, reason)

    async def relay(self, response: UpstreamResponse, send: Send, receive: Receive) -> None:
        """Send ``response`` to the client, hooking each JSON-RPC response message."""
        self.status = response.status
        try:
            if response.is_sse:
                await self._relay_sse(response, send, receive)
            elif response.is_json:
                await self._relay_json(response, send)
            else:
                await self._relay_raw(response, send)
        finally:
            response.close()
        await self._unanswered(response.status)

    async def _unanswered(self, status: int) -> None:
        """Report calls the upstream's answer did not answer."""
        if self.calls:
            await self.fail(f"upstream answered HTTP {status} without a response")

    async def _relay_json(self, response: UpstreamResponse, send: Send) -> None:
        body = await response.read()
        if body.strip():
            try:
                value = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise UpstreamError(502, "upstream sent invalid JSON") from exc
            message = await self.message(value)
            body = b"" if message is None else orjson.dumps(message)
        await self._unanswered(response.status)  # outcomes are recorded before the client hears
        headers = [*response.headers, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _relay_raw(self, response: UpstreamResponse, send: Send) -> None:
        body = await response.read()
        await self._unanswered(response.status)
        headers = [*response.headers, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _relay_sse(self, response: UpstreamResponse, send: Send, receive: Receive) -> None:
        await send(
            {"type": "http.response.start", "status": response.status, "headers": response.headers}
        )
        splitter = SseSplitter()
        gone = asyncio.create_task(_disconnected(receive))
        gone.add_done_callback(lambda _: response.close())  # ends the upstream stream too
        try:
            async for chunk in response.chunks():
                out = b"".join([await self._event(e.raw, e.data) for e in splitter.feed(chunk)])
                if out:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
        except UpstreamError as exc:
            if not gone.done():
                log.warning("upstream SSE stream failed: %s", exc.reason)
            await self.fail("client disconnected" if gone.done() else exc.reason)
        finally:
            gone.cancel()
        if not gone.done() or gone.cancelled():
            await send({"type": "http.response.body", "body": splitter.flush()})

    async def _event(self, raw: bytes, data: bytes | None) -> bytes:
        upstream_id = event_id(raw) if b"id" in raw else None
        if upstream_id:  # the caller sees an id bound to them (events.py)
            raw = replace_id(raw, await self.hooks.event_id(self.identity, upstream_id))
        if not data:
            return raw
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            return raw
        message = await self.message(value)
        if message is None:
            return b""
        return raw if message is value else replace_data(raw, orjson.dumps(message))
