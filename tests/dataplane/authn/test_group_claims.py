"""``authentication.groupClaims``: where ``subject.groups`` come from, in the provider's shape.

Paths are checked when the MCPServer is loaded (a malformed JSON Pointer names itself), carried
through the bundle, and followed by the authenticator on real signed tokens. The same shapes
against a real Keycloak are in tests/idp.
"""

from __future__ import annotations

from typing import Any

import pytest

from remit.api.claimpath import parse_claim_path
from remit.api.loader import parse
from remit.api.mcpserver import MCPServer
from remit.demo.issuer import Issuer
from remit.errors import AuthenticationError, ResourceError
from remit.gateway.authn import auth_settings_for
from remit.gateway.claims import MAX_GROUPS, GroupSource, group_sources, groups_from
from remit.policy.bundle import GroupClaim
from remit.policy.compiler import compile_bundle
from tests.dataplane.authn.conftest import SCOPE, AuthenticatorFactory, bearer
from tests.support.policies import server

KEYCLOAK_SHAPE: dict[str, Any] = {
    "groups": ["finance", "ops"],
    "realm_access": {"roles": ["mcp-auditor", "finance"]},
    "resource_access": {"files/api": {"roles": ["reader"]}},
    "https://example.com/roles": ["admin"],
}


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("groups", ("groups",)),
        ("https://example.com/roles", ("https://example.com/roles",)),
        ("realm_access.roles", ("realm_access.roles",)),
        ("/realm_access/roles", ("realm_access", "roles")),
        ("/resource_access/files~1api/roles", ("resource_access", "files/api", "roles")),
        ("/a~0b", ("a~b",)),
        ("/~01", ("~1",)),
    ],
)
def test_claim_path_is_a_claim_name_or_a_json_pointer(text: str, path: tuple[str, ...]) -> None:
    assert parse_claim_path(text) == path


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "must not be empty"),
        ("/", "empty segment"),
        ("/realm_access//roles", "empty segment"),
        ("/a~2", "followed by 0 or 1"),
        ("/a~", "followed by 0 or 1"),
        ("/~~01", "followed by 0 or 1"),
        ("/a/b/c/d/e/f/g/h/i", "deeper than"),
        ("x" * 257, "longer than"),
    ],
)
def test_malformed_claim_path_is_refused(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_claim_path(text)


def test_mcpserver_with_a_bad_pointer_names_the_field() -> None:
    document = server(
        authentication={
            "issuer": "https://idp.example.com/realms/acme",
            "audience": "https://files.example.com/mcp",
            "groupClaims": [{"claim": "/realm_access/~roles"}],
        }
    )
    with pytest.raises(ResourceError, match=r"groupClaims.*followed by 0 or 1"):
        parse(document)


def test_group_claims_default_to_groups_and_reach_the_authenticator() -> None:
    default = parse(server())
    assert isinstance(default, MCPServer)
    assert [g.claim for g in default.spec.authentication.group_claims] == ["groups"]
    mapped = parse(
        server(
            authentication={
                "issuer": "https://idp.example.com/realms/acme",
                "audience": "https://files.example.com/mcp",
                "groupClaims": [{"claim": "/realm_access/roles", "prefix": "role:"}],
                "jwksCacheSeconds": 60,
                "jwksMinRefreshSeconds": 2,
            }
        )
    )
    bundle = compile_bundle([mapped], "files")
    assert bundle.server.group_claims == (GroupClaim(claim="/realm_access/roles", prefix="role:"),)
    settings = auth_settings_for(bundle.server)
    assert settings.group_sources == (GroupSource(("realm_access", "roles"), "role:"),)
    assert (settings.jwks_cache_seconds, settings.jwks_min_refresh_interval_seconds) == (60, 2)


def test_groups_merge_in_order_with_prefixes_and_without_duplicates() -> None:
    sources = group_sources(
        [
            GroupClaim(claim="groups"),
            GroupClaim(claim="/realm_access/roles", prefix="role:"),
            GroupClaim(claim="/resource_access/files~1api/roles", prefix="files:"),
            GroupClaim(claim="https://example.com/roles"),
            GroupClaim(claim="/realm_access/roles"),
        ]
    )
    assert groups_from(KEYCLOAK_SHAPE, sources) == (
        "finance",
        "ops",
        "role:mcp-auditor",
        "role:finance",
        "files:reader",
        "admin",
        "mcp-auditor",  # "finance" from the same roles unprefixed is already there
    )


@pytest.mark.parametrize(
    "claims",
    [
        {},
        {"groups": "finance"},
        {"groups": {"finance": True}},
        {"groups": [1, None, "", {"x": 1}]},
        {"realm_access": ["roles"]},
        {"realm_access": {"roles": "finance"}},
    ],
)
def test_values_that_are_not_lists_of_names_give_no_groups(claims: dict[str, Any]) -> None:
    sources = group_sources([GroupClaim(claim="groups"), GroupClaim(claim="/realm_access/roles")])
    assert groups_from(claims, sources) == ()


def test_too_many_groups_refuse_the_token_rather_than_drop_some() -> None:
    claims = {"groups": [f"g{i}" for i in range(MAX_GROUPS)], "roles": ["one-more"]}
    sources = group_sources([GroupClaim(claim="groups"), GroupClaim(claim="roles")])
    with pytest.raises(AuthenticationError, match=f"more than {MAX_GROUPS} groups"):
        groups_from(claims, sources)


async def test_authenticator_reads_keycloak_shaped_roles(
    issuer: Issuer, make_authenticator: AuthenticatorFactory
) -> None:
    authenticator = make_authenticator(
        group_sources=(GroupSource(("groups",)), GroupSource(("realm_access", "roles"), "role:"))
    )
    token = issuer.mint(
        "alice",
        scopes=[SCOPE],
        groups=["finance"],
        extra_claims={"realm_access": {"roles": ["mcp-auditor"]}},
    )

    identity = await authenticator.authenticate(bearer(token))

    assert identity.groups == ("finance", "role:mcp-auditor")


async def test_without_group_claims_nobody_has_groups(
    issuer: Issuer, make_authenticator: AuthenticatorFactory
) -> None:
    authenticator = make_authenticator(group_sources=())
    token = issuer.mint("alice", scopes=[SCOPE], groups=["finance"])

    assert (await authenticator.authenticate(bearer(token))).groups == ()
