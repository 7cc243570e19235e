"""The response side of one forwarded request: which calls await an answer, how each server
message the upstream sends is inspected, and the one outcome each call gets.

``relay.py`` moves the upstream's body to the client (JSON whole, SSE event by event through
``stream.py``); everything it reads goes through ``Exchange.message``: a response is matched
to the request it answers (a local call, or one replayed on a GET stream through
``PendingCalls``, whose own decision must be on disk first: ``durability.py``), hooked
(``transform``) and its call's outcome recorded; a server notification or request goes to
``server_message``; a malformed message, or a response that matches no known request, is
dropped (fail closed). An upstream error that names no request becomes the gateway's own.

Each forwarded request gets exactly one ``outcome``, with its true end: answered, answered
with an error, failed at the upstream (reason code first), or cancelled by the client (who
may leave at any time: ``watch.py``). A cancelled outcome's detail says what is known of the
upstream's side: the error code it answered with, or that its answer was not read (``UNREAD``:
the tool may have run all the same).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Final

import orjson

from remit.errors import JsonDepthError, JsonKeyCollisionError, UpstreamError
from remit.gateway.asgi import Send, reply
from remit.gateway.attribution import Origin
from remit.gateway.bounds import DEFAULT_LIMITS, ResponseLimits, loads
from remit.gateway.drain import SHUTDOWN
from remit.gateway.durability import decided_on_disk
from remit.gateway.hooks import GatewayHooks, Identity, Outcome
from remit.gateway.pending import CLIENT_CANCELLED, Call, PendingCalls
from remit.gateway.protocol import (
    UPSTREAM_ERROR,
    RequestId,
    error_body,
    error_object,
    error_response,
    server_message_kind,
)
from remit.gateway.upstream import HTTP_ERROR, INVALID, TOO_DEEP, UpstreamResponse
from remit.gateway.watch import CANCELLED

log = logging.getLogger(__name__)

# A call the client cancelled or left while its answer was unread: the upstream may still have
# run it (an outcome of ``cancelled`` says what the client did, not what the tool did).
UNREAD: Final = "the upstream's answer was not read (the call may have completed)"


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
        limits: ResponseLimits = DEFAULT_LIMITS,
        clock: Callable[[], float] = time.perf_counter,
        standalone: bool = False,
    ) -> None:
        self.hooks = hooks
        self.origin = Origin(session, standalone)  # where server messages arrive (a GET stream?)
        self.lifetime: float | None = None  # a stream closed after this many seconds (GET)
        self.idle_timeout: float | None = None  # ... or this long without an event (notices)
        self.closed: str | None = None  # why the gateway closed the stream, if it did
        self.failed: str | None = None  # why the upstream's stream failed, if it did
        self.cut = False  # the stopping gateway cut the request off: outcomes are ``shutdown``
        self.awaits_responses = bool(calls)  # False: a GET, DELETE, or notices-only POST
        self.identity = identity
        self.calls = calls
        self.pending = pending
        self.session = session
        self.limits = limits
        self.clock = clock
        self.started = clock()
        self.status = 0
        self.single_id: RequestId | None = next(iter(calls)) if len(calls) == 1 else None
        self.response: UpstreamResponse | None = None  # the answer being relayed
        self.cancels: list[RequestId] = []  # requests the body's notifications/cancelled name
        if session is not None:
            for call in calls.values():
                pending.add(session, call, self._cancelled)

    # -- messages -------------------------------------------------------------------------

    def decode(self, data: bytes | str) -> Any:
        """Parse upstream JSON within the depth limit; ``UpstreamError`` if it cannot be."""
        try:
            return loads(data, self.limits.max_json_depth)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(502, "upstream sent invalid JSON", INVALID) from exc
        except JsonDepthError as exc:
            raise UpstreamError(502, f"upstream sent {exc}", TOO_DEEP) from exc
        except JsonKeyCollisionError as exc:
            raise UpstreamError(502, f"upstream sent a {exc}", INVALID) from exc

    async def message(self, value: Any) -> Any | None:
        """The decoded server message(s) as the client may see them; None drops them."""
        if isinstance(value, list):
            out = [m for m in [await self._one(item) for item in value] if m is not None]
            return out or None
        return await self._one(value)

    async def _one(self, value: Any) -> Any | None:
        kind = server_message_kind(value)
        if kind is None:
            log.warning("dropped a malformed JSON-RPC message from the upstream")
            return None
        if kind != "response":  # a server notification or request: the caller may not see all
            return await self.hooks.server_message(self.identity, value, self.origin)
        id_ = value["id"]
        if id_ is None:  # an error about the whole request (e.g. a rejected batch)
            return _own_error(value)
        cancelled = self.pending.cancelled(self.session, id_)
        local = self.calls.pop(id_, None)
        replayed = self.pending.pop(self.session, id_) if self.session is not None else None
        call = local or replayed
        if call is None:
            log.warning("dropped a response that answers no forwarded request (id %r)", id_)
            return None
        if local is None and not await decided_on_disk(call):  # not under this stream's gate
            return None
        transformed = await self.hooks.transform(self.identity, call.message, call.token, value)
        if local is not None and cancelled and "error" in value:  # the client gave up on it
            await self._outcome(local, _answered_error(value), kind=CANCELLED)
        elif local is not None:  # a JSON-RPC error is an answer, not an upstream failure
            await self._outcome(local, None, value)
        return transformed

    # -- outcomes -------------------------------------------------------------------------

    async def _outcome(
        self, call: Call, error: str | None, response: Any = None, kind: str | None = None
    ) -> None:
        kind = kind or (SHUTDOWN if self.cut and response is None else None)
        outcome = Outcome(self.status, self.clock() - self.started, error, response, kind)
        await self.hooks.outcome(self.identity, call.message, call.token, outcome)

    async def ended(
        self, call: Call, status: int, error: str | None, kind: str | None = None
    ) -> None:
        """Report the end of a decided message no response answers (a notification, a GET
        stream, a DELETE): ``status`` is the upstream's HTTP status (0 if none)."""
        kind = kind or (SHUTDOWN if self.cut else None)
        outcome = Outcome(status, self.clock() - self.started, error, kind=kind)
        await self.hooks.outcome(self.identity, call.message, call.token, outcome)

    async def fail(
        self, reason: str, kind: str | None = None, *, sent: bool = True
    ) -> list[RequestId]:
        """Report every still-unanswered call as failed (one the client cancelled: as
        cancelled); return the ids of those the client still awaits. ``sent``: the calls
        reached the upstream (a cut or cancelled one's answer then went unread)."""
        calls, self.calls = self.calls, {}
        kind = kind or (SHUTDOWN if self.cut else None)
        awaited = []
        for id_, call in calls.items():
            if self.pending.cancelled(self.session, id_):
                await self._outcome(call, f"{CLIENT_CANCELLED}; {UNREAD}", kind=CANCELLED)
            else:
                unread = sent and kind in (CANCELLED, SHUTDOWN)
                detail = f"{reason}; {UNREAD}" if unread else reason
                await self._outcome(call, detail, kind=kind)
                awaited.append(id_)
            if self.session is not None:
                self.pending.pop(self.session, id_)
        return awaited

    def _cancelled(self) -> None:
        """The upstream accepted the cancellation of one of the calls: once the client
        awaits none of them, stop relaying (the upstream connection closes)."""
        if (
            self.response is not None
            and self.calls
            and all(self.pending.cancelled(self.session, id_) for id_ in self.calls)
        ):
            self.response.abort()

    async def refuse(self, exc: UpstreamError, send: Send, *, sent: bool = True) -> None:
        """Record the failure for every unanswered call, then answer with the gateway's error
        (``sent``: whether the request reached the upstream)."""
        self.cut = self.cut or exc.code == SHUTDOWN
        await self.fail(exc.detail, sent=sent)
        body = error_body(self.single_id, UPSTREAM_ERROR, exc.reason, {"reason": exc.code})
        await reply(send, exc.status, body)


def _answered_error(value: dict[str, Any]) -> str:
    """The outcome detail of a cancelled call the upstream answered with an error: its code
    kept (the tool may have run and failed, or acknowledged the cancellation)."""
    error = value.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    shown = code if isinstance(code, int) and not isinstance(code, bool) else "(no code)"
    return f"{CLIENT_CANCELLED}; the upstream answered with JSON-RPC error {shown}"


def _own_error(value: dict[str, Any]) -> dict[str, Any]:
    """The gateway's error in place of an upstream error that names no request: a standard
    code is kept, the upstream's message and data never pass (they may hold internals)."""
    error = value.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    kept = code if isinstance(code, int) and -32768 <= code <= -32000 else UPSTREAM_ERROR
    return error_response(
        None, error_object(kept, "Upstream reported an error", {"reason": HTTP_ERROR})
    )


__all__ = ["UNREAD", "Exchange"]
