"""Upstream answers whose body the MCP transport does not define: refused from the headers.

The MCP Streamable HTTP transport lets a server answer a POST with ``application/json`` (one
JSON-RPC message or batch) or ``text/event-stream`` (an SSE stream), and a GET with an event
stream; a notification's POST gets ``202 Accepted`` with no body. Any other body (``text/plain``,
``application/octet-stream``, JSON the gateway cannot read as the client would: compressed,
another charset, two ``Content-Type`` fields) is a protocol error of the upstream, and one the
gateway cannot inspect, so it is refused as soon as the headers say so: the body is never read,
so an open-ended one cannot hold the call until a timeout, and the upstream connection is
closed. Only a body that is already known to be empty (``Content-Length: 0``, a 204, or one
that ended with its headers) is not a body at all, and the answer passes as one without.

The refusal says exactly why, for the outcome record (``uninspectable_response: ...``): the
media type as parsed per RFC 9110 (``mediatype.py``), never by prefix.
"""

from __future__ import annotations

from typing import Final

from remit.errors import MediaTypeError, UpstreamError
from remit.gateway.mediatype import EVENT_STREAM, JSON, parse_media_type
from remit.gateway.upstream import UNINSPECTABLE, UpstreamResponse

_ALLOWED: Final = f"the MCP transport allows only {JSON} or {EVENT_STREAM}"
_SHOWN: Final = 80  # characters of a header value quoted in the record


def undefined_body(response: UpstreamResponse) -> UpstreamError:
    """The refusal of ``response``, whose body is none the gateway can relay (its ``kind``
    is None), naming why; the upstream connection is closed unread."""
    response.abort()
    return UpstreamError(502, f"upstream sent a body {why(response.headers)}", UNINSPECTABLE)


def why(headers: list[tuple[bytes, bytes]]) -> str:
    """Why the gateway cannot inspect a body with these (lowercase-named) header fields."""
    types = [v.decode("latin-1") for k, v in headers if k == b"content-type"]
    encodings = [
        v.decode("latin-1").strip()
        for k, v in headers
        if k == b"content-encoding" and v.strip().lower() not in (b"", b"identity")
    ]
    if not types:
        return f"without a Content-Type ({_ALLOWED})"
    if len(types) > 1:
        return f"with {len(types)} Content-Type fields ({_ALLOWED})"
    shown = types[0][:_SHOWN]
    try:
        media = parse_media_type(types[0])
    except MediaTypeError:
        return f"with a malformed Content-Type {shown!r} ({_ALLOWED})"
    if media.essence not in (JSON, EVENT_STREAM):
        return f"of type {media.essence} ({_ALLOWED}; Content-Type: {shown!r})"
    if encodings:
        coded = ", ".join(encodings)[:_SHOWN]
        return f"of type {media.essence} with Content-Encoding {coded!r} (not negotiated)"
    charset = media.parameter("charset") or ""
    return f"of type {media.essence} in charset {charset[:_SHOWN]!r} (UTF-8 only)"
