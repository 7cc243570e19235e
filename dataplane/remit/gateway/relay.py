"""Relaying one upstream response to the client, with every JSON-RPC message inspected.

Nothing the gateway could not inspect reaches the client. A forwarded request's answer is
decided by its parsed media type (``UpstreamResponse.kind``): JSON is read whole within the
size and time limits, parsed (depth-bounded), each message classified strictly and each
response hooked, then written again; an SSE stream is parsed event by event as the client
would (see ``sse.py``) and each event written again canonically, as it completes, so a
stream reaches the client while the upstream still works. A JSON body is one message (or
batch) whose every byte policy may need, so it is released only once whole and inspected.
Any other body is refused from its headers, unread (``foreign.py``); a body that is not valid
JSON-RPC, or one past a limit, fails closed: the client gets the gateway's own JSON-RPC
error, never the upstream's bytes. A non-2xx upstream answer (an error page, a
traceback) is mapped to the gateway's error too; only its size and sha256 are recorded. The
exception is how 2026-07-28 answers errors: one well-formed JSON-RPC error response to the
call with HTTP 400, or 404 with -32601, relayed inspected like any response, status kept.
On every answer only the upstream headers in ``PASSED_BACK`` reach the client.

Each forwarded request gets exactly one ``outcome``, with its true end: answered, answered
with an error, failed at the upstream (reason code first), or cancelled by the client (who
may leave at any time: ``watch.py``). A cancelled outcome's detail says what is known of the
upstream's side: the error code it answered with, or that its answer was not read (``UNREAD``:
the tool may have run all the same).
Responses replayed later on a GET stream (``Last-Event-ID``) are matched through
``PendingCalls``; a response that matches no known request is dropped (fail closed).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any, Final

import orjson

from remit.errors import ClientGoneError, JsonDepthError, JsonKeyCollisionError, UpstreamError
from remit.gateway.asgi import Send
from remit.gateway.attribution import Origin
from remit.gateway.bounds import DEFAULT_LIMITS, ResponseLimits, loads
from remit.gateway.durability import decided_on_disk
from remit.gateway.eras import rejection_answers
from remit.gateway.foreign import undefined_body
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
from remit.gateway.stream import relay_sse
from remit.gateway.upstream import (
    HTTP_ERROR,
    INVALID,
    NO_RESPONSE,
    TOO_DEEP,
    UpstreamResponse,
)
from remit.gateway.watch import CANCELLED, ClientWatch

log = logging.getLogger(__name__)

_ERROR_SAMPLE: Final = 64 * 1024  # bytes of an upstream error body read for the record
# A call the client cancelled or left while its answer was unread: the upstream may still have
# run it (an outcome of ``cancelled`` says what the client did, not what the tool did).
UNREAD: Final = "the upstream's answer was not read (the call may have completed)"
_JSON: Final = (b"content-type", b"application/json")


def body_headers(response: UpstreamResponse, body: bytes, json: bool = True) -> list[Any]:
    """The headers of a body the gateway wrote itself: the upstream's that may pass
    (``PASSED_BACK``), then the gateway's own length and type."""
    kept = response.client_headers()
    return [*kept, (b"content-length", str(len(body)).encode()), *([_JSON] if json else [])]


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
        outcome = Outcome(self.status, self.clock() - self.started, error, response, kind)
        await self.hooks.outcome(self.identity, call.message, call.token, outcome)

    async def ended(
        self, call: Call, status: int, error: str | None, kind: str | None = None
    ) -> None:
        """Report the end of a decided message no response answers (a notification, a GET
        stream, a DELETE): ``status`` is the upstream's HTTP status (0 if none)."""
        outcome = Outcome(status, self.clock() - self.started, error, kind=kind)
        await self.hooks.outcome(self.identity, call.message, call.token, outcome)

    async def fail(self, reason: str, kind: str | None = None) -> list[RequestId]:
        """Report every still-unanswered call as failed (one the client cancelled: as
        cancelled); return the ids of those the client still awaits."""
        calls, self.calls = self.calls, {}
        awaited = []
        for id_, call in calls.items():
            if self.pending.cancelled(self.session, id_):
                await self._outcome(call, f"{CLIENT_CANCELLED}; {UNREAD}", kind=CANCELLED)
            else:
                detail = f"{reason}; {UNREAD}" if kind == CANCELLED else reason
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

    async def refuse(self, exc: UpstreamError, send: Send) -> None:
        """Record the failure for every unanswered call, then answer with the gateway's error."""
        await self.fail(exc.detail)
        body = error_body(self.single_id, UPSTREAM_ERROR, exc.reason, {"reason": exc.code})
        await _reply(send, exc.status, body)

    # -- relaying -------------------------------------------------------------------------

    async def relay(self, response: UpstreamResponse, send: Send, watch: ClientWatch) -> None:
        """Send ``response`` to the client, inspected; ``UpstreamError`` before anything is
        sent when it cannot be (the caller then ``refuse``s), ``ClientGoneError`` when the
        client left while the body was awaited (the upstream connection is then dropped)."""
        self.status = response.status
        self.response = response
        try:
            if not 200 <= response.status < 300:
                await self._relay_failure(response, send, watch)
            elif response.kind == "sse":
                await relay_sse(self, response, send, watch)
            elif response.kind == "json":
                await self._relay_json(response, send, watch)
            else:
                await self._relay_other(response, send)
        except ClientGoneError:
            response.abort()  # the upstream sees its connection close: the call is cancelled
            raise
        finally:
            response.close()

    async def _relay_json(self, response: UpstreamResponse, send: Send, watch: ClientWatch) -> None:
        body = await watch.race(response.read())
        if not body.strip():
            await self._relay_empty(response, send)
            return
        await self._send_json(self.decode(body), response, send)

    async def _send_json(self, value: Any, response: UpstreamResponse, send: Send) -> None:
        out = await self.message(value)
        missing = await self.fail(f"{NO_RESPONSE}: the upstream's answer held no response")
        messages = [] if out is None else out if isinstance(out, list) else [out]
        messages += [no_response(id_) for id_ in missing]
        status = 502 if out is None and missing else response.status
        if not messages:
            payload = b""
        elif isinstance(value, list) or len(messages) > 1:
            payload = orjson.dumps(messages)
        else:
            payload = orjson.dumps(messages[0])
        headers = body_headers(response, payload, json=bool(payload))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _relay_empty(self, response: UpstreamResponse, send: Send) -> None:
        if self.calls:
            text = f"upstream answered HTTP {response.status} without a response"
            raise UpstreamError(502, text, NO_RESPONSE)
        headers = body_headers(response, b"", json=False)
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def _relay_other(self, response: UpstreamResponse, send: Send) -> None:
        """A body of a type the transport does not define: refused from its headers, never
        read (``foreign.py``); an answer already known to have no body passes as one."""
        if not response.body_empty():
            raise undefined_body(response)
        await self._relay_empty(response, send)

    async def _relay_failure(
        self, response: UpstreamResponse, send: Send, watch: ClientWatch
    ) -> None:
        """A non-2xx answer: the gateway's own error; the body's size and digest recorded."""
        status = response.status
        try:
            body, note = await watch.race(response.read(_ERROR_SAMPLE)), ""
        except UpstreamError as exc:
            body, note = b"", f" (body not read: {exc.code})"
        if rejection_answers(status, response.kind, body, self.calls, self.limits):
            # a JSON-RPC error answering the call, sent with its 4xx status (2026-07-28 does
            # so): relayed like any response, inspected, its status kept
            await self._send_json(self.decode(body), response, send)
            return
        digest = hashlib.sha256(body).hexdigest()
        await self.fail(
            f"{HTTP_ERROR}: upstream answered HTTP {status}; "
            f"body {len(body)} bytes sha256:{digest}{note}"
        )
        code = _upstream_code(body) if response.kind == "json" else UPSTREAM_ERROR
        client_status = status if 400 <= status < 500 and status not in (401, 403, 407) else 502
        payload = error_body(
            self.single_id,
            code,
            f"Upstream answered HTTP {status}",
            {"reason": HTTP_ERROR, "upstreamStatus": status},
        )
        await _reply(send, client_status, payload, response.client_headers())


