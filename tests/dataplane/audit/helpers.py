"""Builders for audit tests: real records, real files, a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from remit.audit import (
    AuditChain,
    AuditSettings,
    DecisionRecord,
    GrantRef,
    build_decision,
    build_outcome,
    open_chain,
)
from remit.policy.request import Identity, Request

NOW = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)

ALICE = Identity(
    subject="alice@example.com",
    agent="support-bot",
    issuer="https://idp.example.com/realms/acme",
    scopes=("mcp:tools",),
    chain=("orchestrator",),
)

GRANT = GrantRef(
    name="alice-support-bot-write",
    uid="6f1c2a",
    resource_version="4242",
    expires_at="2026-12-31T00:00:00Z",
)


def clock() -> datetime:
    return NOW


def allowed_by_consent(path: str = "/data/alice/notes.txt") -> DecisionRecord:
    request = Request(
        identity=ALICE,
        method="tools/call",
        name="write_file",
        arguments={"path": path, "content": "hi"},
        now=NOW,
    )
    return build_decision(
        request,
        server="agents/files",
        pod="files-7d9f",
        decision="allow",
        reason="allowed_by_consent",
        message="rule write-needs-consent allowed with consent",
        rules=("agents/support-bot/write-needs-consent",),
        grant=GRANT,
        bundle="sha256:" + "b" * 64,
        serial=7,
        tool_hash="c" * 64,
        session_id="session-1",
    )


def denied() -> DecisionRecord:
    request = Request(
        identity=ALICE,
        method="tools/call",
        name="delete_file",
        arguments={"path": "/data/alice/notes.txt"},
        now=NOW,
    )
    return build_decision(
        request,
        server="agents/files",
        pod="files-7d9f",
        decision="deny",
        reason="consent_required",
        message="no active ConsentGrant for delete_file",
        rules=("agents/support-bot/write-needs-consent",),
        bundle="sha256:" + "b" * 64,
        serial=7,
    )


def file_settings(path: Path, **overrides: object) -> AuditSettings:
    return AuditSettings(sink="file", path=path, **overrides)  # type: ignore[arg-type]


async def write_log(path: Path, calls: int = 3, **overrides: object) -> AuditChain:
    """Open a chain on ``path`` and write ``calls`` decision+outcome pairs; return it closed."""
    chain = await open_chain(
        file_settings(path, **overrides), server="agents/files", pod="files-7d9f", clock=clock
    )
    for i in range(calls):
        decision = await chain.append(allowed_by_consent(f"/data/alice/{i}.txt"))
        assert isinstance(decision.record, DecisionRecord)
        await chain.append(
            build_outcome(
                decision.record, outcome="ok", latency_ms=1.5 + i, status=200, clock=clock
            )
        )
    await chain.close()
    return chain
