"""Valid tokens become the right Identity; invalid claims are refused with a named reason."""

from __future__ import annotations

import re

import pytest

from remit.demo.issuer import Issuer
from remit.errors import AuthenticationError, InsufficientScopeError
from remit.gateway.authn import Authenticator
from tests.dataplane.authn.conftest import (
    AUDIENCE,
    SCOPE,
    AuthenticatorFactory,
    ManualClock,
    bearer,
)


@pytest.mark.parametrize("alg", ["EdDSA", "ES256", "RS256"])
async def test_valid_token_gives_identity_with_agent_from_act(
    issuer: Issuer, authenticator: Authenticator, alg: str
) -> None:
    token = issuer.mint(
        "alice@example.com",
        agent="support-bot",
        scopes=[SCOPE, "extra"],
        groups=["support"],
        alg=alg,
    )

    identity = await authenticator.authenticate(bearer(token))

    assert identity.subject == "alice@example.com"
    assert identity.agent == "support-bot"
    assert identity.issuer == issuer.issuer
    assert identity.groups == ("support",)
    assert identity.scopes == (SCOPE, "extra")
    assert identity.chain == ()
    assert identity.claims["aud"] == AUDIENCE


async def test_nested_act_is_the_chain_below_the_current_actor(
    issuer: Issuer, authenticator: Authenticator
) -> None:
    token = issuer.mint("alice", agent="worker", act_chain=["planner", "ui"], scopes=[SCOPE])

    identity = await authenticator.authenticate(bearer(token))

    assert identity.agent == "worker"
    assert identity.chain == ("planner", "ui")


@pytest.mark.parametrize("claim", ["azp", "client_id"])
async def test_agent_falls_back_to_azp_then_client_id(
    issuer: Issuer, authenticator: Authenticator, claim: str
) -> None:
    token = issuer.mint("alice", agent="cli-agent", agent_claim=claim, scopes=[SCOPE])

    assert (await authenticator.authenticate(bearer(token))).agent == "cli-agent"


async def test_act_wins_over_azp(issuer: Issuer, authenticator: Authenticator) -> None:
    token = issuer.mint("alice", agent="actor", scopes=[SCOPE], extra_claims={"azp": "client"})

    assert (await authenticator.authenticate(bearer(token))).agent == "actor"


async def test_token_without_any_agent_is_refused(
    issuer: Issuer, authenticator: Authenticator
) -> None:
    token = issuer.mint("alice", agent=None, scopes=[SCOPE])

    with pytest.raises(AuthenticationError, match="no agent identity") as caught:
        await authenticator.authenticate(bearer(token))
    assert caught.value.reason == "invalid_token"


async def test_malformed_act_is_refused(issuer: Issuer, authenticator: Authenticator) -> None:
    token = issuer.mint("alice", scopes=[SCOPE], extra_claims={"act": {"client": "x"}})

    with pytest.raises(AuthenticationError, match="'act' claim must be an object"):
        await authenticator.authenticate(bearer(token))


async def test_groups_claim_that_is_not_a_list_is_ignored(
    issuer: Issuer, authenticator: Authenticator
) -> None:
    token = issuer.mint("alice", scopes=[SCOPE], extra_claims={"groups": "admins"})

    assert (await authenticator.authenticate(bearer(token))).groups == ()


async def test_expired_token_names_the_expiry(
    issuer: Issuer, authenticator: Authenticator, clock: ManualClock
) -> None:
    token = issuer.mint("alice", scopes=[SCOPE], expires_in=60)
    clock.advance(60 + 30)  # past exp plus the default 30 s skew

    with pytest.raises(
        AuthenticationError, match=r"token expired at 2027-01-15T08:01:00Z"
    ) as caught:
        await authenticator.authenticate(bearer(token))
    assert caught.value.reason == "invalid_token"


async def test_expiry_within_clock_skew_is_accepted(
    issuer: Issuer, authenticator: Authenticator, clock: ManualClock
) -> None:
    token = issuer.mint("alice", scopes=[SCOPE], expires_in=60)
    clock.advance(60 + 29)

    assert (await authenticator.authenticate(bearer(token))).subject == "alice"


async def test_token_without_exp_is_refused(issuer: Issuer, authenticator: Authenticator) -> None:
    token = issuer.mint("alice", scopes=[SCOPE], extra_claims={"exp": None})

    with pytest.raises(AuthenticationError, match=r"lacks required claim.*exp"):
        await authenticator.authenticate(bearer(token))


async def test_token_without_sub_is_refused(issuer: Issuer, authenticator: Authenticator) -> None:
    token = issuer.mint("alice", scopes=[SCOPE], extra_claims={"sub": None})

    with pytest.raises(AuthenticationError, match=r"lacks required claim.*sub"):
        await authenticator.authenticate(bearer(token))


async def test_not_yet_valid_token_is_refused(
    issuer: Issuer, authenticator: Authenticator, clock: ManualClock
) -> None:
    later = int(clock.time()) + 120
    token = issuer.mint("alice", scopes=[SCOPE], extra_claims={"nbf": later})

    with pytest.raises(AuthenticationError, match="not valid before 2027-01-15T08:02:00Z"):
        await authenticator.authenticate(bearer(token))


async def test_token_issued_in_the_future_is_refused(
    issuer: Issuer, authenticator: Authenticator, clock: ManualClock
) -> None:
    token = issuer.mint("alice", scopes=[SCOPE], extra_claims={"iat": int(clock.time()) + 120})

    with pytest.raises(AuthenticationError, match="issued in the future"):
        await authenticator.authenticate(bearer(token))


async def test_wrong_audience_is_refused(issuer: Issuer, authenticator: Authenticator) -> None:
    token = issuer.mint("alice", scopes=[SCOPE], audience="https://other.example.com/mcp")

    with pytest.raises(
        AuthenticationError,
        match=re.escape("audience 'https://other.example.com/mcp' not accepted"),
    ) as caught:
        await authenticator.authenticate(bearer(token))
    assert caught.value.reason == "invalid_token"


async def test_audience_list_containing_the_resource_is_accepted(
    issuer: Issuer, authenticator: Authenticator
) -> None:
    token = issuer.mint("alice", scopes=[SCOPE], audience=["https://other/mcp", AUDIENCE])

    assert (await authenticator.authenticate(bearer(token))).subject == "alice"


async def test_wrong_issuer_is_refused(issuer: Issuer, authenticator: Authenticator) -> None:
    token = issuer.mint("alice", scopes=[SCOPE], extra_claims={"iss": "https://evil.example.com"})

    with pytest.raises(
        AuthenticationError, match=re.escape("issuer 'https://evil.example.com' not accepted")
    ):
        await authenticator.authenticate(bearer(token))


async def test_missing_scope_raises_insufficient_scope(
    issuer: Issuer, make_authenticator: AuthenticatorFactory
) -> None:
    authenticator = make_authenticator(required_scopes=("mcp:tools", "files:write"))
    token = issuer.mint("alice", scopes=["mcp:tools"])

    with pytest.raises(InsufficientScopeError) as caught:
        await authenticator.authenticate(bearer(token))
    assert caught.value.reason == "insufficient_scope"
    assert caught.value.missing == ["files:write"]


async def test_scp_list_is_read_as_scopes(issuer: Issuer, authenticator: Authenticator) -> None:
    token = issuer.mint("alice", extra_claims={"scp": [SCOPE, "read"]})

    assert (await authenticator.authenticate(bearer(token))).scopes == (SCOPE, "read")
