"""Writing the gateway's decision and outcome records, with the metrics that go with them.

Every path through the guard ends here: a decision before forwarding, an outcome after, and a
refusal record for requests turned away before any decision (no bundle, bad token, foreign
session). A record that cannot be written is counted and logged, and the caller is told, so the
guard can deny when the bundle says audit failures fail closed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from remit.audit import AuditChain, Entry, build_outcome, record_decision
from remit.audit.records import DecisionRecord, OutcomeRecord
from remit.audit.syncer import SyncPoint
from remit.errors import AuditError
from remit.gateway.grantuse import GrantUse
from remit.gateway.hooks import Outcome
from remit.gateway.labels import OTHER, LabelCache
from remit.gateway.metrics import JSONRPC_ERROR, Metrics
from remit.gateway.state import Policy
from remit.policy.decision import Decision, Reason, upstream_reason
from remit.policy.request import Request

AUDIT_UNAVAILABLE = Reason.AUDIT_UNAVAILABLE.value
_MAX_ERROR_MESSAGE = 200  # characters of a JSON-RPC error's message kept in its outcome


@dataclass(frozen=True, slots=True)
class Ticket:
    """What the guard remembers between admitting a call and its outcome; ``synced``: what
    the call's answer waits for, its decision record on disk (``gateway/durability.py``)."""

    record: DecisionRecord
    started: float
    synced: SyncPoint | None = None


log = logging.getLogger(__name__)


