"""A JSON-RPC batch is decided as one: no allow is recorded for a call that is not forwarded.

The proxy forwards a batch only whole. The guard therefore decides every call of a batch first
and records allows only when all of them are allowed. If any is denied, ``refuse_batch``
records each denied call's own decision, then every call the policy would have allowed as
``batch_rejected`` (naming the denial that sank it): each message keeps exactly one record,
none of them an allow. If an allow cannot be written under the ``Fail`` audit policy midway,
``abandon_batch`` completes the allows already written with a ``not_forwarded`` outcome.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from remit.audit.records import DecisionRecord
from remit.gateway.hooks import Admit, Deny
from remit.gateway.protocol import Message
from remit.gateway.recorder import Recorder, Ticket
from remit.gateway.replies import denial, internal_error
from remit.gateway.state import Policy
from remit.policy.decision import Decision, Reason
from remit.policy.request import Request


@dataclass(frozen=True, slots=True)
class Judged:
    """One call, decided but not yet recorded."""

    call: Message
    request: Request
    decision: Decision
    tool_hash: str | None


async def refuse_batch(
    recorder: Recorder,
    policy: Policy,
    judged: Sequence[Judged],
    session: str | None,
    visible: Callable[[Judged], bool],
) -> list[Admit | Deny]:
    """Record and answer a batch with at least one denied call (see the module docstring)."""
    answers: dict[int, Admit | Deny] = {}
    fail_closed = policy.bundle.server.audit_failure_policy == "Fail"
    first = ""
    for index, j in enumerate(judged):
        if j.decision.allowed:
            continue
        record, recorded = await recorder.decision(
            policy, j.request, j.decision, j.tool_hash, session
        )
        first = first or record.id
        if not recorded and fail_closed:
            recorder.metrics.decisions.labels("deny", Reason.AUDIT_UNAVAILABLE).inc()
            answers[index] = Deny(error=_unrecorded(first))
        else:
            method, name = j.call.method, j.request.name
            answers[index] = denial(method, name, j.decision, record.id, visible(j))
    for index, j in enumerate(judged):
        if j.decision.allowed:
            text = f"another message in its batch was denied (decision {first})"
            record = await recorder.refusal(
                policy, j.request, Reason.BATCH_REJECTED, text, session=session
            )
            error = internal_error(text, record.id, Reason.BATCH_REJECTED)
            answers[index] = Deny(error=error, status=400)
    return [answers[index] for index in range(len(judged))]


async def abandon_batch(
    recorder: Recorder, admitted: Sequence[Admit | Deny], record: DecisionRecord, size: int
) -> list[Admit | Deny]:
    """A decision of the batch (``record``) could not be written (``Fail``): deny all ``size``
    calls, complete the allows already written as not forwarded, and have the chain name
    ``record`` as not forwarded too (a stalled sink may still write it)."""
    record_id = record.id
    recorder.unconfirmed(record)
    recorder.metrics.decisions.labels("deny", Reason.AUDIT_UNAVAILABLE).inc()
    for verdict in admitted:
        if isinstance(verdict, Admit) and isinstance(verdict.token, Ticket):
            why = "a later decision of its batch could not be recorded"
            await recorder.not_forwarded(verdict.token, why)
    return [Deny(error=_unrecorded(record_id))] * size


def _unrecorded(record_id: str) -> dict[str, Any]:
    message = f"decision could not be recorded ({Reason.AUDIT_UNAVAILABLE})"
    return internal_error(message, record_id, Reason.AUDIT_UNAVAILABLE)


__all__ = ["Judged", "abandon_batch", "refuse_batch"]
