"""An agent's token from an RFC 8693 token exchange at Keycloak is bound to user and agent.

The user logs in at the MCP client; the agent (confidential client ``agent-travel``) trades
that token at Keycloak's token endpoint (standard token exchange) for one of its own. The
exchanged token keeps the user as ``sub`` and names the agent in ``act`` (a hardcoded-claim
mapper on the agent's client, see docs/identity.md) and ``azp``; the gateway's decision
record names the user as subject and the agent as agent.
"""

from __future__ import annotations

from tests.idp.calls import call_tool
from tests.idp.keycloak import AGENT, CLIENT, SUBJECTS, Keycloak, token_claims
from tests.support.stack import GatewayProcess


async def test_exchanged_token_carries_act_and_binds_subject_and_agent(
    gateway: GatewayProcess, keycloak: Keycloak
) -> None:
    user = keycloak.login("alice")["access_token"]
    exchanged = keycloak.exchange(user)["access_token"]

    claims = token_claims(exchanged)
    assert claims["act"] == {"sub": AGENT}
    assert claims["sub"] == SUBJECTS["alice"]
    assert claims["azp"] == AGENT
    result, records = await call_tool(
        gateway, exchanged, "read_file", {"path": "/data/alice/notes.txt"}
    )
    assert not result.is_error, result
    assert [(r["decision"], r["subject"], r["agent"]) for r in records] == [
        ("allow", SUBJECTS["alice"], AGENT)
    ]


async def test_the_users_own_token_names_the_client_as_agent(
    gateway: GatewayProcess, keycloak: Keycloak
) -> None:
    user = keycloak.login("alice")["access_token"]

    assert "act" not in token_claims(user)
    result, records = await call_tool(gateway, user, "list_files", {})
    assert not result.is_error, result
    assert [(r["decision"], r["subject"], r["agent"]) for r in records] == [
        ("allow", SUBJECTS["alice"], CLIENT)
    ]
