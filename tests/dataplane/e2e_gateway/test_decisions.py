"""Decisions through the assembled gateway, driven by the real MCP SDK client in both protocol
generations: list filtering per identity, rules, consent, hidden tools, resources, prompts."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from mcp.shared.exceptions import MCPError

from tests.dataplane.e2e_gateway.conftest import ALICE, BOB, ERIN, FRANK, MODES, Mint, connect
from tests.support import mcp_wire
from tests.support.stack import GatewayProcess, Upstream


def _text(result: object) -> str:
    content = result.content  # type: ignore[attr-defined]
    return "".join(getattr(part, "text", "") for part in content)


def _decision_of_forwarded_call(upstream: Upstream, path: str) -> str:
    """The X-Remit-Decision header of the forwarded tools/call that wrote ``path``."""
    for request in upstream.calls("tools/call"):
        arguments = request["rpc"]["params"].get("arguments", {})
        if arguments.get("path") == path:
            return str(request["headers"]["x-remit-decision"])
    raise AssertionError(f"no forwarded call wrote {path}")


@pytest.mark.parametrize("mode", MODES)
async def test_tools_list_shows_what_the_identity_may_call(
    gateway: GatewayProcess, mint: Mint, mode: str
) -> None:
    async with connect(gateway.url, mint(), mode) as client:
        alice = {tool.name for tool in (await client.list_tools()).tools}
    async with connect(gateway.url, mint(BOB), mode) as client:
        bob = {tool.name for tool in (await client.list_tools()).tools}
    async with connect(gateway.url, mint(agent="stranger-bot"), mode) as client:
        stranger = (await client.list_tools()).tools
    assert alice == {"read_file", "list_files", "write_file", "request_headers"}
    assert "write_file" not in bob  # bob's consent expired: the consent rule shows nothing
    assert {"read_file", "list_files"} <= bob
    assert stranger == []


@pytest.mark.parametrize("mode", MODES)
async def test_allowed_read_is_forwarded(gateway: GatewayProcess, mint: Mint, mode: str) -> None:
    async with connect(gateway.url, mint(), mode) as client:
        result = await client.call_tool("read_file", {"path": "/data/alice/notes.txt"})
    assert not result.is_error
    assert _text(result) == "alice's notes\n"


@pytest.mark.parametrize("mode", MODES)
async def test_write_under_consent_is_allowed_and_names_the_grant(
    gateway: GatewayProcess, upstream: Upstream, mint: Mint, mode: str
) -> None:
    path = f"/data/alice/{uuid.uuid4().hex}.txt"
    async with connect(gateway.url, mint(), mode) as client:
        written = await client.call_tool("write_file", {"path": path, "content": "hi"})
        read = await client.call_tool("read_file", {"path": path})
    assert not written.is_error, _text(written)
    assert _text(read) == "hi"
    record = gateway.record(_decision_of_forwarded_call(upstream, path))
    assert record["decision"] == "allow"
    assert record["subject"] == ALICE
    assert record["agent"] == "support-bot"
    assert record["tool"] == "write_file"
    assert record["grant"]["name"] == "agents/alice-support-bot-write"
    assert "agents/support-bot#write-needs-consent" in record["rules"]


@pytest.mark.parametrize("mode", MODES)
async def test_write_outside_the_consent_scope_explains_consent_required(
    gateway: GatewayProcess, upstream: Upstream, mint: Mint, mode: str
) -> None:
    path = f"/data/bob/{uuid.uuid4().hex}.txt"
    async with connect(gateway.url, mint(), mode) as client:
        result = await client.call_tool("write_file", {"path": path, "content": "x"})
    text = _text(result)
    assert result.is_error
    for fact in ("consent_required", "agents/files", "support-bot", "write_file", ALICE):
        assert fact in text, fact
    decision_id = text.rsplit("Decision record ", 1)[1].rstrip(".")
    record = gateway.record(decision_id)
    assert (record["decision"], record["reason"]) == ("deny", "consent_required")
    assert all(
        r["rpc"]["params"].get("arguments", {}).get("path") != path
        for r in upstream.calls("tools/call")
    )


@pytest.mark.parametrize("mode", MODES)
async def test_expired_grant_means_consent_required(
    gateway: GatewayProcess, mint: Mint, mode: str
) -> None:
    async with connect(gateway.url, mint(BOB), mode) as client:
        result = await client.call_tool("write_file", {"path": "/data/bob/x.txt", "content": "x"})
    assert result.is_error
    assert "consent_required" in _text(result)
    assert BOB in _text(result)


@pytest.mark.parametrize("mode", MODES)
async def test_destructive_tool_answers_like_an_unknown_tool(
    gateway: GatewayProcess, upstream: Upstream, mint: Mint, mode: str
) -> None:
    before = len(upstream.calls("tools/call"))
    async with connect(gateway.url, mint(), mode) as client:
        with pytest.raises(MCPError) as hidden:
            await client.call_tool("delete_file", {"path": "/data/bob/todo.txt"})
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("no_such_tool", {"path": "/data/bob/todo.txt"})
        still_there = await client.call_tool("read_file", {"path": "/data/bob/todo.txt"})
    assert hidden.value.code == unknown.value.code == -32602
    assert str(hidden.value) == "Unknown tool: delete_file"
    assert str(unknown.value) == "Unknown tool: no_such_tool"
    assert not still_there.is_error
    assert len(upstream.calls("tools/call")) == before + 1  # only the read was forwarded


@pytest.mark.parametrize("mode", MODES)
async def test_secrets_are_denied_by_rule(gateway: GatewayProcess, mint: Mint, mode: str) -> None:
    async with connect(gateway.url, mint(), mode) as client:
        result = await client.call_tool("read_file", {"path": "/data/secrets/key.pem"})
    assert result.is_error
    assert "denied_by_rule" in _text(result)
    assert "no-secrets" in _text(result)


def test_unknown_method_is_denied_and_recorded(gateway: GatewayProcess, mint: Mint) -> None:
    answer = mcp_wire.call(gateway.url, "frobnicate/now", {}, token=mint())
    error = answer.json()["error"]
    assert error["code"] == -32601
    record = gateway.record(error["data"]["decisionId"])
    assert (record["decision"], record["method"]) == ("deny", "frobnicate/now")
    assert record["reason"] == "method_not_allowed"


@pytest.mark.parametrize("mode", MODES)
async def test_resources_are_listed_and_read_by_rule(
    gateway: GatewayProcess, mint: Mint, mode: str
) -> None:
    async with connect(gateway.url, mint(), mode) as client:
        listed = [str(r.uri) for r in (await client.list_resources()).resources]
        readme = await client.read_resource("files://readme")
        with pytest.raises(MCPError) as denied:
            await client.read_resource("files://elsewhere")
    assert listed == ["files://readme"]
    assert "Welcome" in readme.contents[0].text  # type: ignore[union-attr]
    assert denied.value.code == -32003
    assert gateway.record(denied.value.data["decisionId"])["reason"] == "no_matching_rule"


@pytest.mark.parametrize("mode", MODES)
async def test_prompts_need_a_rule(gateway: GatewayProcess, mint: Mint, mode: str) -> None:
    async with connect(gateway.url, mint(), mode) as client:
        hidden = (await client.list_prompts()).prompts
        with pytest.raises(MCPError) as denied:
            await client.get_prompt("summarize_file", {"path": "/data/readme.txt"})
    async with connect(gateway.url, mint(agent="prompt-bot"), mode) as client:
        shown = [p.name for p in (await client.list_prompts()).prompts]
        prompt = await client.get_prompt("summarize_file", {"path": "/data/readme.txt"})
    assert hidden == []
    assert denied.value.code == -32003
    assert "no_matching_rule" in str(denied.value)
    assert shown == ["summarize_file"]
    assert "/data/readme.txt" in prompt.messages[0].content.text  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", MODES)
async def test_rate_limit_denies_the_third_call(
    gateway: GatewayProcess, mint: Mint, mode: str
) -> None:
    token = mint(f"rate-{mode}@example.com", agent="rate-bot")
    async with connect(gateway.url, token, mode) as client:
        first = await client.call_tool("list_files", {"prefix": "/data/"})
        second = await client.call_tool("list_files", {"prefix": "/data/"})
        third = await client.call_tool("list_files", {"prefix": "/data/"})
    assert not first.is_error
    assert not second.is_error
    assert third.is_error
    assert "rate_limited" in _text(third)
    decision_id = _text(third).rsplit("Decision record ", 1)[1].rstrip(".")
    record = gateway.record(decision_id)
    assert record["reason"] == "rate_limited"
    assert record["rules"] == ["agents/rate-bot#list-twice"]


@pytest.mark.parametrize(
    ("subject", "wording"),
    [
        (ERIN, "ConsentGrant agents/erin-write was revoked"),
        (FRANK, "agents/frank-write expired at"),
    ],
)
async def test_a_grant_ended_before_the_gateway_started_is_named_in_the_denial(
    gateway: GatewayProcess, mint: Mint, subject: str, wording: str
) -> None:
    async with connect(gateway.url, mint(subject), MODES[-1]) as client:
        listed = {tool.name for tool in (await client.list_tools()).tools}
        result = await client.call_tool("write_file", {"path": "/data/x.txt", "content": "x"})
    assert "write_file" not in listed  # an ended grant reveals nothing
    text = _text(result)
    assert result.is_error
    assert "consent_required" in text
    assert wording in text
    assert "has no active ConsentGrant" not in text
    record = gateway.record(text.rsplit("Decision record ", 1)[1].rstrip("."))
    assert (record["decision"], record["reason"]) == ("deny", "consent_required")
    assert wording in record["message"]
    explained = subprocess.run(
        [sys.executable, "-m", "remit", "audit", "explain", str(gateway.audit_file), record["id"]],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "DENIED with no consent grant in force" in explained.stdout
    assert wording in " ".join(explained.stdout.split())
