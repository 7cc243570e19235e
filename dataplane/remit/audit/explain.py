"""Answer "who acted, on whose behalf, under what consent, by which rule" for one record.

:func:`explain` finds a decision line (by its id, or by the id of its outcome line) and its
outcome, and renders them as one paragraph for people plus a JSON object for tools. It checks
each found line's own hash (``intact``); whether the whole file is unbroken is
:func:`remit.audit.verify.verify_file`'s job. When consent played a part, the human's answers
on the consent page (``consent`` records, ``records.CONSENT_ANSWERS``: approved, refused,
revoked, and failed or duplicate naming the approval they cancel) for that consent request are
pulled in too, from the same log or from others given (in a cluster the consent service
writes them to its own stdout, not to the gateway's chain).

Finding the lines is ``lookup.py``; the paragraph is ``narrative.py``; this module joins them
into the ``Explanation`` the CLI prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from remit.audit.lines import unreadable
from remit.audit.lookup import Found, Lines, answers, find
from remit.audit.narrative import answered, render
from remit.audit.reading import record_lines
from remit.audit.records import DecisionRecord, OutcomeRecord
from remit.errors import AuditError


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


def explain_lines(
    lines: Lines, record_id: str, where: str = "the records", consent: Lines | None = None
) -> Explanation:
    """Explain the decision whose id (or whose outcome's id) is or starts with ``record_id``
    among ``lines`` (called again when the decision must be looked up after its outcome);
    the consent page's answers for its consent request are looked up in ``consent``
    (default: ``lines``).

    Raises :class:`AuditError` when no such decision is there, or the prefix is ambiguous.
    """
    decision, outcome, voided = find(lines, record_id)
    if decision is None:
        unread = unreadable(lines(), record_id)  # e.g. a line of a newer gateway
        raise AuditError(f"no decision record with id {record_id!r} in {where}{unread}")
    record = decision.record
    assert isinstance(record, DecisionRecord)
    result = None if outcome is None else outcome.record
    assert result is None or isinstance(result, OutcomeRecord)
    text = render(record, result, None if voided is None else voided.line)
    request = consent_request_of(record)
    found = () if request is None else answers(consent or lines, request)
    if found:
        text += " " + " ".join(answered(each) for each in found)
    return Explanation(decision, outcome, text, voided, found)


__all__ = ["Explanation", "consent_request_of", "explain", "explain_lines"]
