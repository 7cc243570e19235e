"""Token attacks against the assembled gateway over HTTP, RFC 9728 metadata, session binding,
and the identity headers the MCP server receives.

Every attack sends a ``write_file`` call (a side effect the upstream would record) and must be
refused with the right status and ``WWW-Authenticate``, recorded as a deny with reason
``unauthenticated``, and never reach the MCP server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable

import httpx
import orjson
import pytest

from remit.demo.issuer import Issuer
from tests.dataplane.e2e_gateway.conftest import ALICE, MALLORY, MODES, Mint, connect
from tests.support import mcp_wire
from tests.support.stack import GatewayProcess, Upstream

WRITE = {"path": "/data/alice/attack.txt", "content": "pwned"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(
    header: dict[str, object], claims: dict[str, object], sign: Callable[[bytes], bytes]
) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(sign(signing_input.encode()))}"


def _claims(issuer: Issuer, audience: str) -> dict[str, object]:
    now = int(time.time())
    return {
        "iss": issuer.issuer,
        "sub": ALICE,
        "aud": audience,
        "iat": now,
        "exp": now + 300,
        "act": {"sub": "support-bot"},
        "scope": "mcp:tools",
    }


def _unauthenticated(gateway: GatewayProcess) -> list[dict[str, object]]:
    return [r for r in gateway.records() if r.get("reason") == "unauthenticated"]


ATTACKS = [
    "no-token",
    "expired",
    "wrong-audience",
    "wrong-issuer",
    "alg-none",
    "hs256-with-public-key",
    "unknown-kid",
    "not-a-jwt",
    "basic-scheme",
]


def _attack(name: str, issuer: Issuer, mint: Mint, audience: str) -> dict[str, str]:
    """Headers carrying the attack ``name``."""
    if name == "no-token":
        return {}
    if name == "basic-scheme":
        return {"authorization": "Basic YWxpY2U6c2VjcmV0"}
    if name == "expired":
        token = mint(expires_in=-3600)
    elif name == "wrong-audience":
        token = mint(audience="http://127.0.0.1:1/other")
    elif name == "wrong-issuer":
        token = mint(extra_claims={"iss": "https://evil.example.com"})
    elif name == "alg-none":
        token = _forge({"alg": "none", "typ": "JWT"}, _claims(issuer, audience), lambda _: b"")
    elif name == "hs256-with-public-key":
        public = issuer.key("eddsa-1").as_pem(private=False)
        token = _forge(
            {"alg": "HS256", "kid": "eddsa-1"},
            _claims(issuer, audience),
            lambda data: hmac.new(public, data, hashlib.sha256).digest(),
        )
    elif name == "unknown-kid":
        token = mint(kid="rogue-es256", alg="ES256")
    else:
        token = "not.a.jwt"
    return {"authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def rogue_key(issuer: Issuer) -> str:
    """An ES256 key the issuer signs with but never publishes (its kid is unknown)."""
    return issuer.add_key("ES256", kid="rogue-es256", publish=False)


@pytest.mark.parametrize("attack", ATTACKS)
def test_bad_token_is_refused_recorded_and_never_forwarded(
    gateway: GatewayProcess,
    upstream: Upstream,
    issuer: Issuer,
    mint: Mint,
    audience: str,
    rogue_key: str,
    attack: str,
) -> None:
    forwarded, refused = upstream.count(), len(_unauthenticated(gateway))
    answer = mcp_wire.tool_call(
        gateway.url, "write_file", WRITE, extra_headers=_attack(attack, issuer, mint, audience)
    )
    assert answer.status_code == 401, answer.text
    challenge = answer.headers["www-authenticate"]
    metadata = f'resource_metadata="{gateway.base}/.well-known/oauth-protected-resource/mcp"'
    assert challenge.startswith("Bearer ")
    assert metadata in challenge
    if attack not in ("no-token", "basic-scheme"):
        assert 'error="invalid_token"' in challenge
        assert answer.json()["error"] == "invalid_token"
    else:
        assert "error=" not in challenge  # RFC 6750 §3.1: no error code without credentials
    assert upstream.count() == forwarded
    records = _unauthenticated(gateway)
    assert len(records) == refused + 1
    assert records[-1]["decision"] == "deny"


def test_token_without_required_scope_is_403_naming_the_scope(
    gateway: GatewayProcess, upstream: Upstream, mint: Mint
) -> None:
    forwarded, refused = upstream.count(), len(_unauthenticated(gateway))
    answer = mcp_wire.tool_call(gateway.url, "write_file", WRITE, token=mint(scopes=["other"]))
    assert answer.status_code == 403
    challenge = answer.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="mcp:tools"' in challenge
    assert upstream.count() == forwarded
    assert len(_unauthenticated(gateway)) == refused + 1


def test_token_in_the_query_string_is_refused(
    gateway: GatewayProcess, upstream: Upstream, mint: Mint
) -> None:
    token = mint()
    forwarded, refused = upstream.count(), len(_unauthenticated(gateway))
    in_query = mcp_wire.tool_call(gateway.url, "write_file", WRITE, query=f"access_token={token}")
    with_header_too = mcp_wire.tool_call(
        gateway.url, "write_file", WRITE, token=token, query=f"access_token={token}"
    )
    for answer in (in_query, with_header_too):
        assert answer.status_code == 400
        assert answer.json()["error"] == "invalid_request"
        assert "query string" in answer.json()["error_description"]
    assert upstream.count() == forwarded
    assert len(_unauthenticated(gateway)) == refused + 2


def test_protected_resource_metadata_is_served(
    gateway: GatewayProcess, issuer: Issuer, audience: str
) -> None:
    suffixed = httpx.get(f"{gateway.base}/.well-known/oauth-protected-resource/mcp")
    root = httpx.get(f"{gateway.base}/.well-known/oauth-protected-resource")
    for answer in (suffixed, root):
        assert answer.status_code == 200
        document = answer.json()
        assert document["resource"] == audience
        assert document["authorization_servers"] == [issuer.issuer]
        assert document["scopes_supported"] == ["mcp:tools"]
        assert document["bearer_methods_supported"] == ["header"]
    assert (
        httpx.get(f"{gateway.base}/.well-known/oauth-protected-resource/other").status_code == 404
    )


def test_session_of_another_identity_is_404_and_recorded(
    gateway: GatewayProcess, upstream: Upstream, mint: Mint
) -> None:
    alice, mallory = mint(), mint(MALLORY)
    opened = mcp_wire.initialize(gateway.url, alice)
    assert opened.status_code == 200
    session = opened.headers["mcp-session-id"]
    params = {"name": "read_file", "arguments": {"path": "/data/alice/notes.txt"}}
    forwarded = upstream.count()
    stolen = mcp_wire.legacy_call(gateway.url, "tools/call", params, token=mallory, session=session)
    assert stolen.status_code == 404
    assert upstream.count() == forwarded
    mismatch = [r for r in gateway.records() if r.get("reason") == "session_mismatch"]
    assert mismatch
    assert mismatch[-1]["subject"] == MALLORY
    # the owner can still use it (the refusal is about the identity, not the session)
    mine = mcp_wire.legacy_call(gateway.url, "tools/list", {}, token=alice, session=session)
    assert mine.status_code == 200, mine.text


@pytest.mark.parametrize("mode", MODES)
async def test_upstream_gets_identity_headers_never_the_token(
    gateway: GatewayProcess, upstream: Upstream, mint: Mint, mode: str
) -> None:
    token = mint()
    spoof = {"X-Remit-Subject": "mallory@example.com", "X-Remit-Decision": "forged"}
    async with connect(gateway.url, token, mode, **spoof) as client:
        result = await client.call_tool("request_headers", {})
    assert not result.is_error
    seen = orjson.loads(result.content[0].text)  # type: ignore[union-attr]
    assert seen["x-remit-subject"] == ALICE
    assert seen["x-remit-agent"] == "support-bot"
    assert "authorization" not in seen
    assert token not in json.dumps(seen)
    record = gateway.record(seen["x-remit-decision"])
    assert (record["decision"], record["tool"]) == ("allow", "request_headers")
    for request in upstream.requests():
        assert "authorization" not in request["headers"]
        assert request["headers"].get("x-remit-decision") != "forged"
