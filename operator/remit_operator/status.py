"""Status of every kind as pure functions: conditions, and what each kind reports.

Conditions follow the Kubernetes convention (type, status, reason, message, observedGeneration,
lastTransitionTime); the transition time changes only when the status does, so re-writing the
same status is a no-op the caller can skip (``unchanged``).

- MCPServer: ``Ready`` (every desired sidecar runs the current bundle; ``SidecarsTooOld``
  when some sidecar does not know a field the bundle uses), bundle digest and serial, sidecars
  desired/ready/in sync, observed tool pins.
- AgentPolicy: ``Accepted``, or the validation error naming the field and the CEL column.
- ConsentGrant: phase Active/Expired/Revoked, ``expiresAt``, and an ``Active`` condition.
- AgentPolicy and ConsentGrant: a ``Warnings`` condition for what loads but cannot work
  (``remit.api.lint``), True with the list, False when there is none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from remit.api.consentgrant import ConsentGrant
from remit.api.lint import Finding
from remit.errors import RemitError, ResourceError
from remit.times import utc_text


def _time(value: datetime) -> str:
    return utc_text(value, "seconds")


def condition(
    type_: str,
    ok: bool,
    reason: str,
    message: str,
    *,
    generation: int | None,
    now: datetime,
    previous: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """One condition; keeps the previous ``lastTransitionTime`` when the status is unchanged."""
    status = "True" if ok else "False"
    since = _time(now)
    for old in previous:
        if (
            old.get("type") == type_
            and old.get("status") == status
            and old.get("lastTransitionTime")
        ):
            since = str(old["lastTransitionTime"])
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": since,
    }


def _generation(body: Mapping[str, Any]) -> int | None:
    value = (body.get("metadata") or {}).get("generation")
    return int(value) if isinstance(value, int) else None


def _conditions(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list((body.get("status") or {}).get("conditions") or [])


def unchanged(body: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether the object's status already says everything in ``wanted``."""
    current = body.get("status") or {}
    return all(current.get(k) == v for k, v in wanted.items())


def rejection(error: RemitError) -> tuple[str, str]:
    """The reason and message for an invalid resource: field, and the CEL column if any."""
    if isinstance(error, ResourceError):
        reason = "InvalidExpression" if "invalid CEL" in error.reason else "InvalidSpec"
        return reason, f"{error.field}: {error.reason}" if error.field else error.reason
    return "Invalid", str(error)


def policy_status(
    body: Mapping[str, Any], now: datetime, error: RemitError | None = None
) -> dict[str, Any]:
    """AgentPolicy status: Accepted, or the validation error."""
    generation = _generation(body)
    if error is None:
        cond = condition(
            "Accepted",
            True,
            "Valid",
            "compiled into the bundles of the servers it names",
            generation=generation,
            now=now,
            previous=_conditions(body),
        )
    else:
        reason, message = rejection(error)
        cond = condition(
            "Accepted",
            False,
            reason,
            message,
            generation=generation,
            now=now,
            previous=_conditions(body),
        )
    return {"conditions": [cond], "observedGeneration": generation}


def grant_status(
    body: Mapping[str, Any],
    grant: ConsentGrant | None,
    now: datetime,
    error: RemitError | None = None,
) -> dict[str, Any]:
    """ConsentGrant status: its phase now, when it expires, and an ``Active`` condition."""
    generation = _generation(body)
    previous = _conditions(body)
    if grant is None or error is not None:
        reason, message = (
            rejection(error) if error is not None else ("Invalid", "not a valid grant")
        )
        cond = condition(
            "Active", False, reason, message, generation=generation, now=now, previous=previous
        )
        return {"conditions": [cond], "observedGeneration": generation}
    phase = grant.phase(now)
    expires = _time(grant.spec.expires_at)
    message = {
        "Active": f"consent in force until {expires}",
        "Expired": f"consent expired at {expires}",
        "Revoked": "consent revoked (spec.revoked)",
    }[phase]
    cond = condition(
        "Active",
        phase == "Active",
        phase,
        message,
        generation=generation,
        now=now,
        previous=previous,
    )
    return {
        "phase": phase,
        "expiresAt": expires,
        "conditions": [cond],
        "observedGeneration": generation,
    }


def warnings_condition(
    body: Mapping[str, Any], found: Sequence[Finding], now: datetime
) -> dict[str, Any]:
    """The ``Warnings`` condition: True, naming each mistake, when the resource loads but
    cannot work as written (no such server, a glob that never matches, a non-boolean ``when``,
    a grant already expired when created); False (``None``) otherwise."""
    if found:
        reason = found[0].reason if len({f.reason for f in found}) == 1 else "Several"
        message = "; ".join(f"{f.field}: {f.message}" for f in found)[:1000]
    else:
        reason, message = "None", "no warnings"
    return condition(
        "Warnings",
        bool(found),
        reason,
        message,
        generation=_generation(body),
        now=now,
        previous=_conditions(body),
    )


@dataclass(frozen=True, slots=True)
class ServerReport:
    """What a sync of one MCPServer found."""

    digest: str | None
    serial: int | None
    desired: int
    ready: int
    in_sync: int
    pins: Mapping[str, str]
    error: str | None = None  # why there is no bundle (compile error, invalid spec)
    failed: tuple[str, ...] = ()  # sidecars that did not take the bundle
    refused: bool = False  # some of them answered that they refuse it (wrong server, stale)
    too_old: str | None = None  # which sidecars lack which bundle fields (bundlefields.py)


def server_status(body: Mapping[str, Any], report: ServerReport, now: datetime) -> dict[str, Any]:
    """MCPServer status from a sync report."""
    generation = _generation(body)
    if report.error is not None:
        ok, reason, message = False, "Invalid", report.error
    elif report.too_old is not None:  # they refuse it too: this says why, the rest follows
        ok, reason, message = False, "SidecarsTooOld", report.too_old
        if report.failed:
            message += f"; {len(report.failed)} did not take it: {'; '.join(report.failed)}"
    elif report.failed:
        ok, reason = False, "BundleRefused" if report.refused else "PushFailed"
        message = (
            f"{len(report.failed)} sidecar(s) did not take the bundle: {'; '.join(report.failed)}"
        )
    elif report.in_sync < report.desired:
        ok, reason = False, "Syncing"
        message = f"{report.in_sync}/{report.desired} sidecars run bundle {report.digest}"
    else:
        ok, reason = True, "InSync"
        message = f"{report.in_sync}/{report.desired} sidecars run bundle {report.digest}"
    cond = condition(
        "Ready",
        ok,
        reason,
        message[:1000],
        generation=generation,
        now=now,
        previous=_conditions(body),
    )
    return {
        "conditions": [cond],
        "bundleDigest": report.digest,
        "bundleSerial": report.serial,
        "sidecarsDesired": report.desired,
        "sidecarsReady": report.ready,
        "sidecarsInSync": report.in_sync,
        "toolPins": dict(report.pins),
        "observedGeneration": generation,
    }
