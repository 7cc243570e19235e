"""The bounds on what crosses the gateway: response size, read time, JSON nesting depth.

Every byte from a client or an upstream is hostile, so each is read within a limit. The limits
are per MCPServer (``spec.gateway.limits`` in the resource, carried in the policy bundle) and
read from the bundle in force for each request; these defaults apply without one.

- ``max_response_bytes``: largest upstream JSON body, and largest single SSE event.
- ``read_timeout``: seconds the upstream may take to finish a JSON body, or between two
  complete events of a POST's SSE stream (an event once begun on a GET stream, too).
- No object may hold two keys that differ only in case: decoders disagree on which one counts.
- ``max_json_depth``: deepest nesting of arrays and objects in any JSON-RPC message, in or
  out, counting the message object itself. It stays well under the 254 levels ``orjson`` can
  serialise and under Python's recursion limit, so nothing downstream can fail on depth.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import orjson

from remit.errors import JsonDepthError, JsonKeyCollisionError
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


def colliding_key(value: Any) -> str | None:
    """A key of some object in ``value`` that another key of that object equals when case is
    folded (``str.casefold``, which also folds the Kelvin sign and the long s as Go does), or
    None. Iterative, like ``too_deep``; ``loads`` bounds depth first."""
    stack: list[Any] = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if len(node) > 1:
                folded: set[str] = set()
                for key in node:
                    fold = key.casefold()
                    if fold in folded:
                        return str(key)
                    folded.add(fold)
            stack.extend(child for child in node.values() if isinstance(child, dict | list))
        elif isinstance(node, list):
            stack.extend(child for child in node if isinstance(child, dict | list))
    return None


def might_be_too_deep(data: bytes | str, limit: int) -> bool:
    """A cheap test first: JSON with no more than ``limit`` brackets cannot nest deeper."""
    if isinstance(data, str):
        return data.count("{") + data.count("[") > limit
    return data.count(b"{") + data.count(b"[") > limit


def loads(data: bytes | str, limit: int) -> Any:
    """Decode JSON no deeper than ``limit`` and with no object whose keys differ only in case:
    ``orjson.JSONDecodeError``, ``JsonDepthError`` or ``JsonKeyCollisionError``."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):  # orjson's own ceiling (1024)
            raise JsonDepthError(limit) from exc
        raise
    if type(value) is dict or type(value) is list:
        _scan(value, limit if might_be_too_deep(data, limit) else None)
    return value


def _scan(value: dict[str, Any] | list[Any], limit: int | None) -> None:
    """``too_deep`` and ``colliding_key`` in one walk of what ``orjson`` decoded (only exact
    dicts and lists, so exact type tests suffice): the same order as ``colliding_key``, so the
    same key is named; a depth past ``limit`` (None: cannot be) wins over a collision, as in
    two walks."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    collision: str | None = None
    while stack:
        node, depth = stack.pop()
        if limit is not None and depth > limit:
            raise JsonDepthError(limit)
        if type(node) is dict:
            if (
                collision is None
                and len(node) > 1
                and len({k.casefold() for k in node}) < len(node)
            ):
                collision = colliding_key(node)
                if limit is None:
                    break
            children = node.values()
        else:
            children = node
        depth += 1
        for child in children:
            if type(child) is dict or type(child) is list:
                stack.append((child, depth))
    if collision is not None:
        raise JsonKeyCollisionError(collision)
