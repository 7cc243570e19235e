"""A real gateway process stays transparent where it should and guards where servers must.

W3C trace context passes through unchanged (tracing off); a rebound ``Host`` or a foreign
``Origin`` is refused before authentication and recorded; a 2026-07-28 request for a method
the gateway does not know is 404 with -32601, recorded, and never forwarded.
"""

from __future__ import annotations

from tests.dataplane.e2e_gateway.conftest import Mint
from tests.support import mcp_wire
from tests.support.stack import GatewayProcess, Upstream

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACESTATE = "remit=t61rcWkgMzE,other=x"


def test_trace_context_reaches_the_server_unchanged(
    gateway: GatewayProcess, upstream: Upstream, mint: Mint
) -> None:
    trace = {"traceparent": TRACEPARENT, "tracestate": TRACESTATE}
    answer = mcp_wire.call(gateway.url, "tools/list", token=mint(), extra_headers=trace)
    assert answer.status_code == 200
    forwarded = upstream.calls("tools/list")[-1]["headers"]
    assert forwarded["traceparent"] == TRACEPARENT
    assert forwarded["tracestate"] == TRACESTATE


def test_a_rebound_host_is_refused_before_authentication(
    gateway: GatewayProcess, upstream: Upstream, mint: Mint
) -> None:
    before = upstream.count()
    answer = mcp_wire.call(
        gateway.url, "tools/list", token=mint(), extra_headers={"host": "evil.example.com:80"}
    )
    assert answer.status_code == 421
    assert "Host" in answer.json()["error"]["message"]
    assert upstream.count() == before
    refusals = [r for r in gateway.records() if r.get("reason") == "host_not_allowed"]
    assert refusals
    assert "evil.example.com" in refusals[-1]["message"]


def test_a_foreign_origin_is_refused_and_a_local_one_is_not(
    gateway: GatewayProcess, upstream: Upstream, mint: Mint
) -> None:
    before = upstream.count()
    foreign = {"origin": "http://evil.example.com"}
    answer = mcp_wire.call(gateway.url, "tools/list", token=mint(), extra_headers=foreign)
    assert answer.status_code == 403
    assert upstream.count() == before
    local = {"origin": "http://localhost:6274"}
    answer = mcp_wire.call(gateway.url, "tools/list", token=mint(), extra_headers=local)
    assert answer.status_code == 200


def test_an_unknown_method_is_404_in_2026_07_28_and_not_forwarded(
    gateway: GatewayProcess, upstream: Upstream, mint: Mint
) -> None:
    before = upstream.count()
    answer = mcp_wire.call(gateway.url, "tools/invent", token=mint())
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == -32601
    removed = mcp_wire.call(gateway.url, "ping", token=mint())
    assert (removed.status_code, removed.json()["error"]["code"]) == (404, -32601)
    assert upstream.count() == before
