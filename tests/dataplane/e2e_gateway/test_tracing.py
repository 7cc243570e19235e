"""Traces and OTLP records from a real gateway, received by a real OTLP/HTTP endpoint.

One ``remit gateway`` with ``REMIT_OTLP_ENDPOINT`` (and ``REMIT_OTLP_LOGS``) in front of the
recording MCP server; the MCP SDK client calls a tool with a W3C ``traceparent``. The receiver
gets the request's SERVER span in the caller's trace, its authenticate/decide/forward
children, the identity and decision attributes, and the records as log lines; the MCP server
receives the ``forward`` span's context.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from mcp.shared.exceptions import MCPError

from remit.demo.issuer import Issuer
from tests.dataplane.e2e_gateway.conftest import ALICE, BOT, connect
from tests.support import stack
from tests.support.otlp import OtlpReceiver, Span, otlp_receiver

SERVER_KIND = 2  # SPAN_KIND_SERVER in the OTLP enum
CLIENT_KIND = 3


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as running:
        yield running


@pytest.fixture(scope="module")
def traced(
    logs: Path, issuer: Issuer, upstream: stack.Upstream, receiver: OtlpReceiver
) -> Iterator[tuple[stack.GatewayProcess, str]]:
    ports = stack.reserve_gateway_ports()
    audience = stack.audience_for(ports[0])
    policy = stack.write_policy_dir(
        logs / "traced-policy", stack.server_yaml(issuer.issuer, audience)
    )
    env = {
        "REMIT_OTLP_ENDPOINT": receiver.endpoint,
        "REMIT_OTLP_LOGS": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "50",  # the SDK's batch delay, in ms
        "OTEL_BLRP_SCHEDULE_DELAY": "50",
    }
    with stack.gateway(
        logs,
        upstream_url=upstream.url,
        ports=ports,
        policy_dir=policy,
        audit_file=logs / "traced-audit.jsonl",
        env=env,
    ) as running:
        token = issuer.mint(ALICE, agent=BOT, audience=audience, scopes=["mcp:tools"])
        yield running, token


def _root_of(trace_id: str) -> Callable[[OtlpReceiver], Span | None]:
    def find(receiver: OtlpReceiver) -> Span | None:
        return next(
            (
                s
                for s in receiver.spans
                if s.trace_id == trace_id
                and s.kind == SERVER_KIND
                and s.attributes.get("gen_ai.tool.name") == "list_files"
            ),
            None,
        )

    return find


async def test_a_tool_call_is_one_span_in_the_callers_trace_with_identity_and_decision(
    traced: tuple[stack.GatewayProcess, str], receiver: OtlpReceiver, upstream: stack.Upstream
) -> None:
    gateway, token = traced
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    traceparent = f"00-{trace_id}-{caller_span}-01"
    async with connect(gateway.url, token, "2026-07-28", traceparent=traceparent) as client:
        result = await client.call_tool("list_files", {"path": "/data/alice"})
    assert not result.is_error

    root = receiver.wait_for(_root_of(trace_id))
    assert root.parent_id == caller_span  # the caller's trace continues
    assert root.name == "tools/call list_files"
    attributes = root.attributes
    assert attributes["mcp.method.name"] == "tools/call"
    assert attributes["gen_ai.operation.name"] == "execute_tool"
    assert attributes["remit.subject"] == attributes["enduser.id"] == ALICE
    assert attributes["remit.agent"] == attributes["gen_ai.agent.name"] == BOT
    assert attributes["remit.decision"] == "allow"
    assert attributes["remit.reason"] == "allowed"
    assert attributes["remit.rule.ids"]
    assert attributes["remit.outcome"] == "ok"
    assert len(attributes["remit.bundle.digest"]) == 64
    decision_id = attributes["remit.decision.id"]
    assert gateway.record(decision_id)["tool"] == "list_files"
    assert root.resource["service.name"] == "remit-gateway"

    def children(receiver: OtlpReceiver) -> dict[str, Span] | None:
        found = {s.name: s for s in receiver.spans if s.parent_id == root.span_id}
        return found if {"authenticate", "decide", "forward"} <= set(found) else None

    spans = receiver.wait_for(children)
    forward = spans["forward"]
    assert forward.kind == CLIENT_KIND
    assert all(s.trace_id == trace_id for s in spans.values())

    # ... and on to the MCP server: its request carries the forward span as parent.
    calls = [
        r for r in upstream.calls("tools/call") if trace_id in r["headers"].get("traceparent", "")
    ]
    assert [r["headers"]["traceparent"] for r in calls] == [f"00-{trace_id}-{forward.span_id}-01"]

    # The records themselves left as OTLP log records too, identical to the log's lines.
    def logged(receiver: OtlpReceiver) -> str | None:
        return next((body for body, _ in receiver.logs if decision_id in body), None)

    line = receiver.wait_for(logged)
    assert gateway.record(decision_id) == orjson.loads(line)


async def test_a_denied_call_carries_the_reason_and_rule(
    traced: tuple[stack.GatewayProcess, str], receiver: OtlpReceiver
) -> None:
    gateway, token = traced
    trace_id = secrets.token_hex(16)
    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    async with connect(gateway.url, token, "2026-07-28", traceparent=traceparent) as client:
        with pytest.raises(MCPError, match="Unknown tool"):  # hidden: denied like unknown
            await client.call_tool("delete_file", {"path": "/data/alice/notes.txt"})

    def root(receiver: OtlpReceiver) -> Span | None:
        return next(
            (
                s
                for s in receiver.spans
                if s.trace_id == trace_id and s.attributes.get("remit.decision") == "deny"
            ),
            None,
        )

    span = root(receiver) or receiver.wait_for(root)
    assert span.name == "tools/call delete_file"
    assert span.attributes["error.type"] == span.attributes["remit.reason"]
    assert gateway.record(span.attributes["remit.decision.id"])["decision"] == "deny"


async def test_without_a_header_the_trace_continues_from_params_meta(
    traced: tuple[stack.GatewayProcess, str], receiver: OtlpReceiver, upstream: stack.Upstream
) -> None:
    gateway, token = traced
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    meta = {"traceparent": f"00-{trace_id}-{caller_span}-01"}
    async with connect(gateway.url, token, "2026-07-28") as client:  # no traceparent header
        result = await client.call_tool("list_files", {"path": "/data/alice"}, meta=meta)
    assert not result.is_error
    root = receiver.wait_for(_root_of(trace_id))
    assert root.parent_id == caller_span  # continued from the message's _meta
    assert root.attributes["remit.decision"] == "allow"
