"""Learn the upstream's tool definitions when a call names a tool the gateway has not seen.

Rules match on tool annotations and pins guard definitions, so the gateway must know a tool's
definition before deciding a call to it. Clients usually list tools first (and the guard
records every ``tools/list`` that passes), but a client may call straight away, e.g. after the
gateway restarted. Then the gateway asks the upstream itself, as an ordinary MCP client on
loopback: ``initialize``, ``notifications/initialized``, every page of ``tools/list``, and
``DELETE`` of the session. Failures return nothing (the call is then decided with the MCP
default annotations, which fail closed). ``Discovery`` asks at most once per interval, so
a client calling unknown tool names cannot make the gateway flood its upstream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from multidict import CIMultiDict

from remit.errors import (
    JsonDepthError,
    JsonKeyCollisionError,
    SseEventTooLargeError,
    UpstreamError,
)
from remit.gateway.bounds import loads
from remit.gateway.sse import SseParser
from remit.gateway.upstream import Upstream, UpstreamResponse

log = logging.getLogger(__name__)

PROTOCOL_VERSION = "2025-06-18"
MAX_PAGES = 100
DISCOVERY_INTERVAL = 5.0  # seconds between asking the upstream for unknown tools


async def _exchange(
    upstream: Upstream, message: dict[str, Any], session: str | None
) -> tuple[dict[str, Any] | None, str | None]:
    headers: CIMultiDict[str] = CIMultiDict(
        {
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
            "mcp-protocol-version": PROTOCOL_VERSION,
            "x-remit-agent": "remit-gateway",
        }
    )
    if session:
        headers["mcp-session-id"] = session
    response = await upstream.send("POST", headers, orjson.dumps(message))
    try:
        issued = response.header(b"mcp-session-id") or session
        if "id" not in message or response.status >= 300:
            return None, issued
        return await _response_for(response, message["id"]), issued
    finally:
        response.close()


async def _response_for(response: UpstreamResponse, request_id: Any) -> dict[str, Any] | None:
    """The response to ``request_id``, read within the response limits (size, time, depth)."""
    depth = response.limits.max_json_depth
    if response.kind == "json":
        value = loads(await response.read(), depth)
        return value if isinstance(value, dict) and value.get("id") == request_id else None
    if response.kind != "sse":
        return None
    parser = SseParser(response.limits.max_response_bytes)
    async for chunk in response.chunks():
        for event in parser.feed(chunk):
            if not event.data:
                continue
            value = loads(event.data, depth)
            if isinstance(value, dict) and value.get("id") == request_id:
                return value
    return None


async def fetch_tools(upstream: Upstream) -> list[dict[str, Any]]:
    """Every tool definition the upstream lists; [] if it cannot be asked."""
    session: str | None = None
    tools: list[dict[str, Any]] = []
    try:
        init = {
            "jsonrpc": "2.0",
            "id": "remit-discovery-0",
            "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "remit-gateway", "version": "1"},
            },
        }
        answer, session = await _exchange(upstream, init, None)
        if answer is None or "result" not in answer:
            return []
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        await _exchange(upstream, note, session)
        cursor: str | None = None
        for page in range(MAX_PAGES):
            params = {"cursor": cursor} if cursor else {}
            request = {
                "jsonrpc": "2.0",
                "id": f"remit-discovery-{page + 1}",
                "method": "tools/list",
                "params": params,
            }
            answer, session = await _exchange(upstream, request, session)
            result = answer.get("result") if answer else None
            if not isinstance(result, dict):
                break
            tools += [t for t in result.get("tools", []) if isinstance(t, dict)]
            cursor = result.get("nextCursor")
            if not isinstance(cursor, str) or not cursor:
                break
    except (
        UpstreamError,
        orjson.JSONDecodeError,
        JsonDepthError,
        JsonKeyCollisionError,
        SseEventTooLargeError,
    ) as exc:
        log.warning("tool discovery failed: %s", exc)
    finally:
        if session:
            await _end(upstream, session)
    return tools


async def _end(upstream: Upstream, session: str) -> None:
    headers: CIMultiDict[str] = CIMultiDict(
        {
            "mcp-session-id": session,
            "mcp-protocol-version": PROTOCOL_VERSION,
            "x-remit-agent": "remit-gateway",
        }
    )
    try:
        response = await upstream.send("DELETE", headers, None)
        response.close()
    except UpstreamError as exc:
        log.debug("ending the discovery session failed: %s", exc)


class Discovery:
    """Asks ``upstream`` for its tools, at most once per ``interval`` seconds of ``clock``."""

    def __init__(
        self,
        upstream: Upstream | None,
        *,
        interval: float = DISCOVERY_INTERVAL,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.upstream = upstream
        self._interval = interval
        self._clock = clock
        self._lock = asyncio.Lock()
        self._asked_at = -interval

    async def tools(self) -> list[dict[str, Any]] | None:
        """The upstream's tool definitions, or None when it was asked too recently (or is
        unknown)."""
        if self.upstream is None:
            return None
        async with self._lock:
            if self._clock() - self._asked_at < self._interval:
                return None
            self._asked_at = self._clock()
            return await fetch_tools(self.upstream)
