"""AuditChain on real files: append and verify, resume after restart, refusing damaged tails."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import msgspec
import pytest

from remit.audit import (
    GENESIS,
    AuditChain,
    ChainRecord,
    DecisionRecord,
    FileSink,
    OutcomeRecord,
    open_chain,
    parse_line,
    verify_file,
)
from remit.errors import AuditError
from tests.dataplane.audit.helpers import (
    DiskFillingAfter,
    allowed_by_consent,
    clock,
    file_settings,
    write_log,
)


def records(path: Path) -> list[object]:
    return [parse_line(line) for line in path.read_bytes().splitlines() if line.strip()]


async def test_appended_records_verify_and_link(log_path: Path) -> None:
    chain = await write_log(log_path, calls=3)

    lines = records(log_path)
    assert [type(r).__name__ for r in lines] == ["ChainRecord"] + [
        "DecisionRecord",
        "OutcomeRecord",
    ] * 3
    first = lines[0]
    assert isinstance(first, ChainRecord)
    assert (first.start, first.prev) == ("genesis", GENESIS)
    outcome = lines[2]
    assert isinstance(outcome, OutcomeRecord)
    assert isinstance(lines[1], DecisionRecord)
    assert outcome.decision_id == lines[1].id
    result = verify_file(log_path)
    assert result.ok, result.message
    assert (result.records, result.segments, result.head) == (7, 1, chain.head)


async def test_each_line_hashes_canonical_json_without_hash(log_path: Path) -> None:
    await write_log(log_path, calls=1)
    for raw in log_path.read_bytes().splitlines():
        data = msgspec.json.decode(raw)
        claimed = data.pop("hash")
        canonical = msgspec.json.Encoder(order="sorted").encode(data)
        assert hashlib.sha256(canonical).hexdigest() == claimed


async def test_restart_resumes_the_same_chain(log_path: Path) -> None:
    first = await write_log(log_path, calls=2)
    second = await write_log(log_path, calls=2)

    markers = [r for r in records(log_path) if isinstance(r, ChainRecord)]
    assert [m.start for m in markers] == ["genesis", "resume"]
    assert markers[1].prev == first.head
    result = verify_file(log_path)
    assert result.ok, result.message
    assert (result.records, result.segments, result.head) == (10, 1, second.head)


async def test_restart_refuses_a_damaged_tail(log_path: Path) -> None:
    await write_log(log_path, calls=2)
    data = log_path.read_bytes()
    log_path.write_bytes(data.replace(b'"latencyMs":2.5', b'"latencyMs":0.1'))

    with pytest.raises(AuditError, match="refusing to append"):
        await open_chain(file_settings(log_path), server="agents/files", pod="p", clock=clock)
    assert log_path.read_bytes() == data.replace(b'"latencyMs":2.5', b'"latencyMs":0.1')


async def test_restart_refuses_a_torn_last_line(log_path: Path) -> None:
    await write_log(log_path, calls=1)
    log_path.write_bytes(log_path.read_bytes()[:-20])

    with pytest.raises(AuditError, match="incomplete"):
        await open_chain(file_settings(log_path), server="agents/files", pod="p", clock=clock)


async def test_override_starts_a_new_segment_and_keeps_the_damage_visible(
    log_path: Path,
) -> None:
    await write_log(log_path, calls=1)
    log_path.write_bytes(log_path.read_bytes()[:-20])

    await write_log(log_path, calls=1, resume_broken=True)

    markers = [
        parse_line(line)
        for line in log_path.read_bytes().splitlines()
        if line.startswith(b"{") and b'"type":"chain"' in line
    ]
    assert [m.start for m in markers if isinstance(m, ChainRecord)] == ["genesis", "override"]
    result = verify_file(log_path)
    assert not result.ok
    assert result.line == 3
    assert result.reason is not None
    assert "not valid JSON" in result.reason


async def test_concurrent_appends_stay_in_chain_order(log_path: Path) -> None:
    chain = await open_chain(file_settings(log_path), server="s/s", pod="p", clock=clock)
    entries = await asyncio.gather(*(chain.append(allowed_by_consent()) for _ in range(50)))
    await chain.close()

    assert len({e.hash for e in entries}) == 50
    assert verify_file(log_path).ok
    assert [e.prev for e in entries[1:]] == [e.hash for e in entries[:-1]]


async def test_after_a_failed_write_the_chain_continues_as_a_new_segment(
    log_path: Path,
) -> None:
    disk = DiskFillingAfter(limit=None)
    sink = FileSink(log_path, write=disk)
    chain = AuditChain(sink, server="s/s", pod="p", clock=clock)
    await chain.mark("genesis")
    kept = await chain.append(allowed_by_consent())
    disk.limit = disk.written + 100  # the disk fills part-way through the next record
    with pytest.raises(AuditError, match="No space left"):
        await chain.append(allowed_by_consent())
    assert disk.torn == 1
    disk.limit = None
    await chain.append(allowed_by_consent())
    await chain.close()

    markers = [r for r in records(log_path) if isinstance(r, ChainRecord)]
    assert [m.start for m in markers] == ["genesis", "recover"]
    assert (markers[1].after, markers[1].lost) == (kept.hash, 1)
    result = verify_file(log_path)
    assert result.ok, result.message
    assert (result.records, result.segments) == (4, 2)
    assert [(g.lost, g.after, g.torn) for g in result.gaps] == [(1, kept.hash, None)]
