"""``authentication.agentClaims``: where the agent comes from when a token carries no ``act``.

Okta names the client in ``cid``, Entra ID v1.0 in ``appid`` (v2.0 in ``azp``); neither issues
RFC 8693 ``act``. The list is checked when the MCPServer is loaded, carried through the bundle
and followed by the authenticator on real signed tokens shaped as those providers issue them,
fetched keys and all. ``act`` always wins; claims that disagree refuse the token.
"""

from __future__ import annotations

from typing import Any

import pytest

from remit.api.loader import parse
from remit.api.mcpserver import MCPServer
from remit.demo.issuer import Issuer
from remit.errors import AuthenticationError, BundleError, ResourceError
from remit.gateway.agents import AgentSource, agent_sources
from remit.gateway.authn import auth_settings_for
from remit.policy.bundle import BUNDLE_WIRE, parse_bundle
from remit.policy.compiler import compile_bundle
from remit.policy.wire import later_fields
from tests.dataplane.authn.conftest import AUDIENCE, SCOPE, AuthenticatorFactory, bearer
from tests.dataplane.compat.v1 import schema as v1
from tests.support.policies import server

OKTA_CLIENT = "0oa1b2c3d4e5f6g7h8i9"
ENTRA_APP = "6e74172b-be56-4843-9ff4-e66a39bb12e3"


def okta_claims(**more: Any) -> dict[str, Any]:
    """What an Okta custom authorization server puts in an access token besides the basics."""
    return {
        "ver": 1,
        "cid": OKTA_CLIENT,
        "uid": "00u1a2b3c4d5e6f7g8h9",
        "scp": [SCOPE, "openid"],
        "auth_time": 1_799_999_000,
        **more,
    }


def entra_v1_claims(**more: Any) -> dict[str, Any]:
    """An Entra ID v1.0 access token's own claims: the client is ``appid``."""
    return {
        "ver": "1.0",
        "appid": ENTRA_APP,
        "appidacr": "1",
        "oid": "9f4e1c2a-0000-4000-8000-00000000a11c",
        "tid": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "scp": SCOPE,
        **more,
    }


def entra_v2_claims(**more: Any) -> dict[str, Any]:
    """An Entra ID v2.0 access token's own claims: the client is ``azp``."""
    return {
        "ver": "2.0",
        "azp": ENTRA_APP,
        "azpacr": "1",
        "oid": "9f4e1c2a-0000-4000-8000-00000000a11c",
        "tid": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "scp": SCOPE,
        **more,
    }


def with_agent_claims(claims: Any) -> dict[str, Any]:
    return server(
        authentication={
            "issuer": "https://idp.example.com/oauth2/default",
            "audience": "https://files.example.com/mcp",
            "agentClaims": claims,
        }
    )


def test_agent_claims_default_to_azp_then_client_id() -> None:
    loaded = parse(server())
    assert isinstance(loaded, MCPServer)
    assert loaded.spec.authentication.agent_claims == ["azp", "client_id"]
    bundle = compile_bundle([loaded], "files")
    assert bundle.server.agent_claims == ("azp", "client_id")


def test_agent_claims_are_compiled_into_the_bundle_and_reach_the_authenticator() -> None:
    loaded = parse(with_agent_claims(["cid", "/ext/agent"]))
    bundle = compile_bundle([loaded], "files")
    assert bundle.server.agent_claims == ("cid", "/ext/agent")
    assert auth_settings_for(bundle.server).agent_sources == (
        AgentSource("cid", ("cid",)),
        AgentSource("/ext/agent", ("ext", "agent")),
    )


def test_default_agent_claims_leave_the_bundle_as_format_1_wrote_it() -> None:
    bundle = compile_bundle([parse(server())], "files")

    assert "agentClaims" not in bundle.document()["server"]
    assert v1.parse_bundle(bundle.canonical()).digest == bundle.digest  # an older sidecar too


def test_set_agent_claims_are_written_signed_and_refused_by_an_older_sidecar() -> None:
    bundle = compile_bundle([parse(with_agent_claims(["cid"]))], "files")

    assert list(bundle.document()["server"]["agentClaims"]) == ["cid"]
    assert parse_bundle(bundle.canonical()).server.agent_claims == ("cid",)
    assert "ServerSettings.agentClaims" in later_fields([BUNDLE_WIRE])  # sidecars advertise it
    with pytest.raises(BundleError, match="unknown field `agentClaims`"):
        v1.parse_bundle(bundle.canonical())  # never read as the default azp/client_id


@pytest.mark.parametrize(
    ("claims", "problem"),
    [
        (["act"], r"agentClaims: entry 0 \('act'\): 'act' \(RFC 8693\) is always read first"),
        (["cid", "/act/sub"], r"agentClaims: entry 1 \('/act/sub'\): .*always read first"),
        (["cid", "/a~2"], r"agentClaims: entry 1: .*followed by 0 or 1"),
        (["cid", "azp", "cid"], r"agentClaims: 'cid' listed more than once"),
        ([""], r"agentClaims"),
        ([f"c{i}" for i in range(9)], r"agentClaims"),
        ("cid", r"agentClaims"),
    ],
)
def test_bad_agent_claims_are_refused_naming_the_field(claims: Any, problem: str) -> None:
    with pytest.raises(ResourceError, match=problem):
        parse(with_agent_claims(claims))


