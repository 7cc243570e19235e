"""Fetching the issuer's keys: discovery, rotation, bounded refresh, outages (fail closed)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from remit.demo.issuer import Issuer
from remit.errors import AuthenticationError
from remit.gateway.authn import Authenticator
from remit.gateway.jwks import JwksCache, discovery_urls
from tests.dataplane.authn.conftest import SCOPE, AuthenticatorFactory, ManualClock, bearer


async def test_oidc_discovery_finds_the_jwks(issuer: Issuer, authenticator: Authenticator) -> None:
    await authenticator.authenticate(bearer(issuer.mint("alice", scopes=[SCOPE])))

    assert issuer.requests["/realms/acme/.well-known/openid-configuration"] == 1
    assert issuer.jwks_fetches == 1
    assert authenticator.keys.jwks_uri == issuer.jwks_uri


async def test_rfc8414_metadata_is_the_fallback(
    issuer: Issuer, authenticator: Authenticator
) -> None:
    issuer.serve_oidc_discovery = False

    await authenticator.authenticate(bearer(issuer.mint("alice", scopes=[SCOPE])))

    assert issuer.requests["/.well-known/oauth-authorization-server/realms/acme"] == 1
    assert issuer.jwks_fetches == 1


def test_discovery_urls_follow_oidc_and_rfc8414() -> None:
    assert discovery_urls("https://idp.example.com/realms/acme/") == (
        "https://idp.example.com/realms/acme/.well-known/openid-configuration",
        "https://idp.example.com/.well-known/oauth-authorization-server/realms/acme",
    )


async def test_configured_jwks_uri_skips_discovery(
    issuer: Issuer, make_authenticator: AuthenticatorFactory
) -> None:
    authenticator = make_authenticator(jwks_uri=issuer.jwks_uri)

    await authenticator.authenticate(bearer(issuer.mint("alice", scopes=[SCOPE])))

    assert issuer.requests["/realms/acme/.well-known/openid-configuration"] == 0
    assert issuer.jwks_fetches == 1


async def test_metadata_naming_another_issuer_is_not_trusted(
    issuer: Issuer, client: aiohttp.ClientSession, clock: ManualClock
) -> None:
    keys = JwksCache(client, issuer.issuer + "/other", clock=clock.monotonic)

    with pytest.raises(AuthenticationError, match="cannot discover the issuer's JWKS URL"):
        await keys.key_for(None, "EdDSA")

    impostor = JwksCache(client, issuer.issuer + "/", clock=clock.monotonic)
    with pytest.raises(AuthenticationError, match=r"names issuer .* expected"):
        await impostor.key_for(None, "EdDSA")


async def test_unknown_kid_refreshes_once_after_rotation(
    issuer: Issuer, authenticator: Authenticator, clock: ManualClock
) -> None:
    await authenticator.authenticate(bearer(issuer.mint("alice", scopes=[SCOPE])))
    clock.advance(11)  # past the minimum refresh interval, well within the cache lifetime
    new_kid = issuer.add_key("EdDSA")

    identity = await authenticator.authenticate(bearer(issuer.mint("bob", scopes=[SCOPE])))

    assert identity.subject == "bob"
    assert issuer.jwks_fetches == 2
    assert authenticator.keys.generation == 2
    assert new_kid in {k["kid"] for k in issuer.jwks()["keys"]}


async def test_flood_of_unknown_kids_fetches_at_most_once_per_interval(
    issuer: Issuer, authenticator: Authenticator, clock: ManualClock
) -> None:
    await authenticator.authenticate(bearer(issuer.mint("alice", scopes=[SCOPE])))
    clock.advance(11)
    forged = [
        issuer.mint("mallory", scopes=[SCOPE], kid=issuer.add_key(kid=f"bogus-{i}", publish=False))
        for i in range(20)
    ]

    async def attempt(token: str) -> AuthenticationError:
        with pytest.raises(AuthenticationError) as caught:
            await authenticator.authenticate(bearer(token))
        return caught.value

    errors = await asyncio.gather(*(attempt(t) for t in forged))
    errors += [await attempt(t) for t in forged]

    assert issuer.jwks_fetches == 2  # the first load, then one refresh for the whole flood
    assert errors[0].description == "unknown signing key id 'bogus-0'"

    clock.advance(9.9)
    await attempt(forged[0])
    assert issuer.jwks_fetches == 2
    clock.advance(0.1)
    await attempt(forged[0])
    assert issuer.jwks_fetches == 3


async def test_stale_key_set_is_refetched(
    issuer: Issuer, authenticator: Authenticator, clock: ManualClock
) -> None:
    token = issuer.mint("alice", scopes=[SCOPE], expires_in=3600)
    await authenticator.authenticate(bearer(token))
    clock.advance(299)
    await authenticator.authenticate(bearer(token))
    assert issuer.jwks_fetches == 1

    clock.advance(1)
    await authenticator.authenticate(bearer(token))
    assert issuer.jwks_fetches == 2


async def test_jwks_endpoint_error_fails_closed(
    issuer: Issuer, authenticator: Authenticator
) -> None:
    issuer.jwks_available = False

    with pytest.raises(AuthenticationError, match="HTTP 503") as caught:
        await authenticator.authenticate(bearer(issuer.mint("alice", scopes=[SCOPE])))
    assert caught.value.reason == "invalid_token"


async def test_stale_keys_are_not_trusted_while_the_issuer_is_down(
    issuer: Issuer, authenticator: Authenticator, clock: ManualClock
) -> None:
    token = issuer.mint("alice", scopes=[SCOPE], expires_in=3600)
    await authenticator.authenticate(bearer(token))
    issuer.jwks_available = False
    clock.advance(300)

    with pytest.raises(AuthenticationError, match="HTTP 503"):
        await authenticator.authenticate(bearer(token))
    with pytest.raises(AuthenticationError, match=r"unavailable: cannot fetch .* HTTP 503"):
        await authenticator.authenticate(bearer(token))  # within the interval: no new fetch
    assert issuer.jwks_fetches == 2

    issuer.jwks_available = True
    clock.advance(10)
    assert (await authenticator.authenticate(bearer(token))).subject == "alice"


async def test_unreachable_issuer_fails_closed(
    clock: ManualClock, client: aiohttp.ClientSession
) -> None:
    with Issuer(clock=clock.time) as gone:
        issuer_url = gone.issuer
    keys = JwksCache(client, issuer_url, jwks_uri=issuer_url + "/jwks", clock=clock.monotonic)

    with pytest.raises(AuthenticationError, match=r"cannot fetch http://127\.0\.0\.1:\d+/jwks"):
        await keys.key_for("eddsa-1", "EdDSA")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>", "did not return JSON"),
        (b"[]", "did not return a JSON object"),
        (b'{"keys": "x"}', "has no 'keys' list"),
        (b'{"keys": [{"kty": "oct", "k": "c2VjcmV0"}, {"kty": "EC"}]}', "no usable signing key"),
    ],
)
async def test_malformed_jwks_documents_fail_closed(
    clock: ManualClock, client: aiohttp.ClientSession, body: bytes, message: str
) -> None:
    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/jwks", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        keys = JwksCache(client, url, jwks_uri=url + "/jwks", clock=clock.monotonic)

        with pytest.raises(AuthenticationError, match=message):
            await keys.key_for("k1", "EdDSA")
    finally:
        await runner.cleanup()
