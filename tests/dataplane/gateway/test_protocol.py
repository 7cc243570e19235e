"""JSON-RPC classification and the 2026-07-28 routing-header checks (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest

from remit.gateway.protocol import (
    HEADER_MISMATCH,
    INVALID_REQUEST,
    PARSE_ERROR,
    ProtocolError,
    check_response_headers,
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
    "message",
    [
        {"jsonrpc": "2.0", "id": 7, "method": None, "result": {}},
        {"jsonrpc": "2.0", "method": None},
        {"jsonrpc": "2.0", "id": 7, "method": ""},
        {"jsonrpc": "2.0", "id": 7, "method": 3},
        {"jsonrpc": "2.0", "id": 7, "method": "ping", "result": {}},
        {"jsonrpc": "2.0", "id": 7, "method": "ping", "error": {"code": 1, "message": "x"}},
    ],
)
def test_a_method_key_makes_a_request_that_must_be_well_formed(message: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as invalid:
        classify(message)
    assert invalid.value.code == INVALID_REQUEST


def test_routing_headers_on_a_body_of_responses_only_are_a_mismatch() -> None:
    responses = parse_body(b'[{"jsonrpc": "2.0", "id": 1, "result": {}}]')
    for name in ("mcp-method", "mcp-name", "mcp-param-x"):
        with pytest.raises(ProtocolError) as mismatch:
            check_response_headers(responses, [(name, "tools/call")])
        assert mismatch.value.code == HEADER_MISMATCH
    check_response_headers(responses, [("mcp-protocol-version", "2025-11-25")])
    answer = b'{"jsonrpc": "2.0", "id": 1, "result": {}}'
    mixed = parse_body(b"[" + answer + b', {"jsonrpc": "2.0", "method": "ping", "id": 2}]')
    check_response_headers(mixed, [("mcp-method", "ping")])  # the request's headers rule


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
