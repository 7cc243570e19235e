"""The ConsentGrant an approval creates, with its evidence taken from the login.

Nothing here comes from a form field except the human's choices (scope, argument names,
duration), and each choice is checked against what the consent request offers: the scope's
CEL comes from the sealed request, the duration is capped by the rule's maximum. Who
consented (``iss`` and ``sub`` of the verified ID token) and which request was answered come
from the session and the request; the model (``remit.api.consentgrant``) validates the whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from remit.api.common import API_VERSION
from remit.api.consentgrant import ConsentGrant, ConsentScope
from remit.errors import ConsentRequestError
from remit.policy.consentrequest import ConsentRequest
from remit.times import utc_text

DURATIONS = (
    (900, "15 minutes"),
    (3600, "1 hour"),
    (8 * 3600, "8 hours"),
    (86_400, "1 day"),
    (7 * 86_400, "7 days"),
    (30 * 86_400, "30 days"),
)
SCOPES: dict[str, str] = {
    "call": "Only this exact call, with these arguments",
    "arguments": "This tool whenever the arguments I tick below have these values",
    "tool": "This tool, within what the policy rule already allows",
}


@dataclass(frozen=True, slots=True)
class Login:
    """Who is logged in: the verified ID token's issuer and subject, and when they logged in."""

    issuer: str
    subject: str
    authenticated_at: int | None = None
    name: str = ""


def durations(request: ConsentRequest) -> list[tuple[int, str]]:
    """The durations the page offers: the standard ones up to the rule's maximum."""
    offered = [(seconds, label) for seconds, label in DURATIONS if seconds <= request.max_seconds]
    return offered or [(request.max_seconds, f"{request.max_seconds} seconds")]


def scopes(request: ConsentRequest) -> list[str]:
    """The scopes this request can be granted at (what CEL could not bind is not offered)."""
    offered = []
    if request.call is not None:
        offered.append("call")
    if request.fields:
        offered.append("arguments")
    offered.append("tool")
    return offered


def grant_name(request: ConsentRequest) -> str:
    """One grant per request: answering twice cannot create two."""
    return f"consent-{request.id.lower()}"


def condition(request: ConsentRequest, scope: str, chosen: Sequence[str]) -> str | None:
    """The grant's ``when`` for ``scope`` (None: the rule's condition alone)."""
    if scope not in scopes(request):
        raise ConsentRequestError(f"scope {scope!r} is not offered for this request")
    if scope == "call":
        return request.call
    if scope == "arguments":
        unknown = [name for name in chosen if name not in request.fields]
        if not chosen or unknown:
            raise ConsentRequestError("choose at least one of the arguments shown")
        return " && ".join(request.fields[name] for name in sorted(set(chosen)))
    return None


def build_grant(
    request: ConsentRequest,
    login: Login,
    scope: ConsentScope,
    chosen: Sequence[str],
    seconds: int,
    now: datetime,
) -> ConsentGrant:
    """The grant for an approval; raises ``ConsentRequestError`` for a choice not offered."""
    if seconds not in {s for s, _ in durations(request)}:
        raise ConsentRequestError("choose one of the durations offered")
    evidence: dict[str, Any] = {
        "method": "ConsentPage",
        "issuer": login.issuer,
        "subject": login.subject,
        "consentedAt": utc_text(now),
        "request": request.id,
        "scope": scope,
    }
    if login.authenticated_at is not None:
        evidence["authenticatedAt"] = utc_text(
            datetime.fromtimestamp(login.authenticated_at, now.tzinfo)
        )
    spec: dict[str, Any] = {
        "subject": request.subject,
        "agent": request.agent,
        "server": request.server_name,
        "tools": [request.tool],
        "expiresAt": utc_text(now + timedelta(seconds=seconds)),
        "grantedBy": login.subject,
        "reason": f"approved on the consent page for request {request.id}",
        "evidence": evidence,
    }
    when = condition(request, scope, chosen)
    if when is not None:
        spec["when"] = when
    document: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "ConsentGrant",
        "metadata": {
            "name": grant_name(request),
            "namespace": request.namespace,
            "labels": {"remit.dev/consent-request": request.id.lower()},
        },
        "spec": spec,
    }
    try:
        return ConsentGrant.model_validate(document)
    except ValidationError as exc:
        raise ConsentRequestError(f"the grant would be invalid: {exc.errors()[0]['msg']}") from exc


def document(grant: ConsentGrant) -> dict[str, Any]:
    """The grant as a Kubernetes object (camelCase, no status, no empty fields)."""
    body: dict[str, Any] = grant.model_dump(
        by_alias=True, exclude_none=True, mode="json", exclude={"status"}
    )
    meta: dict[str, Any] = {"name": grant.metadata.name, "namespace": grant.metadata.namespace}
    if grant.metadata.labels:
        meta["labels"] = dict(grant.metadata.labels)
    body["metadata"] = meta
    return body


__all__ = [
    "DURATIONS",
    "SCOPES",
    "Login",
    "build_grant",
    "condition",
    "document",
    "durations",
    "grant_name",
    "scopes",
]
