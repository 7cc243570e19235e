"""A human on the consent page with an HTTP client instead of a browser: open a consent link,
sign in at the test issuer (the authorization code + PKCE flow the page starts) and answer.

Cookies are handled by hand because the page sets them ``Secure`` (as in production) and the
tests speak plain http on loopback, where an HTTP client would rightly not send a ``Secure``
cookie. Used where no Chromium is needed (tests/kube, and tests/consent's checks of what is
recorded); tests/consent drives the real browser for the pages themselves.
"""

from __future__ import annotations

import html
import re
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx


class Browser:
    """An HTTP client that follows redirects and keeps cookies per host, ``Secure`` or not."""

    def __init__(self) -> None:
        self.http = httpx.Client(timeout=10, follow_redirects=False)
        self.cookies: dict[str, dict[str, str]] = {}

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def go(self, method: str, url: str, **options: Any) -> httpx.Response:
        """One request, then each redirect (as GET), returning the last answer."""
        for _ in range(10):
            host = urlsplit(url).netloc
            jar = self.cookies.setdefault(host, {})
            headers = dict(options.pop("headers", {}))
            if jar:
                headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
            response = self.http.request(method, url, headers=headers, **options)
            for line in response.headers.get_list("set-cookie"):
                for name, morsel in SimpleCookie(line).items():
                    jar[name] = morsel.value
            if response.status_code not in (302, 303, 307):
                return response
            url, method, options = urljoin(url, response.headers["location"]), "GET", {}
        raise AssertionError("too many redirects")

    def sign_in(self, link: str, subject: str) -> httpx.Response:
        """Open ``link`` as ``subject``: the page sends us to the issuer's sign-in form, whose
        answer brings us back to the page (returned)."""
        login_form = self.go("GET", link)  # → /login → the issuer's sign-in form
        assert "Sign in" in login_form.text, login_form.text[:500]
        fields = {**form_fields(login_form.text), "username": subject}
        page = self.go("POST", str(login_form.url), data=fields)  # → /callback → the page
        assert page.status_code == 200, page.text[:2000]
        return page


def form_fields(page: str) -> dict[str, str]:
    """The hidden inputs of the (first) form on ``page``."""
    found = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)
    return {name: html.unescape(value) for name, value in found}


def durations(page: str) -> list[str]:
    """The durations the consent page offers, in seconds, as its form sends them."""
    return re.findall(r'<option value="([0-9]+)"', page)


__all__ = ["Browser", "durations", "form_fields"]
