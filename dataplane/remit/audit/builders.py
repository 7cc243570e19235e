"""Build decision and outcome records from what the gateway already holds.

The gateway calls :func:`build_decision` right after the engine decides and
:func:`build_outcome` when the call ends; both fill ids and times, hash the session id and turn
arguments into evidence, so no caller can record a raw session id or raw arguments by mistake.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from remit.audit.arguments import ArgumentMode, evidence_for
from remit.audit.records import (
    Decision,
    DecisionRecord,
    GrantRef,
    OutcomeRecord,
    format_time,
    hash_session,
    new_record_id,
    utc_now,
)
from remit.policy.request import Request

#: Methods whose ``params.arguments`` are recorded as evidence; others record ``null``.
METHODS_WITH_ARGUMENTS = frozenset({"tools/call", "prompts/get"})


def build_decision(
    request: Request,
    *,
    server: str,
    pod: str,
    decision: Decision,
    reason: str,
    message: str = "",
    rules: Sequence[str] = (),
    grant: GrantRef | None = None,
    bundle: str = "",
    serial: int | None = None,
    tool_hash: str | None = None,
    session_id: str | None = None,
    argument_mode: ArgumentMode = "digest",
    clock: Callable[[], datetime] = utc_now,
) -> DecisionRecord:
    """Describe one decision about ``request``.

    ``server`` is ``namespace/name``; ``session_id`` is the raw ``Mcp-Session-Id`` (only its
    sha256 is kept); ``request.now`` (else ``clock()``) is the decision time.
    """
    identity = request.identity
    arguments = (
        evidence_for(request.arguments, argument_mode)
        if request.method in METHODS_WITH_ARGUMENTS
        else None
    )
    return DecisionRecord(
        id=new_record_id(),
        time=format_time(request.now or clock()),
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
    return OutcomeRecord(
        id=new_record_id(),
        time=format_time(clock()),
        decision_id=decision.id,
        server=decision.server,
        pod=decision.pod,
        outcome=outcome,
        status=status,
        latency_ms=round(latency_ms, 3),
        error=error,
    )
