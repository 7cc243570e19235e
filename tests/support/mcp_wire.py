"""Raw MCP over HTTP for tests that must send what no well-behaved client sends.

The ``mcp`` SDK client is used wherever a real client would do; attacks and protocol edges
(bad tokens, a stolen session id, oversized or malformed bodies, batches) are built here as
2026-07-28 (session-less) requests, with the routing headers that revision requires.
"""

from __future__ import annotations

from typing import Any

import httpx

MODERN = "2026-07-28"
LEGACY = "2025-11-25"
_NAMED = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}


def message(method: str, params: dict[str, Any] | None = None, id_: int = 1) -> dict[str, Any]:
    """A 2026-07-28 JSON-RPC request (the protocol version travels in ``_meta``)."""
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    return {
        "jsonrpc": "2.0",
        "id": id_,
        "method": method,
        "params": {**(params or {}), "_meta": meta},
    }


def headers(
    method: str | None = None, params: dict[str, Any] | None = None, token: str | None = None
) -> dict[str, str]:
    """HTTP headers of a 2026-07-28 request (``Mcp-Method``, ``Mcp-Name``, bearer token)."""
    sent = {"accept": "application/json, text/event-stream", "mcp-protocol-version": MODERN}
    if method is not None:
        sent["mcp-method"] = method
        key = _NAMED.get(method)
        if key is not None and params and key in params:
            sent["mcp-name"] = str(params[key])
    if token is not None:
        sent["authorization"] = f"Bearer {token}"
    return sent


def call(
    url: str,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    extra_headers: dict[str, str] | None = None,
    query: str = "",
) -> httpx.Response:
    """POST one 2026-07-28 request and return the HTTP response."""
    sent = {**headers(method, params, token), **(extra_headers or {})}
    target = f"{url}?{query}" if query else url
    return httpx.post(target, json=message(method, params), headers=sent, timeout=10)


def tool_call(
    url: str, tool: str, arguments: dict[str, Any], *, token: str | None = None, **options: Any
) -> httpx.Response:
    """POST a 2026-07-28 ``tools/call``."""
    return call(url, "tools/call", {"name": tool, "arguments": arguments}, token=token, **options)


def initialize(url: str, token: str) -> httpx.Response:
    """A session-based (2025-11-25) ``initialize``; the answer carries ``Mcp-Session-Id``."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": LEGACY,
            "capabilities": {},
            "clientInfo": {"name": "e2e", "version": "0"},
        },
    }
    sent = {
        "accept": "application/json, text/event-stream",
        "authorization": f"Bearer {token}",
    }
    return httpx.post(url, json=body, headers=sent, timeout=10)


def legacy_call(
    url: str, method: str, params: dict[str, Any], *, token: str, session: str, id_: int = 2
) -> httpx.Response:
    """A session-based request in ``session``."""
    sent = {
        "accept": "application/json, text/event-stream",
        "authorization": f"Bearer {token}",
        "mcp-session-id": session,
        "mcp-protocol-version": LEGACY,
    }
    body = {"jsonrpc": "2.0", "id": id_, "method": method, "params": params}
    return httpx.post(url, json=body, headers=sent, timeout=10)
