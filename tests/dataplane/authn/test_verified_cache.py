"""The verified-token cache: keyed by exact token, bounded, never past exp, reset on new keys."""

from __future__ import annotations

import pytest

from remit.demo.issuer import Issuer
from remit.errors import AuthenticationError, InsufficientScopeError
from remit.gateway.authn import Authenticator
from tests.dataplane.authn.conftest import SCOPE, AuthenticatorFactory, ManualClock, bearer


async def test_repeated_token_is_served_from_cache_until_exp(
    issuer: Issuer, authenticator: Authenticator, clock: ManualClock
) -> None:
    token = issuer.mint("alice", scopes=[SCOPE], expires_in=60)
    first = await authenticator.authenticate(bearer(token))
    assert await authenticator.authenticate(bearer(token)) is first

    clock.advance(60)  # at exp: the cache must not answer even though skew would allow it
    again = await authenticator.authenticate(bearer(token))
    assert again == first
    assert again is not first

    clock.advance(30)
    with pytest.raises(AuthenticationError, match="token expired"):
        await authenticator.authenticate(bearer(token))


async def test_cached_token_is_still_checked_for_transport_rules(
    issuer: Issuer, authenticator: Authenticator
) -> None:
    token = issuer.mint("alice", scopes=[SCOPE])
    await authenticator.authenticate(bearer(token))

    with pytest.raises(AuthenticationError, match="query string"):
        await authenticator.authenticate(bearer(token), f"access_token={token}".encode())


async def test_cache_is_dropped_when_the_key_set_changes(
    issuer: Issuer, authenticator: Authenticator, clock: ManualClock
) -> None:
    token = issuer.mint("alice", scopes=[SCOPE], expires_in=3600)
    first = await authenticator.authenticate(bearer(token))

    issuer.add_key("EdDSA")
    clock.advance(11)
    await authenticator.authenticate(bearer(issuer.mint("bob", scopes=[SCOPE])))  # refresh

    again = await authenticator.authenticate(bearer(token))
    assert again == first
    assert again is not first


async def test_cache_is_bounded(issuer: Issuer, make_authenticator: AuthenticatorFactory) -> None:
    authenticator = make_authenticator(verified_token_cache_size=2)
    tokens = [issuer.mint(f"user-{i}", scopes=[SCOPE]) for i in range(3)]
    first = [await authenticator.authenticate(bearer(t)) for t in tokens]

    assert await authenticator.authenticate(bearer(tokens[2])) is first[2]
    assert await authenticator.authenticate(bearer(tokens[1])) is first[1]
    assert await authenticator.authenticate(bearer(tokens[0])) is not first[0]  # evicted


async def test_refused_tokens_are_not_cached(
    issuer: Issuer, make_authenticator: AuthenticatorFactory
) -> None:
    authenticator = make_authenticator(required_scopes=("admin",))
    token = issuer.mint("alice", scopes=[SCOPE])

    for _ in range(2):
        with pytest.raises(InsufficientScopeError):
            await authenticator.authenticate(bearer(token))
