"""Dex, configured as docs/identity.md's recipe says, in front of a real MCP server.

Dex and the gateway both take their settings from the recipe's YAML blocks
(``tests/idp/dex.py``). The agent ``travel-agent`` gets Alice's and Bob's tokens with the
password grant, asking for the MCP server's audience as the recipe says; the MCP SDK client
calls through the gateway, and the decision records name Dex's subject and the agent from
``azp``. ``dex-policies.yaml`` lets the agent read files for the group ``finance`` only.
"""

from __future__ import annotations

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.idp.calls import call_tool
from tests.idp.dex import AGENT, RECIPE, Dex, subject_of
from tests.idp.keycloak import token_claims
from tests.support.stack import GatewayProcess

ALICE = "alice@example.com"
BOB = "bob@example.com"


def subject(dex: Dex, email: str) -> str:
    return subject_of(dex.users()[email]["userID"])


def test_recipe_token_names_server_agent_and_groups(dex_stack: tuple[Dex, GatewayProcess]) -> None:
    dex, _ = dex_stack
    claims = token_claims(dex.password_token(ALICE))

    assert claims["iss"] == dex.issuer
    assert sorted(claims["aud"]) == sorted([dex.audience, AGENT])
    assert claims["azp"] == AGENT
    assert claims["sub"] == subject(dex, ALICE)
    assert f"`{claims['sub']}`" in RECIPE.read_text()  # the recipe's example of Alice's sub
    assert claims["groups"] == ["finance"]
    assert "act" not in claims
    assert not {"scope", "scp"} & claims.keys()  # why requiredScopes stays empty


async def test_allowed_call_records_the_dex_subject_and_the_azp_agent(
    dex_stack: tuple[Dex, GatewayProcess],
) -> None:
    dex, gateway = dex_stack
    token = dex.password_token(ALICE)

    result, records = await call_tool(
        gateway, token, "read_file", {"path": "/data/alice/notes.txt"}
    )

    assert not result.is_error, result
    assert [(r["decision"], r["subject"], r["agent"], r["rules"]) for r in records] == [
        ("allow", subject(dex, ALICE), AGENT, ["agents/dex-finance-readers#read"])
    ]


async def test_denied_calls_record_the_dex_subject_and_the_azp_agent(
    dex_stack: tuple[Dex, GatewayProcess],
) -> None:
    dex, gateway = dex_stack
    alice, bob = dex.password_token(ALICE), dex.password_token(BOB)
    before = len(gateway.records())

    with pytest.raises(BaseExceptionGroup) as not_granted:  # the SDK client's task group
        await call_tool(gateway, alice, "write_file", {"path": "/data/x", "content": "x"})
    with pytest.raises(BaseExceptionGroup) as not_in_group:
        await call_tool(gateway, bob, "read_file", {"path": "/data/alice/notes.txt"})

    assert not_granted.group_contains(MCPError, match="Unknown tool: write_file")
    assert not_in_group.group_contains(MCPError, match="Unknown tool: read_file")
    calls = [r for r in gateway.records()[before:] if r.get("tool") in ("write_file", "read_file")]
    assert [(r["tool"], r["decision"], r["subject"], r["agent"]) for r in calls] == [
        ("write_file", "deny", subject(dex, ALICE), AGENT),
        ("read_file", "deny", subject(dex, BOB), AGENT),
    ]


def test_token_without_the_servers_audience_is_refused(
    dex_stack: tuple[Dex, GatewayProcess],
) -> None:
    dex, gateway = dex_stack
    token = dex.password_token(ALICE, audience=False)
    assert token_claims(token)["aud"] == AGENT

    answer = httpx.post(
        gateway.url,
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/json, text/event-stream",
        },
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        timeout=15,
    )

    assert answer.status_code == 401
    assert "invalid_token" in answer.headers["www-authenticate"]
    assert "audience" in answer.headers["www-authenticate"]
