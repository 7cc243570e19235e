"""Where the token may come from: one Bearer token in the Authorization header, nowhere else."""

from __future__ import annotations

import pytest

from remit.demo.issuer import Issuer
from remit.errors import AuthenticationError, MissingCredentialsError
from remit.gateway.authn import Authenticator
from tests.dataplane.authn.conftest import SCOPE, bearer


async def test_token_in_query_string_is_refused_even_with_a_header(
    issuer: Issuer, authenticator: Authenticator
) -> None:
    token = issuer.mint("alice", scopes=[SCOPE])

    queries = [f"access_token={token}", f"x=1&access%5Ftoken={token}", "access_token="]
    for query in (q.encode() for q in queries):
        with pytest.raises(AuthenticationError, match="query string is not accepted") as caught:
            await authenticator.authenticate(bearer(token), query)
        assert caught.value.reason == "invalid_request"
        assert not isinstance(caught.value, MissingCredentialsError)


async def test_unrelated_query_string_is_fine(issuer: Issuer, authenticator: Authenticator) -> None:
    token = issuer.mint("alice", scopes=[SCOPE])

    identity = await authenticator.authenticate(bearer(token), b"my_access_token_hint=1")

    assert identity.subject == "alice"


@pytest.mark.parametrize("header", [None, "", "   ", "Basic YWxpY2U6cHc=", "Token abc"])
async def test_missing_or_other_scheme_is_missing_credentials(
    authenticator: Authenticator, header: str | None
) -> None:
    with pytest.raises(MissingCredentialsError) as caught:
        await authenticator.authenticate(header)
    assert "Bearer" in caught.value.description


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Bearer a b"])
async def test_bearer_without_exactly_one_token_is_invalid_request(
    authenticator: Authenticator, header: str
) -> None:
    with pytest.raises(AuthenticationError, match="one token") as caught:
        await authenticator.authenticate(header)
    assert caught.value.reason == "invalid_request"


@pytest.mark.parametrize(
    "token", ["garbage", "a.b.c", "é.é.é", "eyJhbGciOiJFZERTQSJ9.!!!.x", "x" * 100_000]
)
async def test_garbage_token_is_invalid_token(authenticator: Authenticator, token: str) -> None:
    with pytest.raises(AuthenticationError, match="malformed token") as caught:
        await authenticator.authenticate(bearer(token))
    assert caught.value.reason == "invalid_token"


async def test_scheme_is_case_insensitive(issuer: Issuer, authenticator: Authenticator) -> None:
    token = issuer.mint("alice", scopes=[SCOPE])

    assert (await authenticator.authenticate(f"bearer {token}")).subject == "alice"
