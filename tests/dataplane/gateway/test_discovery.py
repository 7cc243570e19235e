"""The gateway learns tool definitions from the upstream itself when a call names an unseen tool.

A real files server in each of its transport modes (SSE responses with sessions, JSON
responses, stateless) answers the gateway's own MCP handshake and tools/list.
"""

from __future__ import annotations

import pytest

from remit.gateway.discovery import fetch_tools
from remit.gateway.upstream import Upstream, UpstreamSettings
from tests.support.ports import free_port
from tests.support.servers import files_server

MODES = [
    pytest.param({}, id="sse-sessions"),
    pytest.param({"json_response": True}, id="json"),
    pytest.param({"json_response": True, "stateless": True}, id="stateless"),
]


@pytest.mark.parametrize("options", MODES)
async def test_fetch_tools_returns_every_definition_with_annotations(
    options: dict[str, bool],
) -> None:
    with files_server(**options) as url:
        upstream = Upstream(UpstreamSettings(url))
        await upstream.start()
        try:
            tools = {t["name"]: t for t in await fetch_tools(upstream)}
        finally:
            await upstream.close()
    assert {"read_file", "write_file", "delete_file"} <= set(tools)
    assert tools["read_file"]["annotations"]["readOnlyHint"] is True
    assert tools["delete_file"]["annotations"]["destructiveHint"] is True
    assert "inputSchema" in tools["write_file"]


async def test_fetch_tools_from_an_unreachable_upstream_returns_nothing() -> None:
    upstream = Upstream(UpstreamSettings(f"http://127.0.0.1:{free_port()}/mcp", connect_timeout=1))
    await upstream.start()
    try:
        assert await fetch_tools(upstream) == []
    finally:
        await upstream.close()
