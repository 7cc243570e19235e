"""Deep JSON (issue 9, item 10): nesting is bounded on the way in, with a clear JSON-RPC error
and a decision record, never a 500 and never a forwarded call. (The way out — a result
nested 300 deep — is in test_hostile_upstream.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from remit.demo.issuer import Issuer
from remit.errors import ProtocolError
from remit.gateway.bounds import DEFAULT_MAX_JSON_DEPTH
from remit.gateway.protocol import parse_body
from remit.gateway.upstream import UpstreamSettings
from tests.security.hostile_stack import MAX_DEPTH, Hostile, hostile_gateway


def deep_bytes(levels: int) -> bytes:
    """Arguments nested ``levels`` deep, written out (orjson cannot write past 254)."""
    return b'{"d":' * levels + b'"bottom"' + b"}" * levels


# Each refusal its own record (no aggregation window): every test counts the one it caused.
EACH = {"REMIT_REFUSAL_INTERVAL": "0"}


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("depth")


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with Issuer() as running:
        yield running


@pytest.fixture(scope="module")
def hostile(logs: Path, issuer: Issuer) -> Iterator[Hostile]:
    with hostile_gateway(logs, issuer, "depth", env=EACH) as running:
        yield running


@pytest.fixture(scope="module")
def shallow(logs: Path, issuer: Issuer) -> Iterator[Hostile]:
    with hostile_gateway(logs, issuer, "shallow", max_depth=16, env=EACH) as running:
        yield running


@pytest.fixture(scope="module")
def deep_tools(logs: Path, issuer: Issuer) -> Iterator[Hostile]:
    with hostile_gateway(logs, issuer, "deep-tools", MAX_DEPTH, "--deep-tool") as running:
        yield running


def post_raw(hostile: Hostile, arguments: bytes, **headers: str | bytes) -> httpx.Response:
    body = (
        b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":'
        + arguments
        + b',"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",'
        b'"io.modelcontextprotocol/clientCapabilities":{}}}}'
    )
    sent: dict[str, str | bytes] = {
        "authorization": f"Bearer {hostile.token}",
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        "mcp-protocol-version": "2026-07-28",
        "mcp-method": "tools/call",
        "mcp-name": "echo",
        **headers,
    }
    return httpx.post(hostile.gateway.url, content=body, headers=sent, timeout=30)


def refusals(hostile: Hostile, reason: str = "invalid_request") -> list[dict[str, Any]]:
    return [
        r for r in hostile.gateway.records() if r["type"] == "decision" and r["reason"] == reason
    ]


@pytest.mark.parametrize("levels", [DEFAULT_MAX_JSON_DEPTH - 1, 100, 1000, 100_000])
def test_deep_arguments_are_refused_with_a_record(hostile: Hostile, levels: int) -> None:
    before = len(refusals(hostile))
    forwarded = len(hostile.upstream.forwarded())
    response = post_raw(hostile, deep_bytes(levels))
    assert response.status_code == 400  # not a 500
    error = response.json()["error"]
    assert error["code"] == -32600
    assert f"nested deeper than {DEFAULT_MAX_JSON_DEPTH} levels" in error["message"]
    assert len(hostile.upstream.forwarded()) == forwarded  # nothing reached the server
    (record,) = refusals(hostile)[before:]
    assert record["decision"] == "deny"
    assert record["subject"] == "hostile-bot-user"


def test_arguments_within_the_limit_pass(hostile: Hostile) -> None:
    # The message and its params are two levels: arguments may nest the other 62.
    response = post_raw(hostile, deep_bytes(DEFAULT_MAX_JSON_DEPTH - 2))
    assert response.status_code == 200
    assert response.json()["result"]["content"][0]["text"] == "echo done"


def test_deep_arguments_with_param_headers_are_refused_before_header_checks(
    hostile: Hostile,
) -> None:
    response = post_raw(hostile, deep_bytes(900), **{"mcp-param-d": "bottom"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32600


def test_the_depth_limit_is_set_per_mcpserver(shallow: Hostile) -> None:
    assert post_raw(shallow, deep_bytes(14)).status_code == 200
    refused = post_raw(shallow, deep_bytes(15))
    assert refused.status_code == 400
    assert "nested deeper than 16 levels" in refused.json()["error"]["message"]


def test_deep_results_are_refused_per_the_mcpservers_limit(shallow: Hostile) -> None:
    response = shallow.call_tool("deep_json")  # 300 deep, far past 16
    assert response.status_code == 502
    assert response.json()["error"]["data"]["reason"] == "response_too_deep"


def test_a_deep_tool_definition_cannot_break_tool_discovery(deep_tools: Hostile) -> None:
    # The call names a tool the gateway has not seen, so it asks the upstream itself; the
    # listing it gets is nested 300 deep and must be refused there too, not crash the call.
    response = deep_tools.call_tool("echo")
    assert response.status_code == 200
    assert response.json()["result"]["content"][0]["text"] == "echo done"
    assert deep_tools.gateway.process.popen.poll() is None
    listed = deep_tools.list_tools()
    assert listed.status_code == 502
    assert listed.json()["error"]["data"]["reason"] == "response_too_deep"


def test_the_books_balance_after_deep_requests(
    hostile: Hostile, shallow: Hostile, deep_tools: Hostile
) -> None:
    for running in (hostile, shallow, deep_tools):
        counted = running.check_accounting()
        assert counted.forwarded > 0
        assert counted.allows > 0


def test_parse_body_counts_the_message_itself() -> None:
    body = b'{"jsonrpc":"2.0","id":1,"method":"m","params":' + deep_bytes(62) + b"}"
    parse_body(body, max_depth=63)  # the message, then 62 levels of params
    with pytest.raises(ProtocolError, match="nested deeper than 62 levels"):
        parse_body(body, max_depth=62)
    assert UpstreamSettings().limits.max_json_depth == DEFAULT_MAX_JSON_DEPTH == 64


def test_a_non_ascii_base64_routing_header_is_a_clear_error_not_a_500(hostile: Hostile) -> None:
    # Found by the routing-header fuzzer: base64 decoding raised ValueError on a non-ASCII
    # payload, which escaped as a 500 with no record.
    before = len(refusals(hostile, "header_mismatch"))
    response = post_raw(hostile, b"{}", **{"mcp-name": b"=?base64?\x80?="})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32020
    assert len(refusals(hostile, "header_mismatch")) == before + 1
