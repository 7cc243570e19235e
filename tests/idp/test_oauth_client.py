"""RFC 9728 metadata from the gateway leads the MCP SDK's own OAuth client to Keycloak.

The client knows only the gateway's URL and a client id registered at Keycloak. On the first
401 it reads ``resource_metadata`` from ``WWW-Authenticate``, fetches the protected-resource
metadata, finds Keycloak in ``authorization_servers``, reads Keycloak's metadata, and runs the
authorization code flow with PKCE; the browser part (login form) is played by ``httpx``. The
token it gets is then accepted by the gateway and the tool call is allowed and recorded.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)

from tests.idp.keycloak import CLIENT, REDIRECT_URI, SUBJECTS, Keycloak, submit_login, token_claims
from tests.support.stack import GatewayProcess


class MemoryStorage:
    """The SDK's ``TokenStorage``: the pre-registered client, and the tokens it obtains."""

    def __init__(self, client: OAuthClientInformationFull) -> None:
        self.client = client
        self.tokens: OAuthToken | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class Browser:
    """The user's browser: given the authorization URL, logs in as ``username``."""

    def __init__(self, username: str) -> None:
        self.username = username
        self.visited: list[str] = []

    async def open(self, url: str) -> None:
        self.visited.append(url)

    async def callback(self) -> AuthorizationCodeResult:
        redirect = await anyio.to_thread.run_sync(submit_login, self.visited[-1], self.username)
        return AuthorizationCodeResult(
            code=redirect["code"], state=redirect.get("state"), iss=redirect.get("iss")
        )


async def test_resource_metadata_leads_the_sdk_oauth_client_to_keycloak(
    gateway: GatewayProcess, keycloak: Keycloak
) -> None:
    metadata = OAuthClientMetadata(
        redirect_uris=[REDIRECT_URI],  # type: ignore[list-item]
        token_endpoint_auth_method="none",
        # No refresh_token grant: the SDK would then add offline_access (SEP-2207), which this
        # realm does not offer (docs/identity.md says how to).
        grant_types=["authorization_code"],
        response_types=["code"],
        client_name="remit idp tier",
    )
    registered = OAuthClientInformationFull(client_id=CLIENT, **metadata.model_dump())
    storage = MemoryStorage(registered)
    browser = Browser("alice")
    provider = OAuthClientProvider(
        server_url=gateway.url,
        client_metadata=metadata,
        storage=storage,
        redirect_handler=browser.open,
        callback_handler=browser.callback,
    )
    before = len(gateway.records())
    async with (
        httpx2.AsyncClient(auth=provider, timeout=30) as http,
        Client(streamable_http_client(gateway.url, http_client=http)) as client,
    ):
        result = await client.call_tool("read_file", {"path": "/data/alice/notes.txt"})

    assert not result.is_error, result
    [authorization_url] = browser.visited
    parts = urlsplit(authorization_url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        f"{keycloak.issuer}/protocol/openid-connect/auth"
    )
    query = parse_qs(parts.query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["resource"] == [gateway.url]
    assert "mcp:tools" in query["scope"][0].split()
    assert storage.tokens is not None
    claims = token_claims(storage.tokens.access_token)
    assert claims["iss"] == keycloak.issuer
    assert claims["azp"] == CLIENT
    assert gateway.url in claims["aud"]
    calls = [r for r in gateway.records()[before:] if r.get("tool") == "read_file"]
    assert [r["decision"] for r in calls] == ["allow"]
    assert calls[0]["subject"] == SUBJECTS["alice"]
    assert calls[0]["agent"] == CLIENT
