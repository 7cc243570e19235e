"""Answer "who acted, on whose behalf, under what consent, by which rule" for one record.

:func:`explain` finds a decision line (by its id, or by the id of its outcome line) and its
outcome, and renders them as one paragraph for people plus a JSON object for tools. It checks
each found line's own hash (``intact``); whether the whole file is unbroken is
:func:`remit.audit.verify.verify_file`'s job.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from remit.audit.lines import parse_line, recompute_hash
from remit.audit.records import (
    AuditRecord,
    ChainRecord,
    DecisionRecord,
    OutcomeRecord,
    RecordedEvidence,
)
from remit.errors import AuditError


@dataclass(frozen=True, slots=True)
class Found:
    """A record located in a log: the record, its 1-based line number and whether its hash holds."""

    record: AuditRecord
    line: int
    intact: bool

    def to_dict(self) -> dict[str, Any]:
        """The record as written, plus where it was and whether it is intact."""
        return {
            "line": self.line,
            "intact": self.intact,
            "record": msgspec.to_builtins(self.record),
        }


@dataclass(frozen=True, slots=True)
class Explanation:
    """A decision, its outcome (``None`` if none was recorded) and a paragraph about them.

    ``voided`` is the ``recover`` marker naming the decision as not forwarded (its outcome
    when the sink stalled before confirming the decision, see ``chain.py``)."""

    decision: Found
    outcome: Found | None
    text: str
    voided: Found | None = None

    @property
    def intact(self) -> bool:
        """Whether every found line hashes to its ``hash``."""
        return self.decision.intact and (self.outcome is None or self.outcome.intact)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form printed by ``remit audit explain --output json``."""
        return {
            "id": self.decision.record.id,
            "intact": self.intact,
            "summary": self.text,
            "decision": self.decision.to_dict(),
            "outcome": None if self.outcome is None else self.outcome.to_dict(),
            "notForwardedBy": None if self.voided is None else self.voided.to_dict(),
        }


def _scan(path: Path, needle: str) -> Iterator[Found]:
    """Yield every record in ``path`` whose line mentions ``needle`` (others are not parsed)."""
    key = needle.encode()
    try:
        with path.open("rb") as stream:
            for number, line in enumerate(stream, start=1):
                if key not in line:
                    continue
                try:
                    record = parse_line(line)
                except ValueError:  # not a record: other output, or damaged
                    continue
                yield Found(record, number, recompute_hash(record) == record.hash)
    except OSError as exc:
        raise AuditError(f"cannot read audit file {path}: {exc.strerror}") from exc


def _find(path: Path, record_id: str) -> tuple[Found | None, Found | None, Found | None]:
    decision: Found | None = None
    outcome: Found | None = None
    voided: Found | None = None
    for found in _scan(path, record_id):
        record = found.record
        if isinstance(record, ChainRecord) and record_id in record.not_forwarded:
            voided = voided or found
        elif isinstance(record, DecisionRecord) and record.id == record_id and decision is None:
            decision = found
        elif (
            isinstance(record, OutcomeRecord)
            and outcome is None
            and record_id in (record.decision_id, record.id)
        ):
            outcome = found
    if decision is None and outcome is not None:
        wanted = outcome.record
        assert isinstance(wanted, OutcomeRecord)
        for found in _scan(path, wanted.decision_id):
            record = found.record
            if isinstance(record, DecisionRecord) and record.id == wanted.decision_id:
                decision = found
                break
    return decision, outcome, voided


def explain(path: Path, record_id: str) -> Explanation:
    """Explain the decision ``record_id`` (a decision id or its outcome's id) in ``path``.

    Raises :class:`AuditError` when the file cannot be read or no such decision is in it.
    """
    decision, outcome, voided = _find(path, record_id)
    if decision is None:
        raise AuditError(f"no decision record with id {record_id!r} in {path}")
    record = decision.record
    assert isinstance(record, DecisionRecord)
    result = None if outcome is None else outcome.record
    assert result is None or isinstance(result, OutcomeRecord)
    text = render(record, result, None if voided is None else voided.line)
    return Explanation(decision, outcome, text, voided)


