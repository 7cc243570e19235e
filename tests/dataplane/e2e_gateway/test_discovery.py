"""A call that arrives before any tools/list (a restarted sidecar, a client with a cached list)
is decided with the tool's real definition: the gateway asks the upstream itself first.

A fresh gateway has seen no tools/list. Without discovery, read_file would be decided with the
MCP default annotations (possibly destructive) and denied by the example's never-destructive
rule; with it, the read is allowed and the record names the tool definition's hash.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from remit.demo.issuer import Issuer
from tests.support import mcp_wire, stack

ALICE = "alice@example.com"


@pytest.fixture
def fresh(
    logs: Path, issuer: Issuer, upstream: stack.Upstream
) -> Iterator[tuple[stack.GatewayProcess, str]]:
    ports = stack.reserve_gateway_ports()
    audience = stack.audience_for(ports[0])
    policy = stack.write_policy_dir(
        logs / f"discovery-{ports[0]}", stack.server_yaml(issuer.issuer, audience)
    )
    with stack.gateway(
        logs,
        upstream_url=upstream.url,
        ports=ports,
        policy_dir=policy,
        audit_file=logs / f"discovery-{ports[0]}.jsonl",
    ) as running:
        yield running, audience


def test_first_call_without_a_list_is_decided_with_the_real_definition(
    fresh: tuple[stack.GatewayProcess, str], issuer: Issuer
) -> None:
    gateway, audience = fresh
    token = issuer.mint(ALICE, agent="support-bot", audience=audience, scopes=["mcp:tools"])
    response = mcp_wire.tool_call(
        gateway.url, "read_file", {"path": "/data/readme.txt"}, token=token
    )
    assert response.status_code == 200
    result = response.json()["result"]
    assert not result.get("isError"), result
    (decision,) = [
        r for r in gateway.records() if r.get("type") == "decision" and r.get("tool") == "read_file"
    ]
    assert decision["decision"] == "allow"
    assert decision["toolHash"]  # the definition was known when the call was decided
