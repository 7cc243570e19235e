"""Decision records written by the running gateway: ``remit audit verify`` and ``explain`` on
them, tampering detected, and a gateway that cannot write records denies (fail closed)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from remit.demo.issuer import Issuer
from tests.dataplane.e2e_gateway.conftest import ALICE, BOT, Mint
from tests.support import mcp_wire, stack
from tests.support.stack import GatewayProcess, Upstream, metric_value


def _remit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [stack.REMIT, "audit", *args], capture_output=True, text=True, timeout=30, check=False
    )


def _snapshot(gateway: GatewayProcess, target: Path) -> Path:
    """The gateway's log up to its last complete line (it may be writing right now)."""
    assert gateway.audit_file is not None
    data = gateway.audit_file.read_bytes()
    target.write_bytes(data[: data.rfind(b"\n") + 1])
    return target


@pytest.fixture(scope="module")
def consent_write(gateway: GatewayProcess, upstream: Upstream, mint: Mint) -> str:
    """Write under alice's consent; the id of its decision record."""
    path = f"/data/alice/{uuid.uuid4().hex}.txt"
    answer = mcp_wire.tool_call(
        gateway.url, "write_file", {"path": path, "content": "x"}, token=mint()
    )
    assert answer.json()["result"]["isError"] is False
    for request in upstream.calls("tools/call"):
        if request["rpc"]["params"]["arguments"].get("path") == path:
            return str(request["headers"]["x-remit-decision"])
    raise AssertionError("the write was not forwarded")


def test_the_gateways_log_verifies(
    gateway: GatewayProcess, consent_write: str, tmp_path: Path
) -> None:
    log = _snapshot(gateway, tmp_path / "audit.jsonl")
    result = _remit("verify", str(log))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout


def test_explain_names_who_on_whose_behalf_by_which_rule_and_grant(
    gateway: GatewayProcess, consent_write: str, tmp_path: Path
) -> None:
    log = _snapshot(gateway, tmp_path / "audit.jsonl")
    result = _remit("explain", str(log), consent_write)
    assert result.returncode == 0, result.stderr
    for fact in (ALICE, BOT, "write-needs-consent", "alice-support-bot-write", "write_file"):
        assert fact in result.stdout, fact


def test_an_edited_line_is_detected_and_named(
    gateway: GatewayProcess, consent_write: str, tmp_path: Path
) -> None:
    log = _snapshot(gateway, tmp_path / "audit.jsonl")
    lines = log.read_text().splitlines(keepends=True)
    number = next(i for i, line in enumerate(lines, 1) if consent_write in line)
    lines[number - 1] = lines[number - 1].replace('"decision":"allow"', '"decision":"deny"', 1)
    log.write_text("".join(lines))
    result = _remit("verify", str(log))
    assert result.returncode == 1
    assert "BROKEN" in result.stdout
    assert f"line {number}" in result.stdout


@pytest.fixture(scope="module")
def unwritable(
    logs: Path, issuer: Issuer, upstream: Upstream
) -> Iterator[tuple[GatewayProcess, str]]:
    """A gateway whose audit file stops accepting writes after its first ~600 bytes."""
    with stack.standalone_gateway(
        logs,
        issuer,
        upstream_url=upstream.url,
        audit_file=logs / "full-audit.jsonl",
        policy_name="full-policy",
        subject=ALICE,
        agent=BOT,
        preexec_fn=stack.file_size_limit(600),
    ) as running:
        yield running


def test_calls_are_denied_when_records_cannot_be_written(
    unwritable: tuple[GatewayProcess, str], upstream: Upstream
) -> None:
    gateway, token = unwritable
    forwarded = upstream.count()
    for _ in range(2):
        answer = mcp_wire.tool_call(
            gateway.url, "read_file", {"path": "/data/alice/notes.txt"}, token=token
        )
        error = answer.json()["error"]
        assert error["code"] == -32603
        assert "could not be recorded" in error["message"]
        assert "result" not in answer.json()
    assert upstream.count() == forwarded
    text = gateway.metrics()
    assert metric_value(text, "remit_audit_failures_total") >= 2
    assert (
        metric_value(text, "remit_decisions_total", effect="deny", reason="audit_unavailable") >= 2
    )


def test_by_default_an_answer_arrives_after_its_decision_is_in_the_file(
    gateway: GatewayProcess, upstream: Upstream, mint: Mint
) -> None:
    """The real gateway in the default durability mode (a file sink, fsync on, each answer
    held for its decision's fsync; no REMIT_AUDIT_FSYNC* override): the answer arrives and
    its decision line is already in the file (the hold for the fsync itself is proven with
    injected syncs in tests/dataplane/gateway/test_durable_answers.py), and so is its outcome
    line (written before any byte of the answer is sent; synced later)."""
    assert not [name for name in os.environ if name.startswith("REMIT_AUDIT_FSYNC")]
    path = f"/data/alice/{uuid.uuid4().hex}.txt"
    answer = mcp_wire.tool_call(gateway.url, "read_file", {"path": path}, token=mint())
    assert "result" in answer.json()
    records = gateway.records()  # read at once: nothing was waited for after the answer
    calls = upstream.calls("tools/call")
    (forwarded,) = [c for c in calls if c["rpc"]["params"]["arguments"].get("path") == path]
    decided = forwarded["headers"]["x-remit-decision"]
    decision = [r for r in records if r.get("id") == decided]
    assert [r["type"] for r in decision] == ["decision"]
    # ... and so is its outcome: written (not synced) before the answer is sent; on disk the
    # field is camelCase ``decisionId`` (``decision_id`` matches nothing, the outcome "missing")
    outcome = [r for r in records if r.get("decisionId") == decided]
    assert [(r["type"], r["outcome"]) for r in outcome] == [("outcome", "ok")]
    assert httpx.get(f"{gateway.admin}/readyz", timeout=5).status_code == 200
