"""A real MCP SDK client through the proxy to a real MCP server, in both protocol generations.

The upstream streams SSE (stateful, with an event store); ``RecordingHooks`` deny
``delete_file``, hide it from ``tools/list`` and add ``X-Remit-*`` headers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import orjson
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import ElicitResult

from tests.support.gateway_hooks import DENIED_TOOL, RecordingHooks
from tests.support.servers import files_server, proxy_server

MODES = ["legacy", "2026-07-28"]


@pytest.fixture(scope="module")
def hooks() -> RecordingHooks:
    return RecordingHooks()


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with files_server() as url:
        yield url


@pytest.fixture(scope="module")
def gateway(upstream: str, hooks: RecordingHooks) -> Iterator[str]:
    with proxy_server(upstream, hooks) as url:
        yield url


@asynccontextmanager
async def connect(url: str, mode: str, **options: Any) -> AsyncIterator[Client]:
    headers = {"Authorization": "Bearer alice", "X-Remit-Subject": "mallory"}
    async with httpx2.AsyncClient(headers=headers, timeout=10) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, mode=mode, **options) as client:  # type: ignore[arg-type]
            yield client


@pytest.mark.parametrize("mode", MODES)
async def test_negotiates_the_protocol_generation(gateway: str, mode: str) -> None:
    async with connect(gateway, mode) as client:
        assert client.protocol_version == ("2025-11-25" if mode == "legacy" else mode)


@pytest.mark.parametrize("mode", MODES)
async def test_tools_list_is_filtered_by_the_response_hook(gateway: str, mode: str) -> None:
    async with connect(gateway, mode) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
    assert "read_file" in names
    assert DENIED_TOOL not in names


@pytest.mark.parametrize("mode", MODES)
async def test_allowed_tool_call_is_forwarded(gateway: str, mode: str) -> None:
    async with connect(gateway, mode) as client:
        result = await client.call_tool("read_file", {"path": "/data/readme.txt"})
    assert not result.is_error
    assert "Welcome" in result.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", MODES)
async def test_denied_tool_call_is_answered_without_forwarding(gateway: str, mode: str) -> None:
    async with connect(gateway, mode) as client:
        denied = await client.call_tool(DENIED_TOOL, {"path": "/data/bob/todo.txt"})
        still_there = await client.call_tool("read_file", {"path": "/data/bob/todo.txt"})
    assert denied.is_error
    assert "denied" in denied.content[0].text  # type: ignore[union-attr]
    assert not still_there.is_error


@pytest.mark.parametrize("mode", MODES)
async def test_denied_prompt_gets_the_hooks_json_rpc_error(gateway: str, mode: str) -> None:
    async with connect(gateway, mode) as client:
        with pytest.raises(Exception, match="denied: no prompts"):
            await client.get_prompt("summarize_file", {"path": "/x"})


@pytest.mark.parametrize("mode", MODES)
async def test_caller_token_is_not_forwarded_and_remit_headers_are(
    gateway: str, upstream: str, mode: str
) -> None:
    async with connect(gateway, mode) as client:
        result = await client.call_tool("request_headers", {})
    seen = orjson.loads(result.content[0].text)  # type: ignore[union-attr]
    assert "authorization" not in seen
    assert seen["x-remit-subject"] == "alice"  # the client's spoofed value was dropped
    assert seen["x-remit-agent"] == "test-agent"
    assert seen["x-remit-decision"] == "allow:tools/call"
    assert seen["host"] == upstream.split("/")[2]  # the upstream's own host:port


@pytest.mark.parametrize("mode", MODES)
async def test_progress_notifications_stream_through(gateway: str, mode: str) -> None:
    seen: list[float] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append(value)

    async with connect(gateway, mode) as client:
        result = await client.call_tool("scan_files", {"steps": 3}, progress_callback=progress)
    assert seen == [1, 2, 3]
    assert "3 steps" in result.content[0].text  # type: ignore[union-attr]


async def test_elicitation_request_and_the_clients_answer_cross_the_proxy(
    gateway: str, hooks: RecordingHooks
) -> None:
    asked: list[str] = []

    async def answer(context: Any, params: Any) -> Any:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"confirm": True})

    async with connect(gateway, "legacy", elicitation_callback=answer) as client:
        result = await client.call_tool("confirm_delete", {"path": "/data/alice/notes.txt"})
    assert asked == ["Delete /data/alice/notes.txt?"]
    assert result.content[0].text == "deleted /data/alice/notes.txt"  # type: ignore[union-attr]
    assert any(m.kind == "response" for m in hooks.decided)  # decided, so recorded
    assert not any(m.kind == "response" for m in hooks.messages)


async def test_session_is_bound_reported_and_ended(gateway: str, hooks: RecordingHooks) -> None:
    before = set(hooks.sessions)
    async with connect(gateway, "legacy") as client:
        await client.list_tools()
    (session,) = set(hooks.sessions) - before
    assert hooks.sessions[session] == "alice"
    assert session in hooks.ended  # the SDK client sends DELETE on close


async def test_outcomes_are_reported_once_per_forwarded_request(
    gateway: str, hooks: RecordingHooks
) -> None:
    hooks.outcomes.clear()
    async with connect(gateway, "2026-07-28") as client:
        await client.call_tool("read_file", {"path": "/data/readme.txt"})
        await client.call_tool(DENIED_TOOL, {"path": "/data/readme.txt"})
    calls = [(method, o) for method, o in hooks.outcomes if method == "tools/call"]
    assert len(calls) == 1
    assert calls[0][1].status == 200
    assert calls[0][1].error is None
    assert calls[0][1].latency > 0