class Recorder:
    """Builds records for one gateway and appends them to its chain."""

    def __init__(self, chain: AuditChain, metrics: Metrics, pod: str = "") -> None:
        self.chain = chain
        self.metrics = metrics
        self.pod = pod
        self.labels = LabelCache()
        #: Told of every record and its sealed line (None: not written); set when tracing.
        self.observe: Callable[[DecisionRecord | OutcomeRecord, Entry | None], None] | None = None
        self.grant_use = GrantUse()

    def build(
        self,
        policy: Policy | None,
        request: Request,
        effect: str,
        reason: Reason,
        message: str,
        decision: Decision | None = None,
        tool_hash: str | None = None,
        session: str | None = None,
    ) -> DecisionRecord:
        """The decision record for ``request`` under ``policy`` (None: no bundle in force)."""
        return record_decision(
            request,
            bundle=policy.bundle if policy is not None else None,
            server=self.chain.server,
            pod=self.pod,
            effect=effect,
            reason=reason,
            message=message,
            decision=decision,
            tool_hash=tool_hash,
            session_id=session,
            argument_key=self.chain.digest_key,
        )

    async def decision(
        self, policy: Policy, request: Request, decision: Decision, tool_hash: str | None,
        session: str | None,
    ) -> tuple[DecisionRecord, bool]:  # fmt: skip
        """Count and record the engine's ``decision``; return the record and whether it was
        written."""
        record = self.build(
            policy, request, decision.effect, decision.reason, decision.message, decision,
            tool_hash, session,
        )  # fmt: skip
        self.metrics.decided(decision.effect, decision.reason).inc()
        self.count(policy, record)
        written = await self.append(record, "decision")
        if written:
            self.grant_use.note(record)
        return record, written

    async def refusal(
        self,
        policy: Policy | None,
        request: Request,
        reason: Reason,
        message: str,
        *,
        session: str | None = None,
        source: str | None = None,
        count: int = 1,
        counted: bool = False,
    ) -> DecisionRecord:
        """Record a request refused before (or instead of) a decision; count it unless
        ``counted``. ``count`` > 1 summarises aggregated refusals (``refusals.py``)."""
        if not counted:
            self.metrics.decided("deny", reason).inc()
        record = record_decision(
            request,
            bundle=policy.bundle if policy is not None else None,
            server=self.chain.server,
            pod=self.pod,
            effect="deny",
            reason=reason,
            message=message,
            session_id=session,
            count=count,
            source=source,
        )
        if not counted:
            self.count(policy, record)
        await self.append(record, "deny")
        return record

    def count(self, policy: Policy | None, record: DecisionRecord) -> None:
        """Count ``record`` by server, agent, tool, effect and reason (bounded: labels.py)."""
        known = self.labels.names(policy.bundle if policy is not None else None)
        agent = known.agent(record.agent) if known is not None else OTHER
        tool = known.target(record.tool) if known is not None else OTHER
        labels = (record.server, agent, tool, record.decision, record.reason)
        self.metrics.call_decided(*labels).inc()

    async def not_forwarded(self, ticket: Ticket, why: str) -> None:
        """Complete an allow whose request was then not forwarded after all (e.g. a later
        record of its batch could not be written); if even that outcome cannot be written,
        the chain's next ``recover`` marker names the decision."""
        record = build_outcome(ticket.record, outcome="not_forwarded", latency_ms=0.0, error=why)
        if not await self.append(record, "outcome"):
            self.chain.not_forwarded(ticket.record.id)

    def unconfirmed(self, record: DecisionRecord) -> None:
        """The allow ``record`` was not confirmed written and the gateway denies its call:
        it may still reach the log (a stalled sink finishes its write), so the chain's next
        ``recover`` marker names it as not forwarded."""
        self.chain.not_forwarded(record.id)

    async def outcome(self, ticket: Ticket, outcome: Outcome) -> None:
        """Write the outcome line that completes the call's decision record (once the
        decision is on disk: an answer whose decision did not sync is withheld, and its
        outcome says so; ``durability.py``)."""
        self.metrics.upstream_seconds.observe(outcome.latency)
        kind, error = "ok", outcome.error
        unsynced = None if ticket.synced is None else await _unsynced(ticket.synced)
        if unsynced is not None:
            kind, error = AUDIT_UNAVAILABLE, unsynced
        elif outcome.kind is not None:
            kind = outcome.kind  # e.g. cancelled: the client went away
        elif outcome.error is not None:
            kind = "upstream_error"
            reason = upstream_reason(outcome.error)
            self.metrics.upstream_errors.labels("transport", reason).inc()
        elif outcome.response is not None and "error" in outcome.response:
            # the server answered the call with a JSON-RPC error (e.g. -32602 from the tool):
            # a normal end of the call, recorded with its code; not an upstream failure
            kind, error = "error", jsonrpc_error_text(outcome.response["error"])
            self.metrics.upstream_errors.labels("jsonrpc", JSONRPC_ERROR).inc()
        record = build_outcome(
            ticket.record,
            outcome=kind,
            latency_ms=outcome.latency * 1000.0,
            status=outcome.status or None,
            error=error,
        )
        await self.append(record, "outcome")

    def sync_point(self) -> SyncPoint | None:
        """What to wait for before the records appended so far are on disk (None: nothing;
        see ``AuditChain.sync_point``)."""
        point = getattr(self.chain, "sync_point", None)  # a chain without one syncs per record
        return point() if point is not None else None

    async def append(self, record: DecisionRecord | OutcomeRecord, what: str) -> bool:
        """Append ``record`` to the chain; a failure is counted, logged and returned as False."""
        entry: Entry | None = None
        try:
            entry = await self.chain.append(record)
        except AuditError as exc:
            self.metrics.audit_failures.inc()
            log.error("%s record not written: %s", what, exc)
            written = False
        else:
            written = True
        if self.observe is not None:
            self.observe(record, entry)
        return written


async def _unsynced(synced: SyncPoint) -> str | None:
    """Why a ticket's decision record is not on disk at ``synced`` (None: it is)."""
    try:
        await synced.wait()
    except AuditError as exc:
        return f"{AUDIT_UNAVAILABLE}: the answer was withheld, its decision is not on disk ({exc})"
    return None


def jsonrpc_error_text(error: object) -> str:
    """The ``error`` of an outcome answered with a JSON-RPC error: its code, then its message
    (bounded: the record is not the place for a server's whole text)."""
    if not isinstance(error, dict):
        return "jsonrpc_error"
    message = error.get("message")
    head = f"jsonrpc_error {error.get('code')}"
    return f"{head}: {message[:_MAX_ERROR_MESSAGE]}" if isinstance(message, str) else head
