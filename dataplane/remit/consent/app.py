"""The consent service: the pages where a human answers an agent's consent request.

``/consent?r=…`` opens a request the gateway sealed (forged, altered or expired links are
refused), asks the human to log in at the issuer, and shows it only to the subject it concerns;
``/consent/answer`` approves (a ConsentGrant with the login as evidence) or refuses, and both
are recorded (``answers.py``, ``approval.py``); ``/grants`` lists the human's grants and
revokes them, and ``/admin/review`` is the access review for administrators (``mine.py``).
Safety: see ``security.py``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from starlette.middleware.sessions import SessionMiddleware

from remit.api.consentgrant import ConsentGrant
from remit.audit.records import CONSENT_ANSWERS, ConsentRecord, format_time, new_record_id
from remit.consent.grants import Login
from remit.consent.keys import LinkKeys
from remit.consent.login import OidcLogin, current_login
from remit.consent.pages import STYLE, render
from remit.consent.security import SecurityHeaders, new_csrf_token, origin_of
from remit.consent.serial import KeyedLocks
from remit.consent.settings import ConsentSettings
from remit.consent.store import GrantStore
from remit.policy.consentrequest import ConsentRequest, ConsentSealer
from remit.times import utc_text

Recorder = Callable[[ConsentRecord], Awaitable[None]]
LastUse = Callable[[ConsentGrant], str | None]
"""When a grant last let a call through, as known (``None``: not known)."""


def recorded_last_use(grant: ConsentGrant) -> str | None:
    """In a cluster: ``status.lastUsedAt``, which the operator copies from the sidecars."""
    status = grant.status
    if status is None or status.last_used_at is None:
        return None
    return utc_text(status.last_used_at, "seconds")


@dataclass
class ConsentService:
    """What the routes share (``request.app.state.service``); ``answering`` keeps the answers
    to one consent request one at a time (``serial.py``)."""

    settings: ConsentSettings
    sealer: ConsentSealer | LinkKeys
    store: GrantStore
    login: OidcLogin
    record: Recorder
    clock: Callable[[], float] = time.time
    last_use: LastUse = recorded_last_use
    answering: KeyedLocks = field(default_factory=KeyedLocks)

    @property
    def origin(self) -> str:
        """The page's own origin, which every form must come from."""
        return origin_of(self.settings.public_url)

    def now(self) -> datetime:
        """The service's clock as an aware datetime."""
        return datetime.fromtimestamp(self.clock(), UTC)

    def open(self, token: str) -> ConsentRequest:
        """The request sealed in ``token``; ``ConsentRequestError`` if forged or expired."""
        return self.sealer.open(token, self.clock())

    def entry(
        self, request: ConsentRequest, answer: str, login: Login, **extra: Any
    ) -> ConsentRecord:
        """The record of an answer to ``request`` (one of ``CONSENT_ANSWERS``), with its own id."""
        if answer not in CONSENT_ANSWERS:
            raise ValueError(f"not a consent answer: {answer!r}")
        return ConsentRecord(
            id=new_record_id(),
            time=format_time(self.now()),
            server=request.server,
            pod="",
            request=request.id,
            answer=answer,
            subject=request.subject,
            agent=request.agent,
            tool=request.tool,
            login_issuer=login.issuer,
            login_subject=login.subject,
            **extra,
        )

    async def write(
        self, request: ConsentRequest, answer: str, login: Login, **extra: Any
    ) -> ConsentRecord:
        """Record an answer (one of ``CONSENT_ANSWERS``) on the audit chain; returns the record
        written."""
        record = self.entry(request, answer, login, **extra)
        await self.record(record)
        return record


def service_of(request: Request) -> ConsentService:
    """The service the app was built with."""
    service: ConsentService = request.app.state.service
    return service


def page(template: str, status: int = 200, **values: Any) -> HTMLResponse:
    """An HTML page."""
    return HTMLResponse(render(template, **values), status_code=status)


def message(
    request: Request, title: str, text: str, status: int, detail: str = "", kind: str = "error"
) -> HTMLResponse:
    """A page that only says something (a refusal, a confirmation)."""
    login = current_login(request)
    return page(
        "message.html", status, title=title, message=text, detail=detail, login=login, kind=kind
    )


def csrf_token(request: Request) -> str:
    """The session's CSRF token (made on first use)."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = new_csrf_token()
        request.session["csrf"] = token
    return token


def create_app(service: ConsentService, session_key: bytes) -> Any:
    """The consent pages as an ASGI app (FastAPI, with sessions and the safety headers)."""
    from remit.consent.answers import router as answers  # noqa: PLC0415 - they import this
    from remit.consent.mine import router as mine  # noqa: PLC0415

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service

    @app.get("/healthz", response_class=PlainTextResponse)
    async def healthz() -> str:
        return "ok"

    @app.get("/readyz", response_class=PlainTextResponse)
    async def readyz() -> str:
        return "ok"

    @app.get("/static/consent.css")
    async def style() -> Response:
        return Response(STYLE, media_type="text/css")

    app.include_router(answers)
    app.include_router(mine)
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_key.hex(),
        session_cookie="remit_consent",
        max_age=3600,
        same_site="lax",
        https_only=not service.settings.insecure_cookies,
    )
    return SecurityHeaders(app)


__all__ = ["ConsentService", "LastUse", "Recorder", "create_app", "recorded_last_use"]
