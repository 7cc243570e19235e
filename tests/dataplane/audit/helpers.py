"""Builders for audit tests: real records, real files, a fixed clock."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from remit.audit import (
    AuditChain,
    AuditSettings,
    DecisionRecord,
    RecordedGrant,
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

GRANT = RecordedGrant(
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


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` (in a thread) until it holds; the writer thread runs meanwhile."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


class DiskFillingAfter:
    """``os.write`` on a disk with ``limit`` bytes of room: a write past it is cut short, the
    next fails with ENOSPC, as the kernel does on a full filesystem."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.written = 0
        self.torn = 0

    def __call__(self, fd: int, data: bytes) -> int:
        if self.limit is None:
            return os.write(fd, data)
        room = self.limit - self.written
        if room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = os.write(fd, bytes(data[:room]))
        self.written += written
        self.torn += written < len(data)
        return written


class HeldSync:
    """An fsync the test releases: records, for each completed sync, the file's size when it
    began (what it made durable); ``fail`` makes the next one raise ``EIO``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entered = threading.Semaphore(0)  # released each time a sync starts
        self.release = threading.Semaphore(0)  # one sync may finish per release
        self.sizes: list[int] = []
        self.fail = False

    def __call__(self, fd: int) -> None:
        size = self.path.stat().st_size
        self.entered.release()
        assert self.release.acquire(timeout=10), "the test never released the sync"
        if self.fail:
            raise OSError(errno.EIO, "Input/output error")
        os.fsync(fd)
        self.sizes.append(size)

    async def started(self) -> None:
        """Until a sync has begun (in the sync thread)."""
        assert await asyncio.to_thread(self.entered.acquire, True, 10)
