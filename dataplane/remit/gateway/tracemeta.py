"""A caller's W3C trace context carried in an MCP message's ``params._meta``.

MCP clients that cannot set HTTP headers (or whose SDK propagates at the MCP layer) put
``traceparent`` and ``tracestate`` in ``params._meta``, as the MCP specification reserves that
object for such metadata and the OpenTelemetry MCP semantic conventions propagate context
there. When a POST has no ``traceparent`` header, :func:`peek_meta` reads its body up to
``PEEK_BYTES`` and returns the context of its (first) message as a carrier for the W3C
propagator, which parses and validates the values; the body reaches the gateway unchanged
(the chunks read are replayed in order, then the rest is received as usual). A header always
wins; a body larger than the peek, not JSON, or without a context yields an empty carrier, and
the request is traced as a new trace, as without ``_meta``. Only with tracing on.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import msgspec

from remit.gateway.asgi import Receive

#: Largest body peeked at: a tool call's arguments rarely exceed it, and a request is read
#: no further than this before the gateway's own bounded read takes over.
PEEK_BYTES = 64 * 1024
MAX_VALUE = 512  # traceparent is 55 characters; tracestate at most 32 list members


class _Meta(msgspec.Struct):
    traceparent: Any = None
    tracestate: Any = None


class _Params(msgspec.Struct):
    meta: _Meta | None = msgspec.field(default=None, name="_meta")


class _Message(msgspec.Struct):
    params: _Params | None = None


_DECODER = msgspec.json.Decoder(_Message | list[_Message])


def meta_carrier(body: bytes) -> dict[str, list[str]]:
    """``traceparent``/``tracestate`` from the first message's ``params._meta`` (or nothing)."""
    try:
        decoded = _DECODER.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return {}
    message = decoded[0] if isinstance(decoded, list) and decoded else decoded
    meta = message.params.meta if isinstance(message, _Message) and message.params else None
    if meta is None:
        return {}
    carrier = {}
    for name in ("traceparent", "tracestate"):
        value = getattr(meta, name)
        if isinstance(value, str) and len(value) <= MAX_VALUE:
            carrier[name] = [value]
    return carrier if "traceparent" in carrier else {}


async def peek_meta(receive: Receive) -> tuple[dict[str, list[str]], Receive]:
    """The trace context in the request body's ``_meta``, and a ``receive`` that replays what
    was read."""
    read: list[MutableMapping[str, Any]] = []
    size, complete = 0, False
    while size <= PEEK_BYTES:
        message = await receive()
        read.append(message)
        if message.get("type") != "http.request":
            break
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            complete = True
            break
    carrier: dict[str, list[str]] = {}
    if complete and size <= PEEK_BYTES:
        carrier = meta_carrier(b"".join(m.get("body", b"") for m in read))

    async def replay() -> MutableMapping[str, Any]:
        if read:
            return read.pop(0)
        return await receive()

    return carrier, replay


__all__ = ["PEEK_BYTES", "meta_carrier", "peek_meta"]
