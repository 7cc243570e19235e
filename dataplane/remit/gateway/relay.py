"""Relaying one upstream response to the client, with every JSON-RPC message inspected.

Nothing the gateway could not inspect reaches the client. A forwarded request's answer is
decided by its parsed media type (``UpstreamResponse.kind``): JSON is read whole within the
size and time limits, parsed (depth-bounded), each message classified strictly and each
response hooked (``Exchange.message``, ``exchange.py``), then written again; an SSE stream is
parsed event by event as the client would (see ``sse.py``) and each event written again
canonically, as it completes (``stream.py``), so a stream reaches the client while the
upstream still works. A JSON body is one message (or batch) whose every byte policy may need,
so it is released only once whole and inspected. Any other body is refused from its headers,
unread (``foreign.py``); a body that is not valid JSON-RPC, or one past a limit, fails closed:
the client gets the gateway's own JSON-RPC error, never the upstream's bytes. A non-2xx
upstream answer (an error page, a traceback) is mapped to the gateway's error too; only its
size and sha256 are recorded. The exception is how 2026-07-28 answers errors: one well-formed
JSON-RPC error response to the call with HTTP 400, or 404 with -32601, relayed inspected like
any response, status kept (``eras.rejection_answers``). On every answer only the upstream
headers in ``PASSED_BACK`` reach the client.

Why apart from ``exchange.py``: this module is how bytes move (read, framed, written), that
one what each message means and which outcome each call gets.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Final

import orjson

from remit.errors import ClientGoneError, UpstreamError
from remit.gateway.asgi import Send, reply
from remit.gateway.eras import rejection_answers
from remit.gateway.foreign import undefined_body
from remit.gateway.protocol import (
    UPSTREAM_ERROR,
    RequestId,
    error_body,
    error_object,
    error_response,
    server_message_kind,
)
from remit.gateway.stream import relay_sse
from remit.gateway.upstream import HTTP_ERROR, NO_RESPONSE, UpstreamResponse

if TYPE_CHECKING:
    from remit.gateway.exchange import Exchange
    from remit.gateway.watch import ClientWatch

_ERROR_SAMPLE: Final = 64 * 1024  # bytes of an upstream error body read for the record
_JSON: Final = (b"content-type", b"application/json")


def body_headers(response: UpstreamResponse, body: bytes, json: bool = True) -> list[Any]:
    """The headers of a body the gateway wrote itself: the upstream's that may pass
    (``PASSED_BACK``), then the gateway's own length and type."""
    kept = response.client_headers()
    return [*kept, (b"content-length", str(len(body)).encode()), *([_JSON] if json else [])]


async def relay(
    exchange: Exchange, response: UpstreamResponse, send: Send, watch: ClientWatch
) -> None:
    """Send ``response`` to the client, inspected; ``UpstreamError`` before anything is
    sent when it cannot be (the caller then ``refuse``s), ``ClientGoneError`` when the
    client left while the body was awaited (the upstream connection is then dropped)."""
    exchange.status = response.status
    exchange.response = response
    try:
        if not 200 <= response.status < 300:
            await _relay_failure(exchange, response, send, watch)
        elif response.kind == "sse":
            await relay_sse(exchange, response, send, watch)
        elif response.kind == "json":
            await _relay_json(exchange, response, send, watch)
        else:
            await _relay_other(exchange, response, send)
    except ClientGoneError:
        response.abort()  # the upstream sees its connection close: the call is cancelled
        raise
    finally:
        response.close()


async def _relay_json(
    exchange: Exchange, response: UpstreamResponse, send: Send, watch: ClientWatch
) -> None:
    watch.on_cut(response.abort)  # cut before the body is read: the upstream's is dropped
    body = await watch.race(response.read())
    if not body.strip():
        await _relay_empty(exchange, response, send)
        return
    await _send_json(exchange, exchange.decode(body), response, send)


async def _send_json(
    exchange: Exchange, value: Any, response: UpstreamResponse, send: Send
) -> None:
    out = await exchange.message(value)
    missing = await exchange.fail(f"{NO_RESPONSE}: the upstream's answer held no response")
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


async def _relay_empty(exchange: Exchange, response: UpstreamResponse, send: Send) -> None:
    if exchange.calls:
        text = f"upstream answered HTTP {response.status} without a response"
        raise UpstreamError(502, text, NO_RESPONSE)
    headers = body_headers(response, b"", json=False)
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


async def _relay_other(exchange: Exchange, response: UpstreamResponse, send: Send) -> None:
    """A body of a type the transport does not define: refused from its headers, never
    read (``foreign.py``); an answer already known to have no body passes as one."""
    if not response.body_empty():
        raise undefined_body(response)
    await _relay_empty(exchange, response, send)


async def _relay_failure(
    exchange: Exchange, response: UpstreamResponse, send: Send, watch: ClientWatch
) -> None:
    """A non-2xx answer: the gateway's own error; the body's size and digest recorded."""
    status = response.status
    try:
        body, note = await watch.race(response.read(_ERROR_SAMPLE)), ""
    except UpstreamError as exc:
        body, note = b"", f" (body not read: {exc.code})"
    if rejection_answers(status, response.kind, body, exchange.calls, exchange.limits):
        # a JSON-RPC error answering the call, sent with its 4xx status (2026-07-28 does
        # so): relayed like any response, inspected, its status kept
        await _send_json(exchange, exchange.decode(body), response, send)
        return
    digest = hashlib.sha256(body).hexdigest()
    await exchange.fail(
        f"{HTTP_ERROR}: upstream answered HTTP {status}; "
        f"body {len(body)} bytes sha256:{digest}{note}"
    )
    code = _upstream_code(body) if response.kind == "json" else UPSTREAM_ERROR
    client_status = status if 400 <= status < 500 and status not in (401, 403, 407) else 502
    payload = error_body(
        exchange.single_id,
        code,
        f"Upstream answered HTTP {status}",
        {"reason": HTTP_ERROR, "upstreamStatus": status},
    )
    await reply(send, client_status, payload, response.client_headers())


def no_response(id_: RequestId) -> dict[str, Any]:
    """The gateway's JSON-RPC error for a request the upstream did not answer."""
    text = "Upstream answered without a response to this request"
    return error_response(id_, error_object(UPSTREAM_ERROR, text, {"reason": NO_RESPONSE}))


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


__all__ = ["body_headers", "no_response", "relay"]
