"""``remit audit query``, ``tail`` and ``explain -`` with id prefixes, over real logs."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from remit.audit import DecisionRecord, build_outcome, open_chain
from remit.cli.audit import audit_app
from tests.dataplane.audit.helpers import allowed_by_consent, clock, denied, file_settings

runner = CliRunner()


async def _log(path: Path) -> tuple[str, str]:
    chain = await open_chain(file_settings(path), server="agents/files", pod="p", clock=clock)
    allowed = (await chain.append(allowed_by_consent())).record
    assert isinstance(allowed, DecisionRecord)
    await chain.append(build_outcome(allowed, outcome="ok", latency_ms=2.0, clock=clock))
    refused = (await chain.append(denied())).record
    await chain.close()
    return allowed.id, refused.id


async def test_query_filters_by_decision_tool_and_time(log_path: Path) -> None:
    allowed, refused = await _log(log_path)
    denials = runner.invoke(audit_app, ["query", str(log_path), "--decision", "deny", "--json"])
    assert denials.exit_code == 0, denials.output
    assert [json.loads(line)["id"] for line in denials.output.splitlines()] == [refused]

    writes = runner.invoke(
        audit_app,
        ["query", str(log_path), "--tool", "write_*", "--agent", "support-bot", "--outcomes"],
    )
    assert writes.exit_code == 0, writes.output
    assert allowed in writes.output
    assert "outcome ok" in writes.output
    assert refused not in writes.output

    later = runner.invoke(audit_app, ["query", str(log_path), "--since", "2026-03-02T00:00:00Z"])
    assert later.exit_code == 1
    bad = runner.invoke(audit_app, ["query", str(log_path), "--since", "yesterday"])
    assert bad.exit_code == 2
    assert "not a time or duration" in bad.output


async def test_query_reads_kubectl_logs_output_on_stdin(log_path: Path) -> None:
    _, refused = await _log(log_path)
    text = "".join(
        f"[pod/files-1/remit-gateway] 2026-03-01T12:00:00.5Z {line}\n"
        for line in log_path.read_text().splitlines()
    )
    result = runner.invoke(
        audit_app, ["query", "-", "--reason", "consent_required", "--json"], input=text + "x\n"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["id"] == refused


async def test_tail_prints_the_last_matching_records(log_path: Path) -> None:
    allowed, refused = await _log(log_path)
    result = runner.invoke(audit_app, ["tail", str(log_path), "-n", "1"])
    assert result.exit_code == 0, result.output
    assert refused in result.output
    assert allowed not in result.output


async def test_explain_from_stdin_by_a_unique_prefix(log_path: Path) -> None:
    allowed, refused = await _log(log_path)
    prefix = next(allowed[:n] for n in range(8, 33) if not refused.startswith(allowed[:n]))
    result = runner.invoke(audit_app, ["explain", "-", prefix], input=log_path.read_text())
    assert result.exit_code == 0, result.output
    assert "write_file" in result.output
    assert "alice@example.com" in result.output
    # Ids start with their millisecond: records written together share a prefix.
    shared = ""
    for mine, theirs in zip(allowed, refused, strict=True):
        if mine != theirs:
            break
        shared += mine
    assert len(shared) >= 4
    ambiguous = runner.invoke(audit_app, ["explain", str(log_path), shared])
    assert ambiguous.exit_code == 1
    assert "2 decision ids start with" in " ".join(ambiguous.output.split())