async def test_okta_token_names_the_agent_in_cid(
    issuer: Issuer, make_authenticator: AuthenticatorFactory
) -> None:
    authenticator = make_authenticator(agent_sources=agent_sources(["cid", "azp", "client_id"]))
    token = issuer.mint("alice@example.com", agent=None, alg="RS256", extra_claims=okta_claims())

    identity = await authenticator.authenticate(bearer(token))

    assert (identity.subject, identity.agent, identity.chain) == (
        "alice@example.com",
        OKTA_CLIENT,
        (),
    )


async def test_okta_token_is_refused_by_the_default_agent_claims(
    issuer: Issuer, make_authenticator: AuthenticatorFactory
) -> None:
    authenticator = make_authenticator()
    token = issuer.mint("alice@example.com", agent=None, alg="RS256", extra_claims=okta_claims())

    with pytest.raises(AuthenticationError, match=r"none of the agent claims.*'azp', 'client_id'"):
        await authenticator.authenticate(bearer(token))


@pytest.mark.parametrize("shape", [entra_v1_claims, entra_v2_claims])
async def test_entra_tokens_of_both_versions_name_the_app(
    issuer: Issuer, make_authenticator: AuthenticatorFactory, shape: Any
) -> None:
    authenticator = make_authenticator(agent_sources=agent_sources(["azp", "appid"]))
    token = issuer.mint(
        "9f4e1c2a-0000-4000-8000-00000000a11c", agent=None, alg="RS256", extra_claims=shape()
    )

    assert (await authenticator.authenticate(bearer(token))).agent == ENTRA_APP


async def test_act_takes_precedence_over_every_agent_claim(
    issuer: Issuer, make_authenticator: AuthenticatorFactory
) -> None:
    authenticator = make_authenticator(agent_sources=agent_sources(["cid"]))
    token = issuer.mint(
        "alice@example.com", agent="travel-agent", act_chain=["planner"], extra_claims=okta_claims()
    )

    identity = await authenticator.authenticate(bearer(token))

    assert (identity.agent, identity.chain) == ("travel-agent", ("planner",))


async def test_agent_claims_that_disagree_refuse_the_token(
    issuer: Issuer, make_authenticator: AuthenticatorFactory
) -> None:
    authenticator = make_authenticator(agent_sources=agent_sources(["cid", "client_id"]))
    token = issuer.mint(
        "alice", agent=None, extra_claims=okta_claims(client_id="someone-else", scp=[SCOPE])
    )

    with pytest.raises(AuthenticationError, match="ambiguous agent identity") as caught:
        await authenticator.authenticate(bearer(token))
    assert caught.value.reason == "invalid_token"
    assert "someone-else" in caught.value.description


async def test_agent_claims_that_agree_name_that_agent(
    issuer: Issuer, make_authenticator: AuthenticatorFactory
) -> None:
    authenticator = make_authenticator(agent_sources=agent_sources(["cid", "client_id"]))
    token = issuer.mint("alice", agent=None, extra_claims=okta_claims(client_id=OKTA_CLIENT))

    assert (await authenticator.authenticate(bearer(token))).agent == OKTA_CLIENT


@pytest.mark.parametrize("value", ["", 7, ["0oa1"], {"id": "0oa1"}, True])
async def test_a_listed_claim_that_is_not_a_name_refuses_the_token(
    issuer: Issuer, make_authenticator: AuthenticatorFactory, value: Any
) -> None:
    authenticator = make_authenticator(agent_sources=agent_sources(["cid", "azp"]))
    token = issuer.mint(
        "alice", agent=None, extra_claims={**okta_claims(cid=value), "azp": "fallback"}
    )

    with pytest.raises(AuthenticationError, match="'cid' must be a non-empty string"):
        await authenticator.authenticate(bearer(token))


async def test_agent_from_a_json_pointer(
    issuer: Issuer, make_authenticator: AuthenticatorFactory
) -> None:
    authenticator = make_authenticator(agent_sources=agent_sources(["/ext/agent"]))
    token = issuer.mint(
        "alice", agent=None, scopes=[SCOPE], extra_claims={"ext": {"agent": "nested-bot"}}
    )

    assert (await authenticator.authenticate(bearer(token))).agent == "nested-bot"


async def test_no_agent_claims_accepts_only_act(
    issuer: Issuer, make_authenticator: AuthenticatorFactory
) -> None:
    authenticator = make_authenticator(agent_sources=())
    delegated = issuer.mint("alice", agent="travel-agent", scopes=[SCOPE], audience=AUDIENCE)
    plain = issuer.mint("alice", agent="cli", agent_claim="azp", scopes=[SCOPE])

    assert (await authenticator.authenticate(bearer(delegated))).agent == "travel-agent"
    with pytest.raises(AuthenticationError, match=r"agent claims this server reads \(none\)"):
        await authenticator.authenticate(bearer(plain))
