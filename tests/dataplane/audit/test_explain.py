"""explain(): who acted, for whom, under which consent, by which rule, with what outcome."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from remit.audit import DecisionRecord, build_outcome, explain, open_chain
from remit.audit.narrative import render
from remit.errors import AuditError
from tests.dataplane.audit.helpers import allowed_by_consent, clock, denied, file_settings


async def write(path: Path) -> tuple[str, str, str]:
    """Log an allowed call with its outcome, then a denied one; return the three ids."""
    chain = await open_chain(
        file_settings(path), server="agents/files", pod="files-7d9f", clock=clock
    )
    allowed = (await chain.append(allowed_by_consent())).record
    assert isinstance(allowed, DecisionRecord)
    outcome = (
        await chain.append(
            build_outcome(allowed, outcome="ok", latency_ms=12.5, status=200, clock=clock)
        )
    ).record
    refused = (await chain.append(denied())).record
    await chain.close()
    return allowed.id, outcome.id, refused.id


async def test_allowed_by_consent(log_path: Path) -> None:
    allowed_id, _, _ = await write(log_path)

    result = explain(log_path, allowed_id)

    assert result.intact
    assert result.decision.line == 2
    assert result.outcome is not None
    assert result.outcome.line == 3
    assert (
        result.text
        == (
            "At 2026-03-01T12:00:00.123Z, Agent support-bot (delegated through orchestrator) acted "
            "on behalf of alice@example.com (issuer https://idp.example.com/realms/acme) and asked "
            f"for tools/call write_file (tool definition {'c' * 12}; arguments sha256 "
            f"{result.decision.record.arguments.digest[:12]}; session "  # type: ignore[union-attr]
            f"{result.decision.record.session[:12]}) on server agents/files in pod files-7d9f. "  # type: ignore[union-attr,index]
            "It was ALLOWED under consent grant alice-support-bot-write (uid 6f1c2a, "
            "resourceVersion 4242, expires 2026-12-31T00:00:00Z), by "
            "agents/support-bot/write-needs-consent; reason allowed_by_consent: rule "
            "write-needs-consent allowed with consent. Policy bundle sha256:bbbbb, serial 7; "
            "scopes: mcp:tools. Outcome: ok, status 200 after 12.5 ms."
        )
    )
    data = result.to_dict()
    assert data["id"] == allowed_id
    assert data["decision"]["record"]["grant"]["resourceVersion"] == "4242"
    assert data["outcome"]["record"]["latencyMs"] == 12.5


async def test_outcome_id_finds_its_decision(log_path: Path) -> None:
    allowed_id, outcome_id, _ = await write(log_path)
    assert explain(log_path, outcome_id).decision.record.id == allowed_id


async def test_denied_without_consent(log_path: Path) -> None:
    _, _, refused_id = await write(log_path)

    result = explain(log_path, refused_id)

    assert result.outcome is None
    assert (
        "It was DENIED with no consent grant in force, by agents/support-bot/write-needs-consent; "
        in result.text
    )
    assert "reason consent_required: no active ConsentGrant for delete_file." in result.text
    assert result.text.endswith("The call was not forwarded.")


async def test_edited_record_is_flagged(log_path: Path) -> None:
    allowed_id, _, _ = await write(log_path)
    log_path.write_bytes(
        log_path.read_bytes().replace(
            b'"subject":"alice@example.com"', b'"subject":"bob@example.com"', 1
        )
    )
    result = explain(log_path, allowed_id)
    assert not result.intact
    assert "on behalf of bob@example.com" in result.text


async def test_unknown_id_raises(log_path: Path) -> None:
    await write(log_path)
    with pytest.raises(AuditError, match="no decision record with id 'nope'"):
        explain(log_path, "nope")


def test_rule_denial_does_not_mention_consent() -> None:
    record = msgspec.structs.replace(
        denied(),
        reason="denied_by_rule",
        message="denied by rule agents/guardrails/never-destructive",
        rules=("agents/guardrails/never-destructive",),
    )

    text = render(record, None)

    assert "It was DENIED, by agents/guardrails/never-destructive; reason denied_by_rule" in text
    assert "consent" not in text.split("; reason")[0]
