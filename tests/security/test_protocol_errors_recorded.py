"""Requests refused for their form are recorded, not only answered (authenticated callers).

A real ``remit gateway`` process and its decision log: malformed JSON, a body over the limit,
and routing headers that contradict the body each get their JSON-RPC error and a ``deny``
record naming the problem; none reaches the MCP server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from remit.demo.issuer import Issuer
from tests.support import mcp_wire, stack
from tests.support.stack import GatewayProcess, Upstream

ALICE = "alice@example.com"
MAX_BODY = 4096


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayProcess, str, Upstream]]:
    logs = tmp_path_factory.mktemp("protocol-errors")
    with Issuer() as issuer, stack.upstream(logs) as upstream:
        ports = stack.reserve_gateway_ports()
        audience = stack.audience_for(ports[0])
        policy = stack.write_policy_dir(logs / "policy", stack.server_yaml(issuer.issuer, audience))
        token = issuer.mint(ALICE, agent="support-bot", audience=audience, scopes=["mcp:tools"])
        with stack.gateway(
            logs,
            upstream_url=upstream.url,
            ports=ports,
            policy_dir=policy,
            audit_file=logs / "audit.jsonl",
            # One record per refusal (no aggregation window): each case must name its own.
            env={"REMIT_MAX_BODY_BYTES": str(MAX_BODY), "REMIT_REFUSAL_INTERVAL": "0"},
        ) as gateway:
            yield gateway, token, upstream


def _post(gateway: GatewayProcess, token: str, content: bytes, **headers: str) -> httpx.Response:
    sent = {**mcp_wire.headers("tools/call", {"name": "read_file"}, token), **headers}
    sent["content-type"] = "application/json"
    return httpx.post(gateway.url, content=content, headers=sent, timeout=10)


CASES: dict[str, tuple[Callable[[GatewayProcess, str], httpx.Response], int, str]] = {
    "malformed-json": (
        lambda g, t: _post(g, t, b'{"jsonrpc": "2.0", "id": 1,'),
        400,
        "Parse error: body is not valid JSON",
    ),
    "body-too-large": (
        lambda g, t: _post(g, t, b"[" + b" " * MAX_BODY + b"]"),
        413,
        f"exceeds {MAX_BODY} bytes",
    ),
    "routing-header-mismatch": (
        lambda g, t: mcp_wire.tool_call(
            g.url,
            "read_file",
            {"path": "/data/alice/notes.txt"},
            token=t,
            extra_headers={"mcp-name": "delete_file"},
        ),
        400,
        "Header mismatch: mcp-name header does not match",
    ),
    # A decoder that folds case (Go's encoding/json) would run delete_file: the gateway must
    # not decide on "name" while the upstream acts on "Name" (adversarial review).
    "keys-differing-in-case": (
        lambda g, t: _post(
            g,
            t,
            b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": '
            b'"read_file", "Name": "delete_file", "arguments": {"path": "/data/a.txt"}}}',
        ),
        400,
        "keys that differ only in case ('Name')",
    ),
    "method-differing-in-case": (
        lambda g, t: _post(
            g,
            t,
            b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "METHOD": "tools/call", '
            b'"params": {"name": "delete_file"}}',
            **{"mcp-method": "tools/list"},
        ),
        400,
        "keys that differ only in case ('METHOD')",
    ),
}


# JSON-RPC parse error; the 2026-07-28 header-mismatch code; everything else Invalid Request.
CODES = {"malformed-json": -32700, "routing-header-mismatch": -32020}
REASONS = {"routing-header-mismatch": "header_mismatch"}


@pytest.mark.parametrize("case", list(CASES))
def test_a_request_refused_for_its_form_is_recorded(
    setup: tuple[GatewayProcess, str, Upstream], case: str
) -> None:
    gateway, token, upstream = setup
    send, status, text = CASES[case]
    forwarded = upstream.count()
    before = len(gateway.records())
    answer = send(gateway, token)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == CODES.get(case, -32600)
    new: list[dict[str, Any]] = gateway.records()[before:]
    refusals = [r for r in new if r.get("decision") == "deny"]
    assert len(refusals) == 1, new
    assert refusals[0]["decision"] == "deny"
    assert refusals[0]["reason"] == REASONS.get(case, "invalid_request")
    assert text in refusals[0]["message"]
    assert upstream.count() == forwarded


@pytest.mark.parametrize(
    ("method", "path", "status", "text"),
    [
        ("GET", "/elsewhere", 404, "Not Found"),
        ("PUT", None, 405, "Method PUT not allowed"),
    ],
)
def test_a_wrong_path_or_method_is_recorded_and_never_forwarded(
    setup: tuple[GatewayProcess, str, Upstream],
    method: str,
    path: str | None,
    status: int,
    text: str,
) -> None:
    gateway, _token, upstream = setup
    forwarded = upstream.count()
    before = len(gateway.records())
    url = gateway.url if path is None else gateway.url.rsplit("/", 1)[0] + path
    answer = httpx.request(method, url, content=b"{}", timeout=10)
    assert answer.status_code == status, answer.text
    if status == 405:
        assert answer.headers["allow"] == "GET, POST, DELETE"
    new: list[dict[str, Any]] = gateway.records()[before:]
    refusals = [r for r in new if r.get("decision") == "deny"]
    assert len(refusals) == 1, new
    assert refusals[0]["reason"] == "invalid_request"
    assert text in refusals[0]["message"]
    assert upstream.count() == forwarded
