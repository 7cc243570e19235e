"""Per-revision HTTP answers: what 2026-07-28 (stateless) changes about refusing a method.

In 2026-07-28 a request for a method the server does not serve is answered with HTTP 404 and
JSON-RPC ``-32601`` (SEP-2575), not HTTP 200. That covers the methods the revision removed
(the ``initialize`` handshake, ``ping``, ``logging/setLevel``, ``resources/subscribe`` and
``resources/unsubscribe``: the stateless protocol has no session for them to act on), which the
gateway refuses itself, recorded, without forwarding; and any method the gateway's policy does
not know, whose denial keeps its decision record but gets the 404. Older revisions keep 200.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from remit.errors import ProtocolError
from remit.gateway.protocol import MODERN_VERSIONS, VERSION_HEADER, Message
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


__all__ = ["REMOVED", "VERSION_HEADER", "check_removed", "denial_status"]
