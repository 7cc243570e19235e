"""Tool pinning against a real MCP server whose tool definition changes after first sight
(a "rug pull"): under Enforce the changed tool is hidden and its calls denied; under Audit it
stays usable and the mismatch is counted in /metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from remit.demo.issuer import Issuer
from tests.dataplane.e2e_gateway.conftest import MODES, connect
from tests.support import mcp_wire, stack
from tests.support.upstreams import ORIGINAL, POISONED

POLICY = """\
apiVersion: remit.dev/v1alpha1
kind: AgentPolicy
metadata: {name: pin-bot, namespace: agents}
spec:
  servers: [flip]
  agents: [pin-bot]
  rules:
  - name: everything
    effect: Allow
    tools: ["*"]
"""


@pytest.fixture(scope="module")
def flip_upstream(logs: Path) -> Iterator[stack.Upstream]:
    with stack.upstream(logs, kind="flip") as running:
        yield running


def _pinning_gateway(
    logs: Path, issuer: Issuer, upstream: stack.Upstream, mode: str
) -> Iterator[tuple[stack.GatewayProcess, str]]:
    ports = stack.reserve_gateway_ports()
    audience = stack.audience_for(ports[0])
    policy = stack.write_policy_dir(
        logs / f"pin-{mode}",
        stack.server_yaml(issuer.issuer, audience, name="flip", tool_pinning=mode),
        examples=False,
        extra={"policy.yaml": POLICY},
    )
    with stack.gateway(
        logs,
        upstream_url=upstream.url,
        ports=ports,
        policy_dir=policy,
        server="flip",
        audit_file=logs / f"pin-{mode}.jsonl",
    ) as running:
        yield running, issuer.mint("alice@example.com", agent="pin-bot", audience=audience,
                                   scopes=["mcp:tools"])  # fmt: skip


@pytest.fixture(scope="module")
def enforcing(
    logs: Path, issuer: Issuer, flip_upstream: stack.Upstream
) -> Iterator[tuple[stack.GatewayProcess, str]]:
    yield from _pinning_gateway(logs, issuer, flip_upstream, "Enforce")


@pytest.fixture(scope="module")
def auditing(
    logs: Path, issuer: Issuer, flip_upstream: stack.Upstream
) -> Iterator[tuple[stack.GatewayProcess, str]]:
    yield from _pinning_gateway(logs, issuer, flip_upstream, "Audit")


@pytest.fixture(scope="module")
def rug_pulled(
    enforcing: tuple[stack.GatewayProcess, str], auditing: tuple[stack.GatewayProcess, str]
) -> None:
    """Both gateways pin greet's original definition; then the server changes it."""
    for gateway, token in (enforcing, auditing):
        listed = mcp_wire.call(gateway.url, "tools/list", {}, token=token).json()
        tools = {t["name"]: t["description"] for t in listed["result"]["tools"]}
        assert tools["greet"] == ORIGINAL
    pulled = mcp_wire.tool_call(enforcing[0].url, "rug_pull", {}, token=enforcing[1])
    assert pulled.json()["result"]["isError"] is False


@pytest.mark.usefixtures("rug_pulled")
@pytest.mark.parametrize("mode", MODES)
async def test_enforce_hides_and_denies_a_changed_tool(
    enforcing: tuple[stack.GatewayProcess, str], mode: str
) -> None:
    gateway, token = enforcing
    async with connect(gateway.url, token, mode) as client:
        names = [t.name for t in (await client.list_tools()).tools]
        result = await client.call_tool("greet", {"name": "bob"})
    assert names == ["rug_pull"]
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert "tool_pin_mismatch" in text
    record = gateway.record(text.rsplit("Decision record ", 1)[1].rstrip("."))
    assert (record["decision"], record["reason"], record["tool"]) == (
        "deny",
        "tool_pin_mismatch",
        "greet",
    )
    metrics = gateway.metrics()
    assert stack.metric_value(metrics, "remit_tool_pin_mismatches_total") >= 1
    assert (
        stack.metric_value(
            metrics, "remit_decisions_total", effect="deny", reason="tool_pin_mismatch"
        )
        >= 1
    )


@pytest.mark.usefixtures("rug_pulled")
@pytest.mark.parametrize("mode", MODES)
async def test_audit_allows_a_changed_tool_and_counts_it(
    auditing: tuple[stack.GatewayProcess, str], mode: str
) -> None:
    gateway, token = auditing
    before = stack.metric_value(gateway.metrics(), "remit_tool_pin_mismatches_total")
    async with connect(gateway.url, token, mode) as client:
        tools = {t.name: t.description for t in (await client.list_tools()).tools}
        result = await client.call_tool("greet", {"name": "bob"})
    assert tools["greet"] == POISONED
    assert not result.is_error
    assert result.content[0].text == "hello bob"  # type: ignore[union-attr]
    after = stack.metric_value(gateway.metrics(), "remit_tool_pin_mismatches_total")
    assert after >= before + 2  # the listing and the call
