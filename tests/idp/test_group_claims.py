"""Keycloak's own group and role claims become ``subject.groups`` through ``groupClaims``.

Keycloak puts group membership in ``groups`` (the group-membership mapper, short names) and
realm roles in ``realm_access.roles``. The MCPServer maps both: ``groups`` as they are and
``/realm_access/roles`` with the prefix ``role:``. Alice is in the group ``finance`` (policy
``finance-readers`` lets her read); Bob is in ``engineering`` with the realm role
``mcp-auditor`` (policy ``auditors``, for ``role:mcp-auditor``, lets him list, not read).
"""

from __future__ import annotations

import pytest
from mcp.shared.exceptions import MCPError

from tests.idp.calls import call_tool
from tests.idp.keycloak import SUBJECTS, Keycloak, token_claims
from tests.support.stack import GatewayProcess


async def test_keycloak_group_membership_selects_the_group_policy(
    gateway: GatewayProcess, keycloak: Keycloak
) -> None:
    token = keycloak.login("alice")["access_token"]

    assert token_claims(token)["groups"] == ["finance"]
    result, records = await call_tool(
        gateway, token, "read_file", {"path": "/data/alice/notes.txt"}
    )
    assert not result.is_error, result
    [record] = records
    assert record["decision"] == "allow"
    assert record["rules"] == ["agents/finance-readers#read"]


async def test_keycloak_realm_role_maps_to_a_prefixed_group(
    gateway: GatewayProcess, keycloak: Keycloak
) -> None:
    token = keycloak.login("bob")["access_token"]
    claims = token_claims(token)
    assert "mcp-auditor" in claims["realm_access"]["roles"]
    assert claims["groups"] == ["engineering"]

    listed, list_records = await call_tool(gateway, token, "list_files", {})
    before = len(gateway.records())
    with pytest.raises(BaseExceptionGroup) as refused:  # the SDK client's task group
        await call_tool(gateway, token, "read_file", {"path": "/data/alice/notes.txt"})
    assert refused.group_contains(MCPError, match="Unknown tool: read_file")  # hidden from Bob

    assert not listed.is_error, listed
    assert [(r["decision"], r["subject"], r["rules"]) for r in list_records] == [
        ("allow", SUBJECTS["bob"], ["agents/auditors#list"])
    ]
    denied = [r for r in gateway.records()[before:] if r.get("tool") == "read_file"]
    assert [(r["decision"], r["subject"]) for r in denied] == [("deny", SUBJECTS["bob"])]
