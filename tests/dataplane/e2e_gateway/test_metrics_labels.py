"""Metrics scraped over HTTP from a real gateway carry server, agent, tool, effect and reason,
bounded by the bundle: names the bundle does not use are counted as ``other``."""

from __future__ import annotations

import secrets

from tests.dataplane.e2e_gateway.conftest import BOT, Mint
from tests.support import mcp_wire
from tests.support.stack import GatewayProcess, metric_value

SERVER = "agents/files"


def test_decisions_are_labelled_by_agent_and_tool_and_unknown_names_are_other(
    gateway: GatewayProcess, mint: Mint
) -> None:
    before = gateway.metrics()
    labels = {"server": SERVER, "agent": BOT, "effect": "allow", "reason": "allowed"}
    allowed = metric_value(before, "remit_call_decisions_total", tool="list_files", **labels)
    invented = f"tool-{secrets.token_hex(8)}"  # a caller-chosen name: must not become a series
    stranger = f"agent-{secrets.token_hex(8)}"

    answer = mcp_wire.tool_call(gateway.url, "list_files", {"path": "/data/alice"}, token=mint())
    assert "result" in answer.json()
    mcp_wire.tool_call(gateway.url, invented, {}, token=mint())
    mcp_wire.tool_call(gateway.url, "list_files", {"path": "/"}, token=mint(agent=stranger))

    text = gateway.metrics()
    assert invented not in text
    assert stranger not in text
    after = metric_value(text, "remit_call_decisions_total", tool="list_files", **labels)
    assert after == allowed + 1
    other_tool = {"server": SERVER, "agent": BOT, "tool": "other", "effect": "deny"}
    assert any(
        metric_value(text, "remit_call_decisions_total", reason=reason, **other_tool) >= 1
        for reason in ("no_matching_rule", "tool_not_found", "denied_by_rule")
    ), [line for line in text.splitlines() if 'tool="other"' in line]
    assert 'agent="other"' in text
    assert metric_value(text, "remit_bundle_age_seconds") >= 0
    assert "remit_bundle_age_seconds " in text
    assert metric_value(text, "remit_audit_sink_healthy") == 1
    assert metric_value(text, "remit_decision_seconds_count") >= 3
