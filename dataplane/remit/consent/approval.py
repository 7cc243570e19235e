"""Approving a consent request: the approval is recorded, then its grant written, one answer
per request at a time.

Record first: an approval's record is on the chain (and synced, where the chain syncs) before
its grant is written, so no crash can leave a grant in force that no record says who approved.
A record that cannot be written means no grant, and the human is told so (503).

Every ``approved`` record that made no grant is followed by one that says so and names it
(``cancels``: the approval's record id), wherever the chain can still be written:

- ``failed`` when the approval's record itself failed (it may be on the chain all the same:
  written but not synced), or when the grant could not be written (the store failed, the API
  server could not be reached, anything else): the page answers 503;
- ``duplicate`` when a grant of that name existed already (another replica of the consent
  service wrote it first, or someone else did): the page answers 409.

Answers to one request are serialised (``serial.KeyedLocks``): a second answer checks for the
grant only once the first is done, so a double click is refused (409) with nothing recorded.
A check that cannot be made (the store cannot be read) answers 503, also with nothing recorded.
A crash between the approval's record and its grant leaves an approval on the chain and no
grant: the call stays denied.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from remit.api.consentgrant import ConsentGrant, ConsentScope
from remit.audit.records import ConsentRecord
from remit.consent import grants as rules
from remit.consent.app import ConsentService, message
from remit.consent.grants import Login
from remit.errors import (
    AuditError,
    ConsentBusyError,
    ConsentRequestError,
    GrantExistsError,
    GrantStoreError,
)
from remit.policy.consentrequest import ConsentRequest
from remit.times import utc_text

log = logging.getLogger(__name__)


async def approve(
    request: Request,
    service: ConsentService,
    consent_request: ConsentRequest,
    who: Login,
    scope: ConsentScope,
    fields: list[str],
    duration: int,
) -> Response:
    """Record the approval, then write its grant (never the other way round)."""
    try:
        grant = rules.build_grant(consent_request, who, scope, fields, duration, service.now())
    except ConsentRequestError as exc:
        return message(request, "Cannot continue", str(exc), 400)
    try:
        async with service.answering.hold(consent_request.id):
            return await _approve(request, service, consent_request, who, scope, grant)
    except ConsentBusyError as exc:
        return message(request, "Busy", str(exc), 503)


async def _approve(
    request: Request,
    service: ConsentService,
    consent_request: ConsentRequest,
    who: Login,
    scope: ConsentScope,
    grant: ConsentGrant,
) -> Response:
    """Check, record, create: the caller holds the request's lock."""
    try:
        answered = await run_in_threadpool(service.store.exists, grant)
    except GrantStoreError as exc:
        log.error(
            "consent request %s: cannot tell whether it was answered: %s", consent_request.id, exc
        )
        text = "The grants cannot be read now, so nothing was recorded or granted: try again."
        return message(request, "Unavailable", text, 503, str(exc))
    if answered:  # answered before: nothing recorded
        text = f"Grant {grant.ref} already exists: this request was answered before."
        return message(request, "Already answered", text, 409)
    approval = service.entry(
        consent_request,
        "approved",
        who,
        scope=scope,
        grant=grant.ref,
        expires_at=utc_text(grant.spec.expires_at),
    )
    try:  # the record first: no grant is in force without it
        await service.record(approval)
    except AuditError as exc:  # it may be written all the same (not synced): cancel it
        log.error(
            "an approval of consent request %s was not recorded, so no grant was made: %s",
            consent_request.id,
            exc,
        )
        await _cancel(service, consent_request, who, approval, "failed")
        text = "Your approval could not be recorded, so no grant was made: the call stays denied."
        return message(request, "Not recorded", text, 503, str(exc))
    try:
        await run_in_threadpool(service.store.create, grant)
    except GrantExistsError as exc:  # written first by another answer: not a failure to write
        log.warning(
            "consent request %s: approval %s made no grant: %s",
            consent_request.id,
            approval.id,
            exc,
        )
        await _cancel(service, consent_request, who, approval, "duplicate")
        text = f"Grant {grant.ref} already exists: another answer to this request wrote it first."
        return message(request, "Already answered", text, 409, str(exc))
    except Exception as exc:  # whatever it was, the approval made no grant
        known = isinstance(exc, GrantStoreError)
        log.error(
            "consent request %s was approved (record %s) but its grant %s was not written: %s",
            consent_request.id,
            approval.id,
            grant.ref,
            exc,
            exc_info=not known,
        )
        await _cancel(service, consent_request, who, approval, "failed")
        text = (
            "Your approval was recorded, but its grant could not be written: the call stays denied."
        )
        return message(request, "Not granted", text, 503, str(exc) if known else "internal error")
    return RedirectResponse("/grants?" + urlencode({"created": grant.ref}), status_code=303)


async def _cancel(
    service: ConsentService,
    consent_request: ConsentRequest,
    who: Login,
    approval: ConsentRecord,
    answer: str,
) -> None:
    """Record that ``approval`` (on the chain, or perhaps on it) made no grant."""
    try:
        await service.write(
            consent_request,
            answer,
            who,
            scope=approval.scope,
            grant=approval.grant,
            expires_at=approval.expires_at,
            cancels=approval.id,
        )
    except AuditError as exc:
        log.error("nor could approval %s be recorded %s: %s", approval.id, answer, exc)


__all__ = ["approve"]