def _answered_error(value: dict[str, Any]) -> str:
    """The outcome detail of a cancelled call the upstream answered with an error: its code
    kept (the tool may have run and failed, or acknowledged the cancellation)."""
    error = value.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    shown = code if isinstance(code, int) and not isinstance(code, bool) else "(no code)"
    return f"{CLIENT_CANCELLED}; the upstream answered with JSON-RPC error {shown}"


def no_response(id_: RequestId) -> dict[str, Any]:
    """The gateway's JSON-RPC error for a request the upstream did not answer."""
    text = "Upstream answered without a response to this request"
    return error_response(id_, error_object(UPSTREAM_ERROR, text, {"reason": NO_RESPONSE}))


def _own_error(value: dict[str, Any]) -> dict[str, Any]:
    """The gateway's error in place of an upstream error that names no request: a standard
    code is kept, the upstream's message and data never pass (they may hold internals)."""
    error = value.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    kept = code if isinstance(code, int) and -32768 <= code <= -32000 else UPSTREAM_ERROR
    return error_response(
        None, error_object(kept, "Upstream reported an error", {"reason": HTTP_ERROR})
    )


def _upstream_code(body: bytes) -> int:
    """The upstream's JSON-RPC error code when it is a standard one (e.g. -32600, -32001), so
    clients keep reacting to it; the upstream's message and data never pass."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return UPSTREAM_ERROR
    if server_message_kind(value) == "response" and "error" in value:
        code = value["error"]["code"]
        if -32768 <= code <= -32000:
            return int(code)
    return UPSTREAM_ERROR


async def _reply(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    out = [*(headers or []), (b"content-length", str(len(body)).encode()), _JSON]
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body})
