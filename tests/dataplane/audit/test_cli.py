"""``remit audit verify`` and ``remit audit explain`` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from remit.audit import DecisionRecord, build_outcome, open_chain
from remit.cli.audit import audit_app
from tests.dataplane.audit.helpers import allowed_by_consent, clock, denied, file_settings

runner = CliRunner()


async def write(path: Path) -> tuple[str, str]:
    chain = await open_chain(
        file_settings(path), server="agents/files", pod="files-7d9f", clock=clock
    )
    allowed = (await chain.append(allowed_by_consent())).record
    assert isinstance(allowed, DecisionRecord)
    await chain.append(
        build_outcome(allowed, outcome="ok", latency_ms=3.0, status=200, clock=clock)
    )
    refused = (await chain.append(denied())).record
    await chain.close()
    return allowed.id, refused.id


async def test_verify_intact_log(log_path: Path) -> None:
    await write(log_path)
    result = runner.invoke(audit_app, ["verify", str(log_path)])
    assert result.exit_code == 0, result.output
    assert "OK intact: 4 records in 1 segment(s)" in result.output


async def test_verify_reports_the_first_bad_line(log_path: Path) -> None:
    await write(log_path)
    log_path.write_bytes(
        log_path.read_bytes().replace(b'"reason":"consent_required"', b'"reason":"allowed"')
    )

    result = runner.invoke(audit_app, ["verify", str(log_path)])
    assert result.exit_code == 1
    assert "BROKEN line 4: hash mismatch (record edited)" in result.output

    as_json = runner.invoke(audit_app, ["verify", str(log_path), "--output", "json"])
    assert as_json.exit_code == 1
    report = json.loads(as_json.output)
    assert (report["ok"], report["line"], report["records"]) == (False, 4, 3)


async def test_verify_reads_sidecar_logs_from_stdin(log_path: Path) -> None:
    await write(log_path)
    piped = b"starting remit-gateway\n" + log_path.read_bytes() + b"shutting down\n"

    strict = runner.invoke(audit_app, ["verify", "-"], input=piped)
    assert strict.exit_code == 1
    assert "line 1: not valid JSON" in strict.output

    lenient = runner.invoke(
        audit_app, ["verify", "-", "--skip-non-records", "-o", "json"], input=piped
    )
    assert lenient.exit_code == 0, lenient.output
    assert json.loads(lenient.output)["skipped"] == 2


async def test_verify_unreadable_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(audit_app, ["verify", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 2
    assert "cannot read audit file" in result.output
    assert "Traceback" not in result.output


async def test_explain_allowed_and_denied(log_path: Path) -> None:
    allowed_id, refused_id = await write(log_path)

    allowed = runner.invoke(audit_app, ["explain", str(log_path), allowed_id])
    assert allowed.exit_code == 0, allowed.output
    assert "ALLOWED under consent grant alice-support-bot-write" in allowed.output
    assert "Outcome: ok, status 200 after 3 ms." in allowed.output

    refused = runner.invoke(audit_app, ["explain", str(log_path), refused_id, "--output", "json"])
    assert refused.exit_code == 0, refused.output
    data = json.loads(refused.output)
    assert data["decision"]["record"]["decision"] == "deny"
    assert data["outcome"] is None
    assert "DENIED with no consent grant" in data["summary"]


async def test_explain_unknown_id_exits_1(log_path: Path) -> None:
    await write(log_path)
    result = runner.invoke(audit_app, ["explain", str(log_path), "0123"])
    assert result.exit_code == 1
    assert "no decision record with id '0123'" in result.output


def test_explain_unreadable_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(audit_app, ["explain", str(tmp_path / "missing"), "0123"])
    assert result.exit_code == 2
