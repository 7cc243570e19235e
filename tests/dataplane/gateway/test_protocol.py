"""JSON-RPC classification and the 2026-07-28 routing-header checks (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest

from remit.gateway.protocol import (
    HEADER_MISMATCH,
    INVALID_REQUEST,
    PARSE_ERROR,
    ProtocolError,
    check_routing_headers,
    classify,
    parse_body,
)

META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}


def tool_call(name: str, **arguments: Any) -> dict[str, Any]:
    params = {"name": name, "arguments": arguments, "_meta": META}
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}


def modern(**headers: str) -> list[tuple[str, str]]:
    return [("mcp-protocol-version", "2026-07-28"), *headers.items()]


def test_messages_are_classified() -> None:
    assert classify({"jsonrpc": "2.0", "id": "a", "method": "ping"}).kind == "request"
    assert classify({"jsonrpc": "2.0", "method": "notifications/x"}).kind == "notification"
    assert classify({"jsonrpc": "2.0", "id": 3, "result": {}}).kind == "response"
    assert classify(tool_call("read_file")).target == "read_file"


def test_parse_errors_and_invalid_requests_have_their_codes() -> None:
    with pytest.raises(ProtocolError) as parse:
        parse_body(b"{")
    assert (parse.value.code, parse.value.status) == (PARSE_ERROR, 400)
    with pytest.raises(ProtocolError) as shape:
        parse_body(b'{"jsonrpc": "2.0", "id": 1, "result": {}, "error": {}}')
    assert shape.value.code == INVALID_REQUEST


@pytest.mark.parametrize(
    ("headers", "ok"),
    [
        ({"mcp-method": "tools/call", "mcp-name": "read_file"}, True),
        ({"mcp-method": "tools/call", "mcp-name": "=?base64?cmVhZF9maWxl?="}, True),
        ({"mcp-method": "tools/call", "mcp-name": "delete_file"}, False),
        ({"mcp-method": "tools/call"}, False),
        ({"mcp-name": "read_file"}, False),
        ({"mcp-method": "tools/call", "mcp-name": "read_file", "mcp-param-path": "/a"}, True),
        ({"mcp-method": "tools/call", "mcp-name": "read_file", "mcp-param-n": "42"}, True),
        ({"mcp-method": "tools/call", "mcp-name": "read_file", "mcp-param-path": "/b"}, False),
        (
            {"mcp-method": "tools/call", "mcp-name": "read_file", "mcp-param-x": "=?base64?!?="},
            False,
        ),
    ],
)
def test_routing_headers_must_agree_with_the_body(headers: dict[str, str], ok: bool) -> None:
    message = classify(tool_call("read_file", path="/a", n=42))
    if ok:
        check_routing_headers(message, modern(**headers))
        return
    with pytest.raises(ProtocolError) as rejected:
        check_routing_headers(message, modern(**headers))
    assert (rejected.value.code, rejected.value.status) == (HEADER_MISMATCH, 400)


def test_duplicated_routing_header_is_a_mismatch() -> None:
    message = classify(tool_call("read_file"))
    headers = [*modern(**{"mcp-method": "tools/call", "mcp-name": "read_file"}), ("mcp-name", "x")]
    with pytest.raises(ProtocolError, match="more than once"):
        check_routing_headers(message, headers)


def test_older_revisions_need_no_routing_headers_but_checks_apply_when_sent() -> None:
    message = classify(tool_call("read_file"))
    check_routing_headers(message, [("mcp-protocol-version", "2025-11-25")])
    with pytest.raises(ProtocolError):
        check_routing_headers(message, [("mcp-method", "tools/list")])
