"""Build decision and outcome records from what the gateway already holds.

The gateway calls :func:`build_decision` right after the engine decides and
:func:`build_outcome` when the call ends; both fill ids and times, hash the session id and turn
arguments into evidence, so no caller can record a raw session id or raw arguments by mistake.
:func:`record_decision` is the gateway's entry: it takes the bundle in force (or None) and the
engine's decision, and derives server, digest, serial, grant and argument mode from them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from remit.audit.arguments import ArgumentMode, evidence_for
from remit.audit.records import (
    DecisionRecord,
    OutcomeRecord,
    RecordedEvidence,
    RecordedGrant,
    hash_session,
    stamp,
    utc_now,
)
from remit.policy import decision as policy_decision
from remit.policy.bundle import Bundle, GrantEvidence
from remit.policy.decision import Effect
from remit.policy.request import Request
from remit.times import utc_text

#: Methods whose ``params.arguments`` are recorded as evidence; others record ``null``.
METHODS_WITH_ARGUMENTS = frozenset({"tools/call", "prompts/get"})


def build_decision(
    request: Request,
    server: str,
    *,
    pod: str,
    decision: Effect,
    reason: str,
    message: str = "",
    rules: Sequence[str] = (),
    grant: RecordedGrant | None = None,
    bundle: str = "",
    serial: int | None = None,
    tool_hash: str | None = None,
    session_id: str | None = None,
    argument_mode: ArgumentMode = "digest",
    clock: Callable[[], datetime] = utc_now,
    count: int = 1,
    source: str | None = None,
    argument_key: bytes | None = None,
) -> DecisionRecord:
    """Describe one decision about ``request``.

    ``server`` is ``namespace/name`` (the one argument after ``request`` that may be given by
    position: see :func:`record_decision`); ``session_id`` is the raw ``Mcp-Session-Id`` (only its
    sha256 is kept); ``request.now`` (else ``clock()``) is the decision time. ``count`` and
    ``source`` describe aggregated refusals (see :class:`DecisionRecord`).
    """
    identity = request.identity
    arguments = (
        evidence_for(request.arguments, argument_mode, argument_key)
        if request.method in METHODS_WITH_ARGUMENTS
        else None
    )
    record_id, moment = stamp(request.now, clock)
    return DecisionRecord(
        id=record_id,
        time=moment,
        server=server,
        pod=pod,
        method=request.method,
        tool=request.name,
        tool_hash=tool_hash,
        subject=identity.subject,
        issuer=identity.issuer,
        agent=identity.agent,
        chain=tuple(identity.chain),
        session=hash_session(session_id),
        scopes=tuple(identity.scopes),
        decision=decision,
        reason=reason,
        message=message,
        rules=tuple(rules),
        grant=grant,
        bundle=bundle,
        serial=serial,
        arguments=arguments,
        count=count,
        source=source,
    )


def recorded_grant(grant: policy_decision.GrantRef) -> RecordedGrant:
    """The part of the consent grant a decision relied on that its record keeps."""
    return RecordedGrant(
        name=grant.name,
        uid=grant.uid,
        resource_version=grant.resource_version,
        expires_at=utc_text(grant.expires_at),
        granted_by=grant.granted_by or None,
        evidence=None if grant.evidence is None else _evidence(grant.evidence),
    )


def _evidence(evidence: GrantEvidence) -> RecordedEvidence:
    return RecordedEvidence(
        method=evidence.method,
        issuer=evidence.issuer,
        subject=evidence.subject,
        consented_at=utc_text(evidence.consented_at),
        request=evidence.request,
        scope=evidence.scope,
    )


def record_decision(
    request: Request,
    *,
    bundle: Bundle | None,
    server: str,
    pod: str,
    effect: str,
    reason: str,
    message: str,
    decision: policy_decision.Decision | None = None,
    tool_hash: str | None = None,
    session_id: str | None = None,
    count: int = 1,
    source: str | None = None,
    argument_key: bytes | None = None,
) -> DecisionRecord:
    """The record of a decision made under ``bundle`` (None: no bundle in force).

    ``server`` is used only without a bundle (the bundle names its server). ``decision``, when
    the engine was asked, contributes the matched rules and the grant. ``count`` and ``source``
    describe refusals of unauthenticated callers (see :class:`DecisionRecord`).
    """
    grant = decision.grant if decision is not None else None
    # Two positional arguments and 14 keywords: CPython 3.11 passes more than 15 keywords, or
    # positions plus twice the keywords beyond 30, through a dict built and unpacked per call
    # (CALL_FUNCTION_EX, some 0.8 µs here); test_hot_path_calls checks that this stays under.
    return build_decision(
        request,
        f"{bundle.server.namespace}/{bundle.server.name}" if bundle else server,
        pod=pod,
        decision="allow" if effect == "allow" else "deny",
        reason=reason,
        message=message,
        rules=decision.rules if decision is not None else (),
        grant=recorded_grant(grant) if grant is not None else None,
        bundle=bundle.digest if bundle else "",
        serial=bundle.serial if bundle else None,
        tool_hash=tool_hash,
        session_id=session_id,
        argument_mode="redacted"
        if bundle is not None and bundle.server.audit_arguments == "Redacted"
        else "digest",
        count=count,
        source=source,
        argument_key=argument_key,
    )


def build_outcome(
    decision: DecisionRecord,
    *,
    outcome: str,
    latency_ms: float,
    status: int | None = None,
    error: str | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> OutcomeRecord:
    """Describe how the request behind ``decision`` ended.

    ``latency_ms`` is rounded to microseconds so lines stay short and stable.
    """
    record_id, moment = stamp(None, clock)
    return OutcomeRecord(
        id=record_id,
        time=moment,
        decision_id=decision.id,
        server=decision.server,
        pod=decision.pod,
        outcome=outcome,
        status=status,
        latency_ms=round(latency_ms, 3),
        error=error,
    )