def _short(digest: str | None) -> str:
    return "unknown" if not digest else digest[:12]


_SCOPES = {
    "call": "this exact call (bound to its arguments)",
    "arguments": "the tool with the chosen arguments fixed",
    "tool": "the tool within the rule's condition",
}


def consented(evidence: RecordedEvidence) -> str:
    """Who consented where, when, to what scope, for which request."""
    scope = _SCOPES.get(evidence.scope, evidence.scope)
    where = "on the consent page" if evidence.method == "ConsentPage" else evidence.method
    return (
        f"{evidence.subject} (logged in at {evidence.issuer}) consented {where} at "
        f"{evidence.consented_at} to {scope}, for consent request {evidence.request}"
    )


def render(
    decision: DecisionRecord, outcome: OutcomeRecord | None, voided: int | None = None
) -> str:
    """Describe a decision and its outcome in one paragraph; ``voided`` is the line of a
    ``recover`` marker that names the decision as not forwarded."""
    actor = f"Agent {decision.agent or '(unknown)'}"
    if decision.chain:
        actor += f" (delegated through {' → '.join(decision.chain)})"
    behalf = decision.subject or "(no subject)"
    if decision.issuer:
        behalf += f" (issuer {decision.issuer})"
    what = decision.method + (f" {decision.tool}" if decision.tool else "")
    details = []
    if decision.tool_hash:
        details.append(f"tool definition {_short(decision.tool_hash)}")
    if decision.arguments is not None:
        details.append(f"arguments sha256 {_short(decision.arguments.digest)}")
    if decision.session:
        details.append(f"session {_short(decision.session)}")
    detail = f" ({'; '.join(details)})" if details else ""
    sentences = [
        f"At {decision.time}, {actor} acted on behalf of {behalf} and asked for {what}"
        f"{detail} on server {decision.server} in pod {decision.pod or '-'}."
    ]
    verdict = "ALLOWED" if decision.decision == "allow" else "DENIED"
    # Consent is mentioned only where it played a part: a rule's Deny is not a missing grant.
    if decision.grant is not None:
        grant = decision.grant
        consent = (
            f" under consent grant {grant.name} (uid {grant.uid or '-'}, resourceVersion "
            f"{grant.resource_version or '-'}, expires {grant.expires_at}"
            + (f", granted by {grant.granted_by}" if grant.granted_by else "")
            + ")"
        )
        if grant.evidence is not None:
            consent += f"; {consented(grant.evidence)}"
    elif decision.reason == "consent_required":
        consent = " with no consent grant"
    elif decision.decision == "allow":
        consent = " without consent (none was required)"
    else:
        consent = ""
    rules = ", ".join(decision.rules) if decision.rules else "no rule"
    why = f"reason {decision.reason}" + (f": {decision.message}" if decision.message else "")
    sentences.append(f"It was {verdict}{consent}, by {rules}; {why}.")
    serial = f", serial {decision.serial}" if decision.serial is not None else ""
    scopes = " ".join(decision.scopes) or "none"
    sentences.append(f"Policy bundle {_short(decision.bundle)}{serial}; scopes: {scopes}.")
    if voided is not None:
        sentences.append(
            f"Outcome: NOT FORWARDED (recover marker on line {voided}): the audit sink did not "
            "confirm this record in time, so the gateway denied the call after all."
        )
    elif outcome is not None:
        status = f", status {outcome.status}" if outcome.status is not None else ""
        error = f" ({outcome.error})" if outcome.error else ""
        sentences.append(
            f"Outcome: {outcome.outcome}{status}{error} after {outcome.latency_ms:g} ms."
        )
    elif decision.decision == "deny":
        sentences.append("The call was not forwarded.")
    else:
        sentences.append(
            "No outcome was recorded (the call may still be running, or the gateway stopped "
            "before recording it)."
        )
    return " ".join(sentences)
