"""Answer "who acted, on whose behalf, under what consent, by which rule" for one record.

:func:`explain` finds a decision line (by its id, or by the id of its outcome line) and its
outcome, and renders them as one paragraph for people plus a JSON object for tools. It checks
each found line's own hash (``intact``); whether the whole file is unbroken is
:func:`remit.audit.verify.verify_file`'s job. When consent played a part, the human's answers
on the consent page (``consent`` records: approved, refused, revoked) for that consent request
are pulled in too, from the same log or from others given (in a cluster the consent service
writes them to its own stdout, not to the gateway's chain).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from remit.audit.lines import parse_line, recompute_hash, unreadable
from remit.audit.reading import SourceLine, record_lines
from remit.audit.records import (
    AuditRecord,
    ChainRecord,
    ConsentRecord,
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
    file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The record as written, plus where it was and whether it is intact."""
        where: dict[str, Any] = {} if self.file is None else {"file": self.file}
        return {
            **where,
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
    answers: tuple[Found, ...] = ()

    @property
    def intact(self) -> bool:
        """Whether every found line hashes to its ``hash``."""
        return (
            self.decision.intact
            and (self.outcome is None or self.outcome.intact)
            and all(answer.intact for answer in self.answers)
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form printed by ``remit audit explain --output json``."""
        return {
            "id": self.decision.record.id,
            "intact": self.intact,
            "summary": self.text,
            "decision": self.decision.to_dict(),
            "outcome": None if self.outcome is None else self.outcome.to_dict(),
            "notForwardedBy": None if self.voided is None else self.voided.to_dict(),
            "consent": [answer.to_dict() for answer in self.answers],
        }


Lines = Callable[[], Iterable[SourceLine]]
MIN_PREFIX = 4


def _scan(lines: Lines, needle: str) -> Iterator[Found]:
    """Yield every record whose line mentions ``needle`` (others are not parsed)."""
    key = needle.encode()
    for item in lines():
        if key not in item.line:
            continue
        try:
            record = parse_line(item.line)
        except ValueError:  # not a record: other output, or damaged
            continue
        yield Found(record, item.number, recompute_hash(record) == record.hash, item.source)


def _unique(found: list[Found], prefix: str, what: str) -> Found | None:
    ids = sorted({f.record.id for f in found})
    if len(ids) > 1:
        shown = ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else "")
        raise AuditError(f"{len(ids)} {what} ids start with {prefix!r}: {shown}; give more of it")
    return found[0] if found else None


def _find(lines: Lines, prefix: str) -> tuple[Found | None, Found | None, Found | None]:
    if len(prefix) < MIN_PREFIX:
        raise AuditError(f"give at least {MIN_PREFIX} characters of the id")
    decisions: list[Found] = []
    outcomes: list[Found] = []
    markers: list[Found] = []
    for found in _scan(lines, prefix):
        record = found.record
        if isinstance(record, ChainRecord):
            markers.append(found)
        elif isinstance(record, DecisionRecord) and record.id.startswith(prefix):
            decisions.append(found)
        elif isinstance(record, OutcomeRecord) and (
            record.decision_id.startswith(prefix) or record.id.startswith(prefix)
        ):
            outcomes.append(found)
    decision = _unique(decisions, prefix, "decision")
    if decision is None:
        outcome = _unique(outcomes, prefix, "outcome")
        if outcome is None:
            return None, None, None
        wanted = outcome.record
        assert isinstance(wanted, OutcomeRecord)
        for found in _scan(lines, wanted.decision_id):
            if isinstance(found.record, DecisionRecord) and found.record.id == wanted.decision_id:
                decision = found
                break
        if decision is None:
            return None, outcome, None
    else:
        outcome = next(
            (o for o in outcomes if o.record.decision_id == decision.record.id),  # type: ignore[union-attr]
            None,
        )
    identifier = decision.record.id
    voided = next(
        (
            m
            for m in markers
            if isinstance(m.record, ChainRecord) and identifier in m.record.not_forwarded
        ),
        None,
    )
    return decision, outcome, voided


def explain(path: Path, record_id: str, *, consent_logs: tuple[Path, ...] = ()) -> Explanation:
    """Explain the decision ``record_id`` (a decision id or its outcome's id) in ``path``.

    The consent page's answers to the decision's consent request are looked up in ``path``
    and in ``consent_logs`` (e.g. the consent service's saved stdout). Raises
    :class:`AuditError` when a file cannot be read or no such decision is in ``path``.
    """
    sources = [str(path), *map(str, consent_logs)]
    return explain_lines(
        lambda: record_lines([str(path)]), record_id, str(path), lambda: record_lines(sources)
    )


def consent_request_of(decision: DecisionRecord) -> str | None:
    """The consent request a decision concerns: the one its grant answered, or its own id
    when it denied for want of consent (the denial's id is the request's id)."""
    if decision.grant is not None and decision.grant.evidence is not None:
        return decision.grant.evidence.request
    if decision.reason == "consent_required":
        return decision.id
    return None


def _answers(lines: Lines, request: str) -> tuple[Found, ...]:
    """Every ``consent`` record answering ``request`` among ``lines``, in order."""
    return tuple(
        each
        for each in _scan(lines, request)
        if isinstance(each.record, ConsentRecord) and each.record.request == request
    )


def explain_lines(
    lines: Lines, record_id: str, where: str = "the records", consent: Lines | None = None
) -> Explanation:
    """Explain the decision whose id (or whose outcome's id) is or starts with ``record_id``
    among ``lines`` (called again when the decision must be looked up after its outcome);
    the consent page's answers for its consent request are looked up in ``consent``
    (default: ``lines``).

    Raises :class:`AuditError` when no such decision is there, or the prefix is ambiguous.
    """
    decision, outcome, voided = _find(lines, record_id)
    if decision is None:
        unread = unreadable(lines(), record_id)  # e.g. a line of a newer gateway
        raise AuditError(f"no decision record with id {record_id!r} in {where}{unread}")
    record = decision.record
    assert isinstance(record, DecisionRecord)
    result = None if outcome is None else outcome.record
    assert result is None or isinstance(result, OutcomeRecord)
    text = render(record, result, None if voided is None else voided.line)
    request = consent_request_of(record)
    answers = () if request is None else _answers(consent or lines, request)
    if answers:
        text += " " + " ".join(answered(each) for each in answers)
    return Explanation(decision, outcome, text, voided, answers)


def answered(found: Found) -> str:
    """One sentence about a consent page answer and where it was recorded."""
    answer = found.record
    assert isinstance(answer, ConsentRecord)
    where = f"line {found.line}" + (f" of {found.file}" if found.file is not None else "")
    what = {"approved": "approved", "refused": "refused", "revoked": "revoked"}.get(
        answer.answer, f"answered {answer.answer!r} to"
    )
    terms = []
    if answer.scope:
        terms.append(f"scope {_SCOPES.get(answer.scope, answer.scope)}")
    if answer.grant:
        terms.append(f"grant {answer.grant}")
    if answer.expires_at:
        terms.append(f"until {answer.expires_at}")
    detail = f" ({'; '.join(terms)})" if terms else ""
    tampered = "" if found.intact else " [this line's hash does not match its content]"
    return (
        f"Consent record {answer.id} ({where}): {answer.login_subject} (logged in at "
        f"{answer.login_issuer}) {what} consent request {answer.request} for {answer.agent} "
        f"to call {answer.tool} at {answer.time}{detail}.{tampered}"
    )


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
        keyed = "hmac" if decision.arguments.key else "sha256"
        details.append(f"arguments {keyed} {_short(decision.arguments.digest)}")
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
        consent = " with no consent grant in force"  # none, or ended: the reason says which
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
