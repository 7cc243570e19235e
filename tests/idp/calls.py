"""Calling the gateway in the identity-provider tier, and finding the decisions it recorded."""

from __future__ import annotations

from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from tests.support.stack import GatewayProcess


async def call_tool(
    gateway: GatewayProcess, token: str, tool: str, arguments: dict[str, Any]
) -> tuple[CallToolResult, list[dict[str, Any]]]:
    """Call ``tool`` with the MCP SDK client and ``token``; return the result and the
    decision records the gateway wrote for that tool meanwhile."""
    before = len(gateway.records())
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(gateway.url, http_client=http)) as client,
    ):
        result = await client.call_tool(tool, arguments)
    records = [r for r in gateway.records()[before:] if r.get("tool") == tool]
    return result, records
