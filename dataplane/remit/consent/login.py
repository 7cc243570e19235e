"""Logging the human in: OpenID Connect authorization code flow with PKCE (S256), by authlib.

The consent service is a client of the MCPServer's issuer. authlib discovers the issuer's
endpoints, sends the human there with ``state``, ``nonce`` and a PKCE challenge kept in the
signed session cookie, exchanges the code, and verifies the ID token (signature against the
issuer's JWKS, ``iss``, ``aud``, ``exp``, ``nonce``). Only then does the session hold a
``Login``: the token's ``iss`` and ``sub`` are the evidence a grant carries.
"""

from __future__ import annotations

from typing import Any

from authlib.integrations.starlette_client import OAuth, OAuthError
from starlette.requests import Request
from starlette.responses import Response

from remit.consent.grants import Login
from remit.consent.settings import ConsentSettings
from remit.errors import ConsentRequestError

_NAME = "issuer"
SESSION_KEY = "login"


class OidcLogin:
    """The authlib client for one issuer."""

    def __init__(self, settings: ConsentSettings, client_secret: str | None) -> None:
        self.settings = settings
        self.oauth = OAuth()
        client_kwargs: dict[str, Any] = {"scope": "openid", "code_challenge_method": "S256"}
        if client_secret is None:
            client_kwargs["token_endpoint_auth_method"] = "none"  # noqa: S105 - a method name
        self.oauth.register(
            _NAME,
            client_id=settings.client_id,
            client_secret=client_secret,
            server_metadata_url=settings.issuer.rstrip("/") + "/.well-known/openid-configuration",
            client_kwargs=client_kwargs,
        )

    @property
    def _client(self) -> Any:
        return self.oauth.create_client(_NAME)

    async def start(self, request: Request) -> Response:
        """Send the human to the issuer's login."""
        response: Response = await self._client.authorize_redirect(
            request, self.settings.redirect_uri
        )
        return response

    async def finish(self, request: Request) -> Login:
        """Exchange the code; the verified ID token's claims become the session's login."""
        try:
            token = await self._client.authorize_access_token(request)
        except OAuthError as exc:
            raise ConsentRequestError(f"login failed: {exc.error}") from exc
        claims = token.get("userinfo")
        if not claims or not claims.get("sub") or not claims.get("iss"):
            raise ConsentRequestError("login failed: no verified ID token")
        auth_time = claims.get("auth_time")
        login = Login(
            issuer=str(claims["iss"]),
            subject=str(claims["sub"]),
            authenticated_at=int(auth_time) if isinstance(auth_time, int | float) else None,
            name=str(claims.get("name") or claims.get("email") or claims["sub"]),
        )
        request.session[SESSION_KEY] = {
            "iss": login.issuer,
            "sub": login.subject,
            "auth_time": login.authenticated_at,
            "name": login.name,
        }
        return login


def current_login(request: Request) -> Login | None:
    """The logged-in human, or None."""
    data = request.session.get(SESSION_KEY)
    if not isinstance(data, dict) or not data.get("sub") or not data.get("iss"):
        return None
    auth_time = data.get("auth_time")
    return Login(
        issuer=str(data["iss"]),
        subject=str(data["sub"]),
        authenticated_at=auth_time if isinstance(auth_time, int) else None,
        name=str(data.get("name") or data["sub"]),
    )


__all__ = ["SESSION_KEY", "OidcLogin", "current_login"]
