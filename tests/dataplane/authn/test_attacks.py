"""Forged tokens: unsigned, HMAC key confusion, tampered, mismatched keys; and unsafe settings."""

from __future__ import annotations

import base64
import hashlib
import hmac

import orjson
import pytest
from joserfc.jwk import OctKey

from remit.demo.issuer import Issuer
from remit.errors import AuthenticationError
from remit.gateway.authn import Authenticator, AuthSettings
from tests.dataplane.authn.conftest import AUDIENCE, SCOPE, AuthenticatorFactory, bearer


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()


def _claims(issuer: Issuer) -> dict[str, object]:
    now = int(issuer.clock())
    return {
        "iss": issuer.issuer,
        "sub": "mallory",
        "aud": AUDIENCE,
        "exp": now + 300,
        "scope": SCOPE,
        "azp": "evil-bot",
    }


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
async def test_unsigned_token_is_refused(
    issuer: Issuer, authenticator: Authenticator, alg: str
) -> None:
    kid = issuer.jwks()["keys"][0]["kid"]
    token = f"{_b64({'alg': alg, 'kid': kid})}.{_b64(_claims(issuer))}."

    with pytest.raises(AuthenticationError, match=f"signing algorithm '{alg}' not accepted"):
        await authenticator.authenticate(bearer(token))


@pytest.mark.parametrize("alg", ["EdDSA", "RS256"])
async def test_hmac_token_keyed_with_the_public_key_is_refused(
    issuer: Issuer, authenticator: Authenticator, alg: str
) -> None:
    public = next(k for k in issuer.jwks()["keys"] if k["alg"] == alg)
    key = issuer.key(public["kid"])
    assert not isinstance(key, OctKey)
    secrets = [
        orjson.dumps(public),
        key.as_pem(private=False),
        str(public.get("x") or public.get("n")).encode(),
    ]
    for secret in secrets:
        # the attacker signs by hand: joserfc itself refuses a public key as an HMAC secret
        signing_input = f"{_b64({'alg': 'HS256', 'kid': public['kid']})}.{_b64(_claims(issuer))}"
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        token = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"

        with pytest.raises(AuthenticationError, match="signing algorithm 'HS256' not accepted"):
            await authenticator.authenticate(bearer(token))


async def test_tampered_payload_fails_signature(
    issuer: Issuer, authenticator: Authenticator
) -> None:
    header, _, signature = issuer.mint("alice", scopes=[SCOPE]).split(".")
    forged = {**_claims(issuer), "sub": "alice", "act": {"sub": "admin-bot"}}

    with pytest.raises(AuthenticationError, match="signature does not verify"):
        await authenticator.authenticate(bearer(f"{header}.{_b64(forged)}.{signature}"))


async def test_kid_of_another_key_type_is_refused(
    issuer: Issuer, authenticator: Authenticator
) -> None:
    rsa_kid = next(k["kid"] for k in issuer.jwks()["keys"] if k["alg"] == "RS256")
    _header, payload, signature = issuer.mint("alice", scopes=[SCOPE], alg="ES256").split(".")
    relabelled = _b64({"alg": "ES256", "kid": rsa_kid, "typ": "JWT"})

    with pytest.raises(AuthenticationError, match=f"'{rsa_kid}' cannot verify algorithm 'ES256'"):
        await authenticator.authenticate(bearer(f"{relabelled}.{payload}.{signature}"))


async def test_algorithm_not_in_settings_is_refused(
    issuer: Issuer, make_authenticator: AuthenticatorFactory
) -> None:
    authenticator = make_authenticator(algorithms=("ES256",))
    token = issuer.mint("alice", scopes=[SCOPE], alg="EdDSA")

    with pytest.raises(AuthenticationError, match="signing algorithm 'EdDSA' not accepted"):
        await authenticator.authenticate(bearer(token))


@pytest.mark.parametrize("alg", ["none", "HS256", "hs512"])
def test_settings_reject_unsigned_and_hmac_algorithms(alg: str) -> None:
    with pytest.raises(ValueError, match="never accepted"):
        AuthSettings(issuer="https://idp", audience="https://mcp", algorithms=("ES256", alg))


def test_settings_reject_unknown_algorithms_and_missing_fields() -> None:
    with pytest.raises(ValueError, match="unknown algorithm 'XS1'"):
        AuthSettings(issuer="https://idp", audience="https://mcp", algorithms=("XS1",))
    with pytest.raises(ValueError, match="audience is required"):
        AuthSettings(issuer="https://idp", audience="")
