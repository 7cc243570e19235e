"""RFC 9728 metadata and the WWW-Authenticate challenge a client uses to find the issuer."""

from __future__ import annotations

import httpx
import pytest
from aiohttp import web

from remit.demo.issuer import Issuer
from remit.errors import AuthenticationError, InsufficientScopeError, MissingCredentialsError
from remit.gateway.authn import Authenticator, AuthSettings
from remit.gateway.resource_metadata import (
    build_metadata,
    metadata_paths,
    metadata_url,
    status_for,
    www_authenticate,
)
from tests.dataplane.authn.conftest import bearer

SETTINGS = AuthSettings(
    issuer="https://idp.example.com/realms/acme",
    audience="https://files.agents.example.com/mcp",
    required_scopes=("mcp:tools", "files:read"),
)
META = "https://files.agents.example.com/.well-known/oauth-protected-resource/mcp"


def test_metadata_document_names_resource_issuer_and_header_only() -> None:
    assert build_metadata(SETTINGS, resource_name="Files") == {
        "resource": "https://files.agents.example.com/mcp",
        "authorization_servers": ["https://idp.example.com/realms/acme"],
        "scopes_supported": ["mcp:tools", "files:read"],
        "bearer_methods_supported": ["header"],
        "resource_name": "Files",
    }
    assert "resource_name" not in build_metadata(SETTINGS)


def test_metadata_url_inserts_well_known_before_the_path() -> None:
    assert metadata_url(SETTINGS.audience) == META
    assert metadata_paths(SETTINGS.audience) == (
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    )
    assert metadata_paths("https://h.example.com/") == ("/.well-known/oauth-protected-resource",)
    assert metadata_url("https://h.example.com") == (
        "https://h.example.com/.well-known/oauth-protected-resource"
    )


def test_challenge_without_credentials_has_no_error_but_scope_guidance() -> None:
    expected = f'Bearer resource_metadata="{META}", scope="mcp:tools files:read"'

    assert www_authenticate(None, META, SETTINGS.required_scopes) == expected
    missing = MissingCredentialsError("no Authorization header")
    assert www_authenticate(missing, META, SETTINGS.required_scopes) == expected
    assert status_for(None) == status_for(missing) == 401


def test_challenge_for_invalid_token_names_the_error() -> None:
    error = AuthenticationError("invalid_token", "token expired at 2027-01-15T08:01:00Z")

    assert www_authenticate(error, META, SETTINGS.required_scopes) == (
        f'Bearer resource_metadata="{META}", error="invalid_token", '
        'error_description="token expired at 2027-01-15T08:01:00Z"'
    )
    assert status_for(error) == 401
    assert status_for(AuthenticationError("invalid_request", "query string")) == 400


def test_challenge_for_insufficient_scope_lists_required_scopes() -> None:
    error = InsufficientScopeError(["files:read"])

    header = www_authenticate(error, META, SETTINGS.required_scopes)

    assert header == (
        f'Bearer resource_metadata="{META}", error="insufficient_scope", '
        'error_description="missing scopes: files:read", scope="mcp:tools files:read"'
    )
    assert status_for(error) == 403


@pytest.mark.parametrize(
    ("description", "quoted"),
    [
        ('audience "x" not accepted', r'error_description="audience \"x\" not accepted"'),
        ("back\\slash", r'error_description="back\\slash"'),
        ("line\r\nSet-Cookie: a=b", 'error_description="line??Set-Cookie: a=b"'),
        ("café", 'error_description="caf?"'),
    ],
)
def test_values_are_quote_escaped_and_cannot_inject_headers(description: str, quoted: str) -> None:
    header = www_authenticate(AuthenticationError("invalid_token", description), META)

    assert header.endswith(quoted)
    assert "\r" not in header
    assert "\n" not in header


async def test_real_refusal_reads_as_a_challenge_over_http(
    issuer: Issuer, authenticator: Authenticator, http: httpx.AsyncClient
) -> None:
    """A minimal resource server wired the way the gateway will: refusal → status + header."""
    settings = authenticator.settings
    url = metadata_url(settings.audience)

    async def mcp(request: web.Request) -> web.Response:
        try:
            identity = await authenticator.authenticate(
                request.headers.get("Authorization"), request.query_string.encode()
            )
        except AuthenticationError as error:
            return web.Response(
                status=status_for(error),
                headers={
                    "WWW-Authenticate": www_authenticate(error, url, settings.required_scopes)
                },
            )
        return web.json_response({"sub": identity.subject})

    async def metadata(request: web.Request) -> web.Response:
        return web.json_response(build_metadata(settings))

    app = web.Application()
    app.router.add_post("/mcp", mcp)
    for path in metadata_paths(settings.audience):
        app.router.add_get(path, metadata)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        anonymous = await http.post(f"{base}/mcp")
        assert anonymous.status_code == 401
        assert anonymous.headers["WWW-Authenticate"].startswith(f'Bearer resource_metadata="{url}"')
        assert "error=" not in anonymous.headers["WWW-Authenticate"]

        document = (await http.get(f"{base}/.well-known/oauth-protected-resource/mcp")).json()
        assert document["authorization_servers"] == [issuer.issuer]

        token = issuer.mint("alice", scopes=["other"])
        forbidden = await http.post(f"{base}/mcp", headers={"Authorization": bearer(token)})
        assert forbidden.status_code == 403
        assert 'error="insufficient_scope"' in forbidden.headers["WWW-Authenticate"]

        ok = await http.post(
            f"{base}/mcp",
            headers={"Authorization": bearer(issuer.mint("alice", scopes=["mcp:tools"]))},
        )
        assert ok.json() == {"sub": "alice"}
    finally:
        await runner.cleanup()
