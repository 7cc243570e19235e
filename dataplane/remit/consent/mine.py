"""A human's own grants (list, revoke) and the administrators' access review page.

Revoking sets ``revoked: true`` and keeps the grant as evidence; the gateway stops allowing
within the usual 2 s (the operator pushes, or the standalone gateway reloads). Only the grants
whose ``subject`` is the logged-in ``sub`` are listed or revocable.

Revoke first, then record (the reverse of an approval, and for the same reason: failing closed
means the grant stops being in force): a revocation whose record cannot be written still
stands, and the human is told it was not recorded (503, logged). A crash between the two
leaves the grant revoked (``revokedBy``/``revokedAt`` in its evidence) with no record.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from remit.consent.app import csrf_token, message, page, service_of
from remit.consent.login import current_login
from remit.consent.security import check_csrf
from remit.errors import AuditError, ConsentRequestError, GrantStoreError
from remit.policy.consentrequest import ConsentRequest
from remit.policy.review import COLUMNS, review
from remit.times import utc_text

log = logging.getLogger(__name__)
router = APIRouter()


@router.get("/grants")
async def grants(request: Request, created: str = "") -> Response:
    """The logged-in human's grants, newest expiry first."""
    service = service_of(request)
    who = current_login(request)
    if who is None:
        request.session["next"] = "/grants"
        return RedirectResponse("/login", status_code=303)
    try:
        found = await run_in_threadpool(service.store.grants)
    except GrantStoreError as exc:
        return message(request, "Unavailable", str(exc), 503)
    now = service.now()
    rows = [
        {
            "name": g.metadata.name,
            "namespace": g.metadata.namespace,
            "agent": g.spec.agent,
            "server": f"{g.metadata.namespace}/{g.spec.server}",
            "tools": ", ".join(g.spec.tools) or "-",
            "scope": g.spec.evidence.scope if g.spec.evidence else (g.spec.when or "tool"),
            "expires": utc_text(g.spec.expires_at, "seconds"),
            "used": service.last_use(g) or "not known",
            "phase": g.phase(now),
        }
        for g in sorted(found, key=lambda g: g.spec.expires_at, reverse=True)
        if g.spec.subject == who.subject
    ]
    notice = f"Consent recorded as grant {created}." if created else ""
    return page(
        "grants.html",
        title="Your consent grants",
        login=who,
        rows=rows,
        csrf=csrf_token(request),
        notice=notice,
    )


@router.post("/grants/revoke")
async def revoke(
    request: Request,
    csrf: Annotated[str, Form()] = "",
    namespace: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
) -> Response:
    """Revoke one of the human's grants, keeping it as evidence; recorded."""
    service = service_of(request)
    try:
        check_csrf(request.session.get("csrf"), csrf, request.headers.get("origin"), service.origin)
    except ConsentRequestError as exc:
        return message(request, "Cannot continue", str(exc), 403)
    who = current_login(request)
    if who is None:
        return RedirectResponse("/login", status_code=303)
    try:
        found = await run_in_threadpool(service.store.grants)
    except GrantStoreError as exc:
        return message(request, "Unavailable", str(exc), 503)
    mine = [
        g
        for g in found
        if (g.metadata.namespace, g.metadata.name) == (namespace, name)
        and g.spec.subject == who.subject
    ]
    if not mine:
        return message(request, "Not found", "No such grant of yours.", 404)
    grant = mine[0]
    try:
        await run_in_threadpool(service.store.revoke, namespace, name, who.subject, service.now())
    except GrantStoreError as exc:
        return message(request, "Unavailable", str(exc), 503)
    what = ConsentRequest(
        id=grant.spec.evidence.request if grant.spec.evidence else grant.ref,
        server=f"{namespace}/{grant.spec.server}",
        issuer=who.issuer,
        subject=grant.spec.subject,
        agent=grant.spec.agent,
        tool=", ".join(grant.spec.tools),
        tool_hash=None,
        rule="",
        rule_when=None,
        max_seconds=0,
        issued_at=0,
        expires_at=0,
    )
    try:
        await service.write(what, "revoked", who, grant=grant.ref)
    except AuditError as exc:  # revoked all the same: a grant must not stay in force for this
        log.error("the revocation of grant %s is in force but was not recorded: %s", grant.ref, exc)
        text = (
            f"Grant {grant.ref} is revoked (no call is allowed under it once the gateways have "
            "it, within seconds), but the revocation could not be recorded: tell your "
            "administrator."
        )
        return message(request, "Revoked, not recorded", text, 503, str(exc))
    return RedirectResponse("/grants", status_code=303)


@router.get("/admin/review")
async def admin_review(request: Request) -> Response:
    """The access review, for the subjects in ``REMIT_CONSENT_ADMINS``."""
    service = service_of(request)
    who = current_login(request)
    if who is None:
        request.session["next"] = "/admin/review"
        return RedirectResponse("/login", status_code=303)
    if who.subject not in service.settings.admins:
        return message(request, "Forbidden", "Only administrators see the access review.", 403)
    try:
        resources = await run_in_threadpool(service.store.resources)
    except GrantStoreError as exc:
        return message(request, "Unavailable", str(exc), 503)
    rows = [row.flat() for row in review(resources, service.now())]
    return page("review.html", title="Access review", login=who, rows=rows, columns=COLUMNS)


__all__ = ["router"]
