"""The `remit dev` issuer: a login page and a token endpoint whose tokens verify."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from remit.demo.dev_issuer import DevIssuer

AUDIENCE = "https://files.example.com/mcp"


@pytest.fixture(scope="module")
def issuer() -> Iterator[DevIssuer]:
    with DevIssuer(AUDIENCE, ["mcp:tools"]) as running:
        yield running  # type: ignore[misc]


def claims(issuer: DevIssuer, token: str) -> dict[str, object]:
    keys = KeySet.import_key_set(httpx.get(issuer.jwks_uri).json())
    return dict(jwt.decode(token, keys, algorithms=["EdDSA"]).claims)


def test_token_endpoint_mints_for_the_audience_and_scopes(issuer: DevIssuer) -> None:
    answer = httpx.post(f"{issuer.issuer}/token", json={"subject": "a@x", "agent": "bot"})
    assert answer.status_code == 200
    got = claims(issuer, answer.json()["access_token"])
    assert (got["sub"], got["act"], got["aud"]) == ("a@x", {"sub": "bot"}, AUDIENCE)
    assert (got["iss"], got["scope"]) == (issuer.issuer, "mcp:tools")


@pytest.mark.parametrize("body", [[1], {"subject": "", "agent": "b"}, {"subject": "a"},
                                  {"subject": "a", "agent": "b", "groups": "x"}])  # fmt: skip
def test_token_endpoint_refuses_bad_requests(issuer: DevIssuer, body: object) -> None:
    answer = httpx.post(f"{issuer.issuer}/token", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"


def test_login_page_signs_in_and_escapes_what_it_echoes(issuer: DevIssuer) -> None:
    page = httpx.get(f"{issuer.issuer}/login")
    assert page.status_code == 200
    assert '<form method="post"' in page.text
    answer = httpx.post(
        f"{issuer.issuer}/login",
        data={"subject": "<b>alice</b>", "agent": "support-bot", "groups": "ops, dev"},
    )
    assert "&lt;b&gt;alice&lt;/b&gt;" in answer.text
    assert "<b>alice</b>" not in answer.text
    token = answer.text.split("<textarea readonly>")[1].split("</textarea>")[0]
    got = claims(issuer, token)
    assert (got["sub"], got["groups"]) == ("<b>alice</b>", ["ops", "dev"])
    empty = httpx.post(f"{issuer.issuer}/login", data={"subject": "", "agent": ""})
    assert "fill in: subject, agent" in empty.text
