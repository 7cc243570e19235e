"""Requests the gateway refuses before deciding anything: oversized and malformed bodies, and
batches with a denied element (all or nothing). None of them reaches the MCP server."""

from __future__ import annotations

import httpx

from tests.dataplane.e2e_gateway.conftest import MAX_BODY, Mint
from tests.support import mcp_wire
from tests.support.stack import GatewayProcess, Upstream


def test_oversized_body_is_413(gateway: GatewayProcess, upstream: Upstream, mint: Mint) -> None:
    forwarded = upstream.count()
    big = {"path": "/data/alice/big.txt", "content": "x" * (MAX_BODY + 1)}
    answer = mcp_wire.tool_call(gateway.url, "write_file", big, token=mint())
    assert answer.status_code == 413
    assert str(MAX_BODY) in answer.json()["error"]["message"]
    assert upstream.count() == forwarded


def test_malformed_json_is_400_parse_error(
    gateway: GatewayProcess, upstream: Upstream, mint: Mint
) -> None:
    forwarded = upstream.count()
    headers = {**mcp_wire.headers(token=mint()), "content-type": "application/json"}
    answer = httpx.post(gateway.url, content=b'{"jsonrpc": "2.0", "id": 1,', headers=headers)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == -32700
    assert upstream.count() == forwarded


def test_batch_with_a_denied_element_is_rejected_whole(
    gateway: GatewayProcess, upstream: Upstream, mint: Mint
) -> None:
    forwarded = upstream.count()
    read = mcp_wire.message("tools/call", {"name": "read_file", "arguments": {"path": "/data/x"}})
    delete = mcp_wire.message(
        "tools/call", {"name": "delete_file", "arguments": {"path": "/data/bob/todo.txt"}}, 2
    )
    headers = {"accept": "application/json, text/event-stream", "authorization": f"Bearer {mint()}"}
    answer = httpx.post(gateway.url, json=[read, delete], headers=headers)
    assert answer.status_code == 400
    body = answer.json()
    assert body["error"]["code"] == -32600
    assert "denied" in body["error"]["message"]
    assert upstream.count() == forwarded
