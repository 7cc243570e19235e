"""Per-revision HTTP answers: what 2026-07-28 (stateless) changes about refusing a method.

In 2026-07-28 a request for a method the server does not serve is answered with HTTP 404 and
JSON-RPC ``-32601`` (SEP-2575), not HTTP 200. That covers the methods the revision removed
(the ``initialize`` handshake, ``ping``, ``logging/setLevel``, ``resources/subscribe`` and
``resources/unsubscribe``: the stateless protocol has no session for them to act on), which the
gateway refuses itself, recorded, without forwarding; and any method the gateway's policy does
not know, whose denial keeps its decision record but gets the 404. Older revisions keep 200.
The other way round, the MCP server's own 2026-07-28 error answers (HTTP 400, or 404 with
-32601, carrying one JSON-RPC error response) are relayed to the client (``relay.py``) rather
than replaced by the gateway's error, so their ``data`` reaches the client.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from typing import Any, Final

import orjson

from remit.errors import JsonDepthError, JsonKeyCollisionError, ProtocolError
from remit.gateway.bounds import ResponseLimits, loads
from remit.gateway.protocol import MODERN_VERSIONS, Message, RequestId, server_message_kind
from remit.policy.decision import Reason

METHOD_NOT_FOUND: Final = -32601
REMOVED: Final[Mapping[str, frozenset[str]]] = {
    "2026-07-28": frozenset(
        {"initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"}
    ),
}
"""Request methods each revision removed."""


def check_removed(message: Message, version: str | None) -> None:
    """Refuse (404, -32601) a request for a method ``version`` removed."""
    if message.kind == "request" and message.method in REMOVED.get(version or "", ()):
        raise ProtocolError(
            METHOD_NOT_FOUND,
            f"Method not found: {message.method} does not exist in protocol version {version}",
            status=404,
            id_=message.id,
            reason=Reason.METHOD_NOT_ALLOWED,
        )


def denial_status(version: str | None, error: Mapping[str, Any], status: int) -> int:
    """The HTTP status of a denial answered with ``error``: 404 for an unknown method in a
    revision that says so, otherwise ``status`` unchanged."""
    if version in MODERN_VERSIONS and error.get("code") == METHOD_NOT_FOUND and status == 200:
        return 404
    return status


def rejection_answers(
    status: int, kind: str | None, body: bytes, calls: Container[RequestId], limits: ResponseLimits
) -> bool:
    """Whether an upstream answer is a 2026-07-28 JSON-RPC error sent with its HTTP status: one
    well-formed error response to a forwarded call, with HTTP 400 (invalid params, a missing
    client capability, an unsupported version: the client needs its ``data``) or HTTP 404 with
    ``-32601`` (method not found). Any other non-2xx body stays the gateway's own error."""
    if status not in (400, 404) or kind != "json":
        return False
    try:
        value = loads(body, limits.max_json_depth)
    except (orjson.JSONDecodeError, JsonDepthError, JsonKeyCollisionError):
        return False
    if server_message_kind(value) != "response" or "error" not in value:
        return False
    if status == 404 and value["error"]["code"] != METHOD_NOT_FOUND:
        return False
    return value["id"] in calls


__all__ = ["REMOVED", "check_removed", "denial_status", "rejection_answers"]
