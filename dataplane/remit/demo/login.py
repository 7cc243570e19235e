"""The demo issuer's login: OpenID Connect authorization code flow with PKCE, for people.

The consent page logs its human in through the MCPServer's issuer. In the demo and the browser
tests that issuer is :class:`remit.demo.issuer.Issuer`, so it serves what a real OpenID
Provider serves for this flow: an authorization endpoint with a login form (a user name, no
password: this is a test issuer), and a token endpoint that checks the one-use code, the
client, the redirect URI and the PKCE ``S256`` verifier before it answers with an ID token
signed by its RS256 key (``iss``, ``sub``, ``aud`` = client, ``nonce``, ``auth_time``).
Only registered clients with their exact redirect URIs are served.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

CODE_SECONDS = 60
_PARAMS = ("client_id", "redirect_uri", "state", "nonce", "code_challenge", "scope")


@dataclass(frozen=True, slots=True)
class _Code:
    client_id: str
    redirect_uri: str
    nonce: str
    challenge: str
    subject: str
    auth_time: int
    expires: float


class Login:
    """Authorization and token endpoints for an issuer; ``mint_id_token`` signs ID tokens."""

    def __init__(
        self, mint_id_token: Callable[[dict[str, Any]], str], clock: Callable[[], float]
    ) -> None:
        self._mint = mint_id_token
        self._clock = clock
        self.clients: dict[str, set[str]] = {}
        self._codes: dict[str, _Code] = {}

    def register(self, client_id: str, redirect_uri: str) -> None:
        """Allow ``client_id`` to log people in and return them to ``redirect_uri``."""
        self.clients.setdefault(client_id, set()).add(redirect_uri)

    def add_routes(self, app: web.Application, path: str) -> None:
        """Serve ``/authorize`` (GET form, POST sign-in) and ``/oauth/token`` under ``path``
        (``/token`` is ``remit dev``'s own token endpoint)."""
        app.router.add_get(path + "/authorize", self._form)
        app.router.add_post(path + "/authorize", self._sign_in)
        app.router.add_post(path + "/oauth/token", self._token)

    def _check(self, values: Any) -> dict[str, str]:
        params = {name: str(values.get(name, "")) for name in _PARAMS}
        redirects = self.clients.get(params["client_id"])
        if redirects is None or params["redirect_uri"] not in redirects:
            raise web.HTTPBadRequest(text="unknown client or redirect_uri")
        if values.get("response_type", "code") != "code":
            raise web.HTTPBadRequest(text="only response_type=code")
        if values.get("code_challenge_method") != "S256" or not params["code_challenge"]:
            raise web.HTTPBadRequest(text="PKCE with S256 is required")
        if "openid" not in params["scope"].split():
            raise web.HTTPBadRequest(text="scope must include openid")
        return params

    async def _form(self, request: web.Request) -> web.Response:
        params = self._check(request.query)
        hidden = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(value)}">'
            for name, value in [*params.items(), ("code_challenge_method", "S256")]
        )
        page = (
            "<!doctype html><html><head><title>Sign in</title></head><body>"
            "<h1>Sign in to the demo issuer</h1>"
            f'<form method="post">{hidden}'
            '<label>User <input name="username" id="username" autofocus></label> '
            '<button type="submit" id="sign-in">Sign in</button></form></body></html>'
        )
        return web.Response(text=page, content_type="text/html")

    async def _sign_in(self, request: web.Request) -> web.Response:
        form = await request.post()
        params = self._check(form)
        subject = str(form.get("username", "")).strip()
        if not subject:
            raise web.HTTPBadRequest(text="enter a user name")
        code = secrets.token_urlsafe(24)
        now = self._clock()
        self._codes[code] = _Code(
            params["client_id"],
            params["redirect_uri"],
            params["nonce"],
            params["code_challenge"],
            subject,
            int(now),
            now + CODE_SECONDS,
        )
        query = urlencode({"code": code, "state": params["state"]})
        raise web.HTTPSeeOther(f"{params['redirect_uri']}?{query}")

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        code = self._codes.pop(str(form.get("code", "")), None)  # one use, whatever follows
        if form.get("grant_type") != "authorization_code" or code is None:
            return _error("invalid_grant", "unknown or used code")
        if self._clock() > code.expires:
            return _error("invalid_grant", "the code expired")
        if form.get("client_id") != code.client_id or form.get("redirect_uri") != code.redirect_uri:
            return _error("invalid_grant", "client or redirect_uri differs")
        verifier = str(form.get("code_verifier", ""))
        digest = hashlib.sha256(verifier.encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if not verifier or not secrets.compare_digest(challenge, code.challenge):
            return _error("invalid_grant", "PKCE verification failed")
        now = int(self._clock())
        claims: dict[str, Any] = {
            "sub": code.subject,
            "aud": code.client_id,
            "iat": now,
            "exp": now + 300,
            "auth_time": code.auth_time,
            "name": code.subject,
        }
        if code.nonce:
            claims["nonce"] = code.nonce
        id_token = self._mint(claims)
        body = {"access_token": id_token, "token_type": "Bearer", "expires_in": 300}
        return web.json_response({**body, "id_token": id_token, "scope": "openid"})


def _error(code: str, description: str) -> web.Response:
    return web.json_response({"error": code, "error_description": description}, status=400)
