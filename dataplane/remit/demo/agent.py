"""The demo's scripted agent: a real ``mcp`` SDK client calling tools through the gateway.

Each ``Scene`` is one thing an agent tries on behalf of a human; ``play`` runs it with a real
access token from the demo issuer and reports what the agent saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from remit.demo.issuer import Issuer


@dataclass(frozen=True)
class Scene:
    """One step of the story: who, through which agent, tries which tool."""

    title: str
    subject: str
    tool: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    agent: str = "support-bot"
    expect: str = "allow"


@dataclass(frozen=True)
class Seen:
    """What the agent saw."""

    allowed: bool
    text: str


async def play(scene: Scene, issuer: Issuer, url: str, audience: str) -> Seen:
    """Run ``scene`` against the gateway at ``url`` (``tools/list`` when it names no tool)."""
    token = issuer.mint(
        scene.subject, agent=scene.agent, audience=audience, scopes=["mcp:tools"], expires_in=600
    )
    return await act(url, token, scene.tool, scene.args)


async def act(url: str, token: str, tool: str = "", args: dict[str, Any] | None = None) -> Seen:
    """Call ``tool`` with ``args`` through the gateway at ``url`` as the bearer of ``token``
    (``tools/list`` when no tool is named), with a real MCP SDK client."""
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        if not tool:
            tools = await client.list_tools()
            return Seen(True, ", ".join(t.name for t in tools.tools) or "(none)")
        try:
            result = await client.call_tool(tool, args or {})
        except MCPError as exc:
            data = exc.data
            record = data.get("decisionId") if isinstance(data, dict) else None
            suffix = f" (decision record {record})" if record else ""
            return Seen(False, f"error {exc.code}: {exc.message}{suffix}")
        text = " ".join(getattr(c, "text", "") for c in result.content)
        return Seen(not result.is_error, text)
