"""The bounds on what crosses the gateway: response size, read time, JSON nesting depth.

Every byte from a client or an upstream is hostile, so each is read within a limit. The limits
are per MCPServer (``spec.gateway.limits`` in the resource, carried in the policy bundle) and
read from the bundle in force for each request; these defaults apply without one.

- ``max_response_bytes``: largest upstream JSON body, and largest single SSE event.
- ``read_timeout``: seconds the upstream may take to finish a JSON body, or between two
  complete events of a POST's SSE stream (an event once begun on a GET stream, too).
- ``max_json_depth``: deepest nesting of arrays and objects in any JSON-RPC message, in or
  out, counting the message object itself. It stays well under the 254 levels ``orjson`` can
  serialise and under Python's recursion limit, so nothing downstream can fail on depth.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import orjson

from remit.errors import JsonDepthError
from remit.policy.bundle import ServerSettings

DEFAULT_MAX_RESPONSE_BYTES: Final = 8 * 1024 * 1024
DEFAULT_READ_TIMEOUT: Final = 120.0
DEFAULT_MAX_JSON_DEPTH: Final = 64
MAX_JSON_DEPTH_CEILING: Final = 200


@dataclass(frozen=True, slots=True)
class ResponseLimits:
    """The limits applied to one upstream exchange (see the module docstring)."""

    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    read_timeout: float = DEFAULT_READ_TIMEOUT
    max_json_depth: int = DEFAULT_MAX_JSON_DEPTH


DEFAULT_LIMITS: Final = ResponseLimits()


def limits_for(server: ServerSettings | None) -> ResponseLimits:
    """The limits a bundle's server settings ask for (defaults without a bundle)."""
    if server is None:
        return DEFAULT_LIMITS
    limits = server.limits
    return ResponseLimits(
        max_response_bytes=limits.max_response_bytes,
        read_timeout=float(limits.response_read_timeout_seconds),
        max_json_depth=min(limits.max_json_depth, MAX_JSON_DEPTH_CEILING),
    )


def too_deep(value: Any, limit: int) -> bool:
    """Whether ``value`` nests arrays/objects more than ``limit`` levels (iterative: no
    recursion, so a hostile value cannot exhaust the stack)."""
    stack: list[tuple[Iterable[Any], int]] = []
    if isinstance(value, dict):
        stack.append((value.values(), 1))
    elif isinstance(value, list):
        stack.append((value, 1))
    while stack:
        children, depth = stack.pop()
        if depth > limit:
            return True
        for child in children:
            if isinstance(child, dict):
                stack.append((child.values(), depth + 1))
            elif isinstance(child, list):
                stack.append((child, depth + 1))
    return False


def might_be_too_deep(data: bytes | str, limit: int) -> bool:
    """A cheap test first: JSON with no more than ``limit`` brackets cannot nest deeper."""
    if isinstance(data, str):
        return data.count("{") + data.count("[") > limit
    return data.count(b"{") + data.count(b"[") > limit


def loads(data: bytes | str, limit: int) -> Any:
    """Decode JSON no deeper than ``limit``: ``orjson.JSONDecodeError`` or ``JsonDepthError``."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):  # orjson's own ceiling (1024)
            raise JsonDepthError(limit) from exc
        raise
    if might_be_too_deep(data, limit) and too_deep(value, limit):
        raise JsonDepthError(limit)
    return value
