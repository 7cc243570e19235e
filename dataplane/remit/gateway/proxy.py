"""The MCP reverse proxy as a pure ASGI application (no framework on the hot path).

One endpoint (``/mcp`` by default) speaks MCP Streamable HTTP in both generations: the
session-based 2025-06-18/2025-11-25 transport (POST, GET stream, DELETE, ``Mcp-Session-Id``)
and the session-less 2026-07-28 one (routing headers checked against the body). Per HTTP
request: refuse duplicate identity headers (``fields``) → authenticate → check session → read
the body (bounded) → parse → check headers → decide every message (``admission``) → forward →
relay the answer with responses hooked. Batches are bounded and supported only whole: every
element is decided before any allow is recorded, and if any is denied the whole batch is
rejected (HTTP 400) — nothing of a partly denied batch is forwarded. Every refusal is told to
the hooks (recorded) and answers with a JSON-RPC error, never a traceback. The ASGI lifespan
owns the upstream client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from remit.errors import AuditError, ClientGoneError, ProtocolError
from remit.gateway.admission import admit, resumable
from remit.gateway.asgi import Receive, Scope, Send, reply, serve_lifespan
from remit.gateway.bounds import ResponseLimits
from remit.gateway.drain import Drain
from remit.gateway.durability import withheld
from remit.gateway.eras import check_removed, denial_status
from remit.gateway.exchange import Exchange
from remit.gateway.fields import check_header_fields
from remit.gateway.forward import Sender, forward
from remit.gateway.hooks import Deny, GatewayHooks, HttpRequest, Identity, Rejection
from remit.gateway.pending import Call, PendingCalls, cancelled_ids
from remit.gateway.protocol import (
    DEFAULT_MAX_BATCH,
    INTERNAL_ERROR,
    INVALID_REQUEST,
    MODERN_VERSIONS,
    SESSION_HEADER,
    SESSION_NOT_FOUND,
    VERSION_HEADER,
    Body,
    Message,
    RequestId,
    check_response_headers,
    check_routing_headers,
    error_body,
    error_response,
    parse_body,
    result_response,
)
from remit.gateway.replies import FORBIDDEN
from remit.gateway.upstream import Upstream, UpstreamSettings, request_headers
from remit.gateway.watch import ClientWatch

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """The endpoint the proxy serves, where it forwards, and how large a body may be."""

    upstream: UpstreamSettings = field(default_factory=UpstreamSettings)
    path: str = "/mcp"
    max_body_bytes: int = 4 * 1024 * 1024
    max_batch: int = DEFAULT_MAX_BATCH
    stream_lifetime: float | None = None  # a GET stream is closed after this (quotas.py)
    notice_stream_timeout: float | None = None  # a notices-only POST's stream, without events


class McpProxy:
    """The ASGI app. ``hooks`` make the decisions; ``upstream`` is created if not given;
    ``limits`` gives the bounds in force for each request (default: the settings')."""

    def __init__(
        self,
        settings: ProxySettings,
        hooks: GatewayHooks,
        upstream: Upstream | None = None,
        limits: Callable[[], ResponseLimits] | None = None,
        drain: Drain | None = None,
    ) -> None:
        self.settings = settings
        self.drain = drain
        self.hooks = hooks
        self.upstream = upstream or Upstream(settings.upstream)
        self.pending = PendingCalls()
        self.limits = limits or (lambda: settings.upstream.limits)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] == "http":
            sender = Sender(send)
            try:
                await self._http(scope, receive, sender)
            except ClientGoneError:
                return
            except Exception:
                log.exception("internal error while proxying %s %s", scope["method"], scope["path"])
                if not sender.started:
                    await reply(send, 500, error_body(None, INTERNAL_ERROR, "Internal error"))
        elif scope["type"] == "lifespan":
            await serve_lifespan(receive, send, self.upstream.start, self.upstream.close)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        request = HttpRequest(
            method=method,
            path=scope["path"],
            query_string=scope.get("query_string", b""),
            headers=tuple(
                (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]
            ),
            client=scope.get("client"),
        )
        extra: list[tuple[bytes, bytes]] = []
        try:
            if scope["path"] != self.settings.path:
                raise ProtocolError(INVALID_REQUEST, "Not Found", status=404)
            if method not in ("POST", "GET", "DELETE"):
                extra = [(b"allow", b"GET, POST, DELETE")]
                raise ProtocolError(INVALID_REQUEST, f"Method {method} not allowed", status=405)
            check_header_fields(request.headers)
        except ProtocolError as exc:
            # Refused before anyone is identified: recorded, aggregated per source.
            await self.hooks.refuse(None, request, exc)
            await reply(send, exc.status, error_body(None, exc.code, exc.message), extra)
            return
        identity = await self.hooks.authenticate(request)
        if isinstance(identity, Rejection):
            headers = [
                (k.lower().encode("latin-1"), v.encode("latin-1"))
                for k, v in identity.headers.items()
            ]
            await reply(send, identity.status, orjson.dumps(dict(identity.body)), headers)
            return
        session = request.header(SESSION_HEADER)
        if session is not None and not await self.hooks.check_session(identity, session):
            await reply(send, 404, error_body(None, SESSION_NOT_FOUND, "Session not found"))
            return
        if method == "POST":
            await self._post(request, identity, session, receive, send)
        else:
            await self._stream(request, identity, session, receive, send)

    async def _post(
        self,
        request: HttpRequest,
        identity: Identity,
        session: str | None,
        receive: Receive,
        send: Send,
    ) -> None:
        limits = self.limits()
        try:
            body = await _read_body(request, receive, self.settings.max_body_bytes)
            parsed = parse_body(body, self.settings.max_batch, max_depth=limits.max_json_depth)
            for message in parsed.messages:
                check_removed(message, request.header(VERSION_HEADER))
                if message.kind == "request":
                    check_routing_headers(message, request.headers, in_batch=parsed.batch)
                elif message.kind == "notification":  # optional, but must agree when sent
                    check_routing_headers(message, request.headers, in_batch=True)
            check_response_headers(parsed, request.headers)
        except ProtocolError as exc:
            await self.hooks.refuse(identity, request, exc)
            await reply(send, exc.status, error_body(exc.id, exc.code, exc.message))
            return
        admission = await admit(self.hooks, identity, parsed, request)
        if admission.denied is not None:
            message, deny = admission.denied
            modern = request.header(VERSION_HEADER) in MODERN_VERSIONS
            await self._deny(message, deny, parsed.batch, modern, send)
            return
        headers = request_headers(resumable(request), admission.headers)
        await self._forward(
            request,
            identity,
            session,
            calls=admission.calls,
            notices=admission.notices,
            cancels=cancelled_ids(parsed.messages),
            headers=headers,
            body=_encoded(parsed),
            receive=receive,
            send=send,
        )

    async def _deny(
        self, message: Message, deny: Deny, batch: bool, modern: bool, send: Send
    ) -> None:
        if batch:
            text = "Batch rejected: a message in it was denied"
            error = dict(deny.error) if deny.error is not None else None
            await reply(send, 400, error_body(message.id, INVALID_REQUEST, text, error))
        elif message.kind != "request":  # no JSON-RPC answer: an HTTP error, body without id
            error = _err(deny)
            status = deny.status
            if status < 400:
                status = 500 if error["code"] == INTERNAL_ERROR else 403
            await reply(send, status, error_body(None, **error))
        elif deny.result is not None:
            result = dict(deny.result)
            if modern:  # 2026-07-28 results say they are complete
                result.setdefault("resultType", "complete")
            await reply(send, deny.status, orjson.dumps(result_response(message.id, result)))
        else:
            denial = deny.error or {"code": INVALID_REQUEST, "message": "Denied"}
            status = denial_status("2026-07-28" if modern else None, denial, deny.status)
            await reply(send, status, orjson.dumps(error_response(message.id, denial)))

    async def _stream(
        self,
        request: HttpRequest,
        identity: Identity,
        session: str | None,
        receive: Receive,
        send: Send,
    ) -> None:
        verdict = await self.hooks.admit_stream(identity, request)
        if isinstance(verdict, Rejection):
            await reply(send, verdict.status, orjson.dumps(dict(verdict.body)))
            return
        headers = request_headers(resumable(request), verdict.upstream_headers)
        stream = Call(Message("stream", {}, request.method), verdict.token)
        await self._forward(
            request,
            identity,
            session,
            calls={},
            stream=stream,
            headers=headers,
            body=None,
            receive=receive,
            send=send,
        )

    async def _forward(
        self,
        request: HttpRequest,
        identity: Identity,
        session: str | None,
        *,
        calls: dict[RequestId, Call],
        notices: Sequence[Call] = (),
        cancels: list[RequestId] | None = None,
        stream: Call | None = None,
        headers: Any,
        body: bytes | None,
        receive: Receive,
        send: Send,
    ) -> None:
        """Send upstream and relay the answer. ``calls`` are answered by responses; ``notices``
        (decided notifications) end when the upstream accepts the POST; ``stream`` (a GET or
        DELETE) ends with its response."""
        limits = self.limits()
        exchange = Exchange(
            self.hooks, identity, calls, self.pending, session=session, limits=limits,
            standalone=stream is not None,
        )  # fmt: skip
        exchange.cancels = cancels or []
        if request.method == "GET":
            exchange.lifetime = self.settings.stream_lifetime
        elif not calls:
            exchange.idle_timeout = self.settings.notice_stream_timeout
        # From here on, a client that leaves cancels the call, and a stopping gateway cuts it
        # off (a GET stream at once, a call after the grace: drain.py).
        watch = ClientWatch(receive, self.drain, stream=request.method == "GET")
        try:
            await forward(self.upstream, self.hooks, request, identity, session, exchange,
                          notices, stream, headers, body, send, watch)  # fmt: skip
        except AuditError as exc:  # a decision record did not sync: the answer is withheld
            await withheld(exchange, exc, send, stream)
        finally:
            watch.close()


