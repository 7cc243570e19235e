"""The demo's human: answers a consent request on the consent page over plain HTTP.

``remit demo`` shows the consent loop without a browser: this follows the link the gateway
gave, signs in at the demo issuer's login form as the given user (the issuer's OIDC
authorization code flow with PKCE, driven by the consent page), and submits the consent form
with its CSRF token. It keeps the page's session cookie itself, as a browser does for
``http://127.0.0.1`` (a secure context, so its ``Secure`` cookie is kept there; Python's cookie
jars would drop it). The browser tests (tests/consent) do the same with Chromium.
"""

from __future__ import annotations

from html.parser import HTMLParser
from http.cookies import SimpleCookie
from urllib.parse import urljoin, urlsplit

import httpx

_MAX_REDIRECTS = 10


class _Forms(HTMLParser):
    """The first form's action and its inputs (name → value; checked radios only)."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form" and self.action is None:
            self.action = values.get("action", "")
        elif tag == "input" and values.get("name") and values.get("type") != "checkbox":
            if values.get("type") == "radio" and "checked" not in values:
                return
            self.fields.setdefault(values["name"], values.get("value", ""))


class _Browser:
    """Follows redirects and keeps the consent page's cookies (and only its own)."""

    def __init__(self, site: str) -> None:
        self.site = _origin(site)
        self.cookies: dict[str, str] = {}
        self.client = httpx.Client(timeout=10)

    def request(self, method: str, url: str, data: dict[str, str] | None = None) -> httpx.Response:
        for _ in range(_MAX_REDIRECTS):
            headers = {}
            if _origin(url) == self.site:
                if self.cookies:
                    headers["cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
                if method == "POST":
                    headers["origin"] = self.site
            answer = self.client.request(method, url, data=data, headers=headers)
            if _origin(url) == self.site:
                for header in answer.headers.get_list("set-cookie"):
                    for name, morsel in SimpleCookie(header).items():
                        self.cookies[name] = morsel.value
            if answer.status_code not in (301, 302, 303, 307, 308):
                return answer
            url, method, data = urljoin(url, answer.headers["location"]), "GET", None
        raise RuntimeError("too many redirects")

    def close(self) -> None:
        self.client.close()


def _form(page: httpx.Response) -> tuple[str, dict[str, str]]:
    parser = _Forms()
    parser.feed(page.text)
    return urljoin(str(page.url), parser.action or str(page.url)), parser.fields


def approve(link: str, user: str, *, scope: str = "call", seconds: int = 900) -> str:
    """Log in as ``user`` and approve the request behind ``link``; the grants page's notice."""
    browser = _Browser(link)
    try:
        login = browser.request("GET", link)  # → the issuer's login form
        action, fields = _form(login)
        consent = browser.request("POST", action, {**fields, "username": user})
        if consent.status_code != 200 or 'id="approve"' not in consent.text:
            raise RuntimeError(f"the consent page refused ({consent.status_code})")
        action, fields = _form(consent)
        answer = {**fields, "answer": "approve", "scope": scope, "duration": str(seconds)}
        grants = browser.request("POST", action, answer)
        start = grants.text.find('id="notice">')
        if grants.status_code != 200 or start < 0:
            raise RuntimeError(f"approval failed ({grants.status_code})")
        return grants.text[start + len('id="notice">') :].split("<", 1)[0]
    finally:
        browser.close()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


__all__ = ["approve"]
