"""The consent pages' web safety: headers on every answer, CSRF checks, safe redirects.

- Every response says: no framing (``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``),
  a content security policy allowing only this origin's style sheet and forms posting to this
  origin (no script at all), ``nosniff``, no referrer to other sites (a consent link must
  not leak; ``same-origin`` rather than ``no-referrer``, which makes browsers send
  ``Origin: null`` on the page's own forms), and no caching.
- A state-changing POST must carry the session's CSRF token (``secrets.compare_digest``) and,
  when the browser sends ``Origin``, come from the page's own origin. The session cookie is
  ``SameSite=Lax`` as well (strict would lose the session on the issuer's redirect back).
- Redirects go only to paths this service built (``safe_path``): never to a URL from a query.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from remit.errors import ConsentRequestError

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


class SecurityHeaders:
    """ASGI middleware adding ``HEADERS`` to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in HEADERS}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message["headers"] = kept + list(HEADERS)
            await send(message)

        await self.app(scope, receive, with_headers)


def new_csrf_token() -> str:
    """A fresh token for a session."""
    return secrets.token_urlsafe(32)


def check_csrf(expected: Any, presented: Any, origin: str | None, own_origin: str) -> None:
    """Refuse a POST without the session's token, or sent from another origin."""
    if not isinstance(expected, str) or not isinstance(presented, str) or not expected:
        raise ConsentRequestError("the form expired or did not come from this page; reload it")
    if not secrets.compare_digest(expected.encode(), presented.encode()):
        raise ConsentRequestError("the form expired or did not come from this page; reload it")
    if origin is not None and origin != own_origin:  # "null" (a sandboxed frame) too
        raise ConsentRequestError("the form was posted from another site")


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def safe_path(path: Any, default: str = "/grants") -> str:
    """``path`` if it is a path on this site (``/x``, not ``//host`` or ``/\\host``)."""
    if (
        not isinstance(path, str)
        or not path.startswith("/")
        or path.startswith(("//", "/\\"))
        or any(ord(c) < 0x21 for c in path)
    ):
        return default
    return path


__all__ = [
    "CSP",
    "SecurityHeaders",
    "check_csrf",
    "new_csrf_token",
    "origin_of",
    "safe_path",
]