async def _read_body(request: HttpRequest, receive: Receive, limit: int) -> bytes:
    """The request body, refusing (413) more than ``limit`` bytes before reading them all."""
    declared = request.header("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ProtocolError(INVALID_REQUEST, "Invalid Content-Length")
        if int(declared) > limit:
            raise ProtocolError(INVALID_REQUEST, f"Request body exceeds {limit} bytes", status=413)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ProtocolError(INVALID_REQUEST, f"Request body exceeds {limit} bytes", status=413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _err(deny: Deny) -> dict[str, Any]:
    """The denial as a JSON-RPC error (a tool-error result becomes its text)."""
    error = dict(deny.error or {})
    message = error.get("message", "Denied")
    if deny.error is None and deny.result is not None:
        content = deny.result.get("content")
        texts = [c.get("text") for c in content or [] if isinstance(c, dict)]
        message = " ".join(t for t in texts if isinstance(t, str)) or message
        meta = deny.result.get("_meta")
        error["data"] = next(iter(meta.values()), None) if isinstance(meta, dict) else None
    return {
        "code": error.get("code", FORBIDDEN),
        "message": message,
        "data": error.get("data"),
    }


def _encoded(parsed: Body) -> bytes:
    """The body the upstream receives: the messages as the gateway parsed and decided them,
    encoded again, never the client's bytes (a literal duplicate key, or any other spelling a
    different decoder reads differently, cannot reach the upstream)."""
    if parsed.batch:
        return orjson.dumps([message.raw for message in parsed.messages])
    return orjson.dumps(parsed.messages[0].raw)
