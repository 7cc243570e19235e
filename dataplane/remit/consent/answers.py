"""Answering a consent request: login, the consent page, approve or refuse.

Only the subject the request concerns (same issuer and ``sub`` as the verified login) sees or
answers it. An approval builds the grant from the sealed request and the login
(``grants.build_grant``), records it and then writes the grant to the store
(``approval.py``: record first); a refusal writes no grant. Both are recorded on the audit
chain with the request's id, and answers to one request are taken one at a time.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from remit.api.consentgrant import ConsentScope
from remit.consent import grants as rules
from remit.consent.app import ConsentService, csrf_token, message, page, service_of
from remit.consent.approval import approve
from remit.consent.grants import Login
from remit.consent.login import current_login
from remit.consent.security import check_csrf, new_csrf_token, safe_path
from remit.errors import AuditError, ConsentBusyError, ConsentRequestError
from remit.policy.consentrequest import ConsentRequest
from remit.times import utc_text

log = logging.getLogger(__name__)
router = APIRouter()
NOT_YOURS = "This consent request concerns another person; only they can answer it."


@router.get("/login")
async def login(request: Request) -> Response:
    """Send the human to the issuer."""
    return await service_of(request).login.start(request)


@router.get("/callback")
async def callback(request: Request) -> Response:
    """Back from the issuer: verify, start the session, go where we were (our own path)."""
    try:
        await service_of(request).login.finish(request)
    except ConsentRequestError as exc:
        return message(request, "Login failed", str(exc), 401)
    request.session["csrf"] = new_csrf_token()  # a new login gets a new token
    return RedirectResponse(safe_path(request.session.pop("next", None)), status_code=303)


def _mine(request: Request, consent: ConsentRequest) -> bool:
    who = current_login(request)
    return who is not None and (who.issuer, who.subject) == (consent.issuer, consent.subject)


@router.get("/consent")
async def consent(request: Request, r: str = "") -> Response:
    """Show a consent request to the human it concerns."""
    try:
        consent_request = service_of(request).open(r)
    except ConsentRequestError as exc:
        return message(request, "Cannot continue", str(exc), 400)
    who = current_login(request)
    if who is None:
        request.session["next"] = "/consent?" + urlencode({"r": r})
        return RedirectResponse("/login", status_code=303)
    if not _mine(request, consent_request):
        return message(
            request, "Not your request", NOT_YOURS, 403, f"You are signed in as {who.subject}."
        )
    shown = consent_request.shown or {}
    seconds = consent_request.max_seconds
    return page(
        "consent.html",
        title="Consent request",
        login=who,
        request=consent_request,
        token=r,
        csrf=csrf_token(request),
        arguments=json.dumps(shown, indent=2, ensure_ascii=False),
        shown_values={k: json.dumps(v, ensure_ascii=False) for k, v in shown.items()},
        scopes=rules.scopes(consent_request),
        scope_labels=rules.SCOPES,
        durations=rules.durations(consent_request),
        max_label=f"{seconds / 3600:g} hours" if seconds >= 3600 else f"{seconds} seconds",
        expires=utc_text(datetime.fromtimestamp(consent_request.expires_at, UTC)),
    )


@router.post("/consent/answer")
async def answer(
    request: Request,
    r: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
    answer: Annotated[str, Form()] = "",
    scope: Annotated[str, Form()] = "call",
    duration: Annotated[int, Form()] = 0,
    fields: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """Approve (create the grant) or refuse; both recorded."""
    service = service_of(request)
    try:
        check_csrf(request.session.get("csrf"), csrf, request.headers.get("origin"), service.origin)
        consent_request = service.open(r)
    except ConsentRequestError as exc:
        return message(request, "Cannot continue", str(exc), 403)
    who = current_login(request)
    if who is None or not _mine(request, consent_request):
        return message(request, "Not your request", NOT_YOURS, 403)
    if answer == "refuse":
        return await _refuse(request, service, consent_request, who)
    if answer != "approve" or scope not in rules.SCOPES:
        return message(request, "Cannot continue", "choose approve or refuse", 400)
    chosen: ConsentScope = scope  # type: ignore[assignment]
    return await approve(request, service, consent_request, who, chosen, fields or [], duration)


async def _refuse(
    request: Request, service: ConsentService, consent_request: ConsentRequest, who: Login
) -> Response:
    """Record the refusal (nothing is granted either way), one answer to a request at a time."""
    try:
        async with service.answering.hold(consent_request.id):
            await service.write(consent_request, "refused", who)
    except ConsentBusyError as exc:
        return message(request, "Busy", str(exc), 503)
    except AuditError as exc:
        log.error("a refusal of consent request %s was not recorded: %s", consent_request.id, exc)
        text = "Your refusal could not be recorded. No grant was made: the call stays denied."
        return message(request, "Not recorded", text, 503, str(exc))
    detail = f"Recorded for request {consent_request.id}."
    text = "You refused. The agent's call stays denied."
    return message(request, "Refused", text, 200, detail, "done")


__all__ = ["router"]
