"""The issuer ``remit dev`` runs: the demo's OIDC issuer plus a login page and a token endpoint.

A developer trying a policy directory needs tokens the gateway accepts, for the humans and
agents the policies name, without an identity provider. This issuer mints them on request,
from a page in a browser (``/login``) or from ``remit dev token`` (``POST /token``). It
listens on loopback only and signs for anyone who asks there: a development tool, never an
identity provider for real callers.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from remit.demo.issuer import Issuer

TOKEN_LIFETIME = 12 * 3600  # seconds: a working day of trying things
MAX_FIELD = 256

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>remit dev: sign in</title>
<style>body{{font-family:sans-serif;max-width:48rem;margin:2rem auto}}
label{{display:block;margin:.5rem 0}}input{{width:24rem}}
textarea{{width:100%;height:8rem;font-family:monospace}}</style></head>
<body><h1>remit dev: a token for your MCP client</h1>
<p>Local development issuer {issuer}. Tokens are for the audience <code>{audience}</code>.</p>
<form method="post" action="{action}">
<label>Human (sub) <input name="subject" value="{subject}" required></label>
<label>Agent (act.sub) <input name="agent" value="{agent}" required></label>
<label>Groups (comma-separated) <input name="groups" value="{groups}"></label>
<button type="submit">Sign in</button></form>
{result}
</body></html>
"""


class DevIssuer(Issuer):
    """An issuer that mints tokens for one audience and scope set, on request."""

    def __init__(
        self, audience: str, scopes: Sequence[str], *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__(algorithms=("EdDSA",), host=host, port=port)
        self.audience = audience
        self.scopes = tuple(scopes)

    def token(self, subject: str, agent: str, groups: Sequence[str] = ()) -> str:
        """A token the gateway accepts, for ``subject`` acting through ``agent``."""
        return self.mint(
            subject,
            agent=agent,
            audience=self.audience,
            scopes=self.scopes,
            groups=list(groups) if groups else None,
            expires_in=TOKEN_LIFETIME,
        )

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(self.path + "/login", self._login_page)
        app.router.add_post(self.path + "/login", self._login)
        app.router.add_post(self.path + "/token", self._token)

    def _page(self, values: dict[str, str], result: str = "") -> web.Response:
        body = _PAGE.format(
            issuer=html.escape(self.issuer),
            audience=html.escape(self.audience),
            action=html.escape(self.path + "/login"),
            subject=html.escape(values.get("subject", "")),
            agent=html.escape(values.get("agent", "")),
            groups=html.escape(values.get("groups", "")),
            result=result,
        )
        return web.Response(text=body, content_type="text/html")

    async def _login_page(self, request: web.Request) -> web.Response:
        return self._page({k: request.query.get(k, "") for k in ("subject", "agent", "groups")})

    async def _login(self, request: web.Request) -> web.Response:
        form = await request.post()
        values = {k: str(form.get(k, ""))[:MAX_FIELD] for k in ("subject", "agent", "groups")}
        problem = _missing(values)
        if problem:
            return self._page(values, f"<p><strong>{html.escape(problem)}</strong></p>")
        token = self.token(values["subject"], values["agent"], _groups(values["groups"]))
        result = (
            "<p>Your access token (send it as <code>Authorization: Bearer &lt;token&gt;</code>):"
            f"</p><textarea readonly>{html.escape(token)}</textarea>"
        )
        return self._page(values, result)

    async def _token(self, request: web.Request) -> web.Response:
        try:
            data: Any = await request.json()
        except ValueError:
            return web.json_response({"error": "invalid_request"}, status=400)
        if not isinstance(data, dict):
            return web.json_response({"error": "invalid_request"}, status=400)
        values = {k: data.get(k) for k in ("subject", "agent")}
        groups = data.get("groups") or []
        if not all(isinstance(v, str) and 0 < len(v) <= MAX_FIELD for v in values.values()) or (
            not isinstance(groups, list) or not all(isinstance(g, str) for g in groups)
        ):
            return web.json_response(
                {"error": "invalid_request", "error_description": "subject, agent: strings"},
                status=400,
            )
        token = self.token(str(values["subject"]), str(values["agent"]), groups[:64])
        return web.json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME}
        )


def _missing(values: dict[str, str]) -> str:
    absent = [k for k in ("subject", "agent") if not values[k].strip()]
    return f"fill in: {', '.join(absent)}" if absent else ""


def _groups(text: str) -> list[str]:
    return [g.strip() for g in text.split(",") if g.strip()]
