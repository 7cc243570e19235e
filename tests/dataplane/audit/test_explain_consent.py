"""explain() pulls in the consent page's answers to the decision's consent request: from the
same log (standalone) and from the consent service's own log (a cluster)."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
from typer.testing import CliRunner

from remit.audit import ConsentRecord, DecisionRecord, explain, open_chain
from remit.audit.records import CONSENT_ANSWERS, RecordedEvidence, format_time, new_record_id
from remit.cli.audit import audit_app
from tests.dataplane.audit.helpers import GRANT, NOW, allowed_by_consent, clock, file_settings

REQUEST = "01" + "a" * 30
OTHER = "01" + "b" * 30
IDP = "https://idp.example.com/realms/acme"


def answer(request: str, what: str, **extra: str) -> ConsentRecord:
    return ConsentRecord(
        id=new_record_id(),
        time=format_time(NOW),
        server="agents/files",
        pod="",
        request=request,
        answer=what,
        subject="alice@example.com",
        agent="support-bot",
        tool="write_file",
        login_issuer=IDP,
        login_subject="alice@example.com",
        **extra,
    )


def granted() -> DecisionRecord:
    """An allowed decision whose grant came from the consent page answering REQUEST."""
    evidence = RecordedEvidence(
        method="ConsentPage",
        issuer=IDP,
        subject="alice@example.com",
        consented_at=format_time(NOW),
        request=REQUEST,
        scope="call",
    )
    grant = msgspec.structs.replace(GRANT, granted_by="alice@example.com", evidence=evidence)
    return msgspec.structs.replace(allowed_by_consent(), grant=grant)


async def log(path: Path, *records: DecisionRecord | ConsentRecord) -> list[str]:
    chain = await open_chain(file_settings(path), server="agents/files", pod="p", clock=clock)
    ids = [(await chain.append(record)).record.id for record in records]
    await chain.close()
    return ids


async def test_allowed_decision_names_the_approval_in_the_same_log(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    approved = answer(REQUEST, "approved", scope="call", grant="agents/consent-x")
    unrelated = answer(OTHER, "refused")
    approval_id, _, decision_id = await log(path, approved, unrelated, granted())

    result = explain(path, decision_id)

    assert [found.record.id for found in result.answers] == [approval_id]
    assert result.intact
    assert (
        f"Consent record {approval_id} (line 2 of {path}): alice@example.com (logged in at "
        f"{IDP}) approved consent request {REQUEST} for support-bot to call write_file"
    ) in result.text
    assert "grant agents/consent-x" in result.text
    assert OTHER not in result.text
    assert result.to_dict()["consent"][0]["record"]["answer"] == "approved"


async def test_answers_come_from_the_consent_service_log_too(tmp_path: Path) -> None:
    gateway, service = tmp_path / "gateway.jsonl", tmp_path / "consent.jsonl"
    (decision_id,) = await log(gateway, granted())
    refused, approved = answer(REQUEST, "refused"), answer(REQUEST, "approved", scope="tool")
    await log(service, refused, approved)

    alone = explain(gateway, decision_id)
    both = explain(gateway, decision_id, consent_logs=(service,))

    assert alone.answers == ()
    assert [found.record.id for found in both.answers] == [refused.id, approved.id]
    assert all(found.file == str(service) for found in both.answers)
    assert f"refused consent request {REQUEST}" in both.text
    assert "scope the tool within the rule's condition" in both.text


async def test_a_consent_required_denial_finds_the_refusal_of_its_own_request(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    needs = msgspec.structs.replace(
        allowed_by_consent(), decision="deny", reason="consent_required", grant=None
    )
    (decision_id,) = await log(path, needs)
    (refusal_id,) = await log(path, answer(decision_id, "refused"))

    result = explain(path, decision_id)

    assert [found.record.id for found in result.answers] == [refusal_id]
    assert "with no consent grant" in result.text
    assert f"refused consent request {decision_id}" in result.text


async def test_an_edited_answer_marks_the_explanation_not_intact(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    await log(path, answer(REQUEST, "approved"))
    (decision_id,) = await log(path, granted())
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace('"approved"', '"refused"')
    path.write_text("".join(lines))

    result = explain(path, decision_id)

    assert not result.intact
    assert "does not match its content" in result.text


async def test_cli_reads_the_consent_service_log(tmp_path: Path) -> None:
    gateway, service = tmp_path / "gateway.jsonl", tmp_path / "consent.jsonl"
    (decision_id,) = await log(gateway, granted())
    (approval_id,) = await log(service, answer(REQUEST, "approved", scope="call"))
    args = ["explain", str(gateway), decision_id, "--consent-log", str(service)]

    text = CliRunner().invoke(audit_app, args)
    as_json = CliRunner().invoke(audit_app, [*args, "--output", "json"])
    missing = CliRunner().invoke(
        audit_app, ["explain", str(gateway), decision_id, "--consent-log", str(tmp_path / "no")]
    )

    assert text.exit_code == 0, text.output
    assert f"Consent record {approval_id}" in text.output.replace("\n", " ")
    assert json.loads(as_json.output)["consent"][0]["file"] == str(service)
    assert missing.exit_code == 2


async def test_an_approval_that_made_no_grant_is_named_by_the_record_cancelling_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    terms = {"scope": "tool", "grant": "agents/consent-x", "expires_at": "2026-12-02T12:00:00Z"}
    first, second = answer(REQUEST, "approved", **terms), answer(REQUEST, "approved", **terms)
    failed = answer(REQUEST, "failed", cancels=first.id, **terms)
    duplicate = answer(REQUEST, "duplicate", cancels=second.id, **terms)
    await log(path, first, failed, second, duplicate)
    (decision_id,) = await log(path, granted())

    text = explain(path, decision_id).text

    assert (
        f"Consent record {failed.id} (line 3 of {path}): alice@example.com (logged in at {IDP}) "
        f"approved, but no grant was written for, consent request {REQUEST} for support-bot to "
        f"call write_file at {format_time(NOW)} (scope the tool within the rule's "
        "condition; grant agents/consent-x; until 2026-12-02T12:00:00Z; cancelling approval "
        f"record {first.id})."
    ) in text
    assert (
        f"approved, but its grant existed already (this approval wrote none) for, consent "
        f"request {REQUEST}"
    ) in text
    assert f"cancelling approval record {second.id})." in text


async def test_every_answer_the_page_writes_reads_as_a_sentence(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    await log(path, *(answer(REQUEST, what) for what in CONSENT_ANSWERS))
    (decision_id,) = await log(path, granted())

    result = explain(path, decision_id)

    assert [found.record.answer for found in result.answers] == list(CONSENT_ANSWERS)  # type: ignore[union-attr]
    assert "answered '" not in result.text  # the fallback for an answer it does not know
