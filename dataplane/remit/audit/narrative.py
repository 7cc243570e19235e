"""Turning a decision, its outcome and the consent answers into sentences for people.

An auditor reads ``remit audit explain`` as one paragraph: who acted, on whose behalf, under
what consent, by which rule, and what came of it. These functions only render records that
``lookup.py`` found; they read no files and make no judgement beyond what the records say
(consent is named only where it played a part: a rule's Deny is not a missing grant).
"""

from __future__ import annotations

from remit.audit.lookup import Found
from remit.audit.records import (
    ConsentRecord,
    DecisionRecord,
    OutcomeRecord,
    RecordedEvidence,
)


def answered(found: Found) -> str:
    """One sentence about a consent page answer and where it was recorded."""
    answer = found.record
    assert isinstance(answer, ConsentRecord)
    where = f"line {found.line}" + (f" of {found.file}" if found.file is not None else "")
    what = _ANSWERS.get(answer.answer, f"answered {answer.answer!r} to")
    terms = []
    if answer.scope:
        terms.append(f"scope {_SCOPES.get(answer.scope, answer.scope)}")
    if answer.grant:
        terms.append(f"grant {answer.grant}")
    if answer.expires_at:
        terms.append(f"until {answer.expires_at}")
    if answer.cancels:
        terms.append(f"cancelling approval record {answer.cancels}")
    detail = f" ({'; '.join(terms)})" if terms else ""
    tampered = "" if found.intact else " [this line's hash does not match its content]"
    return (
        f"Consent record {answer.id} ({where}): {answer.login_subject} (logged in at "
        f"{answer.login_issuer}) {what} consent request {answer.request} for {answer.agent} "
        f"to call {answer.tool} at {answer.time}{detail}.{tampered}"
    )


_ANSWERS = {
    "approved": "approved",
    "refused": "refused",
    "revoked": "revoked",
    # consent/approval.py: recorded after an ``approved`` that made no grant (``cancels``)
    "failed": "approved, but no grant was written for,",
    "duplicate": "approved, but its grant existed already (this approval wrote none) for,",
}


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
        if outcome.outcome == "shutdown":  # remit.gateway.drain.SHUTDOWN
            sentences.append(
                "The gateway was stopping and cut the call off at the end of its shutdown "
                "grace; the client was told, the upstream's answer was not read."
            )
    elif decision.decision == "deny":
        sentences.append("The call was not forwarded.")
    else:
        sentences.append(
            "No outcome was recorded (the call may still be running, or the gateway stopped "
            "before recording it)."
        )
    return " ".join(sentences)


__all__ = ["answered", "consented", "render"]
