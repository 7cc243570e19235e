"""Recovery after lost records: a full filesystem, a torn line, a stalled stdout. The log that
results verifies, and ``remit audit verify`` names each gap."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from remit.audit import (
    AuditChain,
    ChainRecord,
    FileSink,
    StdoutSink,
    open_chain,
    parse_line,
    verify_file,
    verify_lines,
)
from remit.cli.audit import audit_app
from remit.errors import AuditError
from tests.dataplane.audit.helpers import (
    DiskFillingAfter,
    allowed_by_consent,
    clock,
    file_settings,
    wait_until,
)
from tests.support import stack


class TruncateFails(FileSink):
    """A file sink whose clean-up after a failed write fails too (the torn line stays)."""

    def _undo(self) -> None:
        return


def markers(path: Path) -> list[ChainRecord]:
    found = []
    for line in path.read_bytes().splitlines():
        if b'"type":"chain"' in line:
            record = parse_line(line)
            assert isinstance(record, ChainRecord)
            found.append(record)
    return found


async def test_a_torn_line_before_a_recover_marker_verifies_as_a_gap(log_path: Path) -> None:
    disk = DiskFillingAfter(limit=None)
    chain = AuditChain(TruncateFails(log_path, write=disk), server="s/s", pod="p", clock=clock)
    await chain.mark("genesis")
    kept = await chain.append(allowed_by_consent())
    disk.limit = disk.written + 50
    with pytest.raises(AuditError):
        await chain.append(allowed_by_consent())
    disk.limit = None
    await chain.append(allowed_by_consent())
    await chain.close()

    lines = log_path.read_bytes().split(b"\n")
    assert len(lines[2]) == 50  # the torn line is still there
    result = verify_file(log_path)
    assert result.ok, result.message
    assert [(g.line, g.lost, g.after, g.torn) for g in result.gaps] == [(4, 1, kept.hash, 3)]


async def test_a_torn_line_not_excused_by_a_recover_marker_fails(log_path: Path) -> None:
    chain = await open_chain(file_settings(log_path), server="s/s", pod="p", clock=clock)
    await chain.append(allowed_by_consent())
    await chain.close()
    data = log_path.read_bytes()
    log_path.write_bytes(data + b'{"type":"decis\n' + data.split(b"\n")[1] + b"\n")

    result = verify_file(log_path)
    assert not result.ok
    assert (result.line, result.reason) == (3, "not valid JSON (a truncated or corrupted line)")


async def test_a_recover_marker_cannot_hide_more_than_it_declares(log_path: Path) -> None:
    disk = DiskFillingAfter(limit=None)
    chain = AuditChain(FileSink(log_path, write=disk), server="s/s", pod="p", clock=clock)
    await chain.mark("genesis")
    for _ in range(3):
        await chain.append(allowed_by_consent())
    disk.limit = disk.written
    with pytest.raises(AuditError):
        await chain.append(allowed_by_consent())
    disk.limit = None
    await chain.append(allowed_by_consent())
    await chain.close()
    assert verify_file(log_path).ok

    lines = log_path.read_bytes().splitlines(keepends=True)
    del lines[3]  # a record the marker does not declare goes missing
    log_path.write_bytes(b"".join(lines))
    result = verify_file(log_path)
    assert not result.ok
    assert result.reason is not None
    assert "missing beyond the ones it declares" in result.reason


async def test_a_failing_sink_recovers_through_its_health_check(log_path: Path) -> None:
    disk = DiskFillingAfter(limit=None)
    chain = AuditChain(FileSink(log_path, write=disk), server="s/s", pod="p", clock=clock)
    await chain.mark("genesis")
    disk.limit = disk.written
    with pytest.raises(AuditError):
        await chain.append(allowed_by_consent())
    assert chain.health().state == "failing"  # queues a recover marker: the disk is still full
    await asyncio.to_thread(wait_until, lambda: chain.sink.health().queued == 0)
    disk.limit = None
    chain.health()  # no call arrives (an unready pod gets none): the probe writes the marker
    await asyncio.to_thread(wait_until, lambda: chain.sink.health().ok)
    await chain.close()

    assert [m.start for m in markers(log_path)] == ["genesis", "recover"]
    assert markers(log_path)[1].lost == 1
    assert verify_file(log_path).ok


async def test_a_stalled_stdout_recovers_with_the_refused_records_declared() -> None:
    read_end, write_end = os.pipe()
    chain = AuditChain(StdoutSink(write_end, timeout=0.1), server="s/s", pod="p", clock=clock)
    await chain.mark("genesis")
    errors: list[str] = []
    late = None
    while len(errors) < 5:  # fill the pipe until the writer blocks, then a few more
        record = allowed_by_consent()
        try:
            await chain.append(record)
        except AuditError as exc:
            errors.append(str(exc))
            late = late or record.id
    assert chain.health().state == "stalled"
    # The first caller timed out while its line was being written; the rest were refused.
    assert "has not completed within 0.1s" in errors[0]
    assert all("stalled" in error for error in errors)

    received = bytearray()

    def drain() -> None:
        os.set_blocking(read_end, False)
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(read_end, 1 << 16):
                received.extend(chunk)

    await asyncio.to_thread(wait_until, lambda: (drain(), chain.health().ok)[1])
    await chain.append(allowed_by_consent())
    await chain.close()
    drain()
    os.close(read_end)
    os.close(write_end)

    result = verify_lines(bytes(received).splitlines())
    assert result.ok, result.message
    assert [gap.lost for gap in result.gaps] == [len(errors) - 1]
    assert late is not None
    assert late.encode() in received  # written once the reader came back (its call was denied)


@pytest.fixture
def tiny_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB tmpfs (needs root to mount; skipped otherwise)."""
    with stack.tiny_filesystem(tmp_path / "fs") as mount:
        yield mount


async def test_a_real_full_filesystem_leaves_a_log_that_verifies_with_the_gap(
    tiny_filesystem: Path,
) -> None:
    log = tiny_filesystem / "decisions.jsonl"
    filler = tiny_filesystem / "filler"
    filler.write_bytes(b"\0" * 40 * 1024)
    chain = await open_chain(file_settings(log), server="s/s", pod="p", clock=clock)
    written = 0
    errors: list[str] = []
    while len(errors) < 3:
        try:
            await chain.append(allowed_by_consent())
            written += 1
        except AuditError as exc:
            errors.append(str(exc))
    failed = len(errors)
    assert all("No space left on device" in error for error in errors)
    assert log.read_bytes().endswith(b"\n")  # truncated back to the last whole line
    filler.unlink()  # room again
    await chain.append(allowed_by_consent())
    await chain.close()

    result = verify_file(log)
    assert result.ok, result.message
    assert written > 10
    assert [g.lost for g in result.gaps] == [failed]
    printed = CliRunner().invoke(audit_app, ["verify", str(log)])
    assert printed.exit_code == 0, printed.output
    text = " ".join(printed.output.split())  # undo the console's wrapping
    assert f"1 gap(s) where {failed} record(s) could not be written" in text
    marker_line = 1 + written + 2  # genesis, the records, the newline before the marker
    assert f"gap line {marker_line}: {failed} record(s) not written" in text
    assert "No space left on device" in text


async def test_an_allow_written_after_a_stall_is_named_not_forwarded_by_the_marker(
    tmp_path: Path,
) -> None:
    """The stall fails the caller while the line is still being written: the line lands, the
    gateway denies the call, and the recover marker (with no record lost) is its outcome."""
    read_end, write_end = os.pipe()
    chain = AuditChain(StdoutSink(write_end, timeout=0.1), server="s/s", pod="p", clock=clock)
    await chain.mark("genesis")
    unconfirmed = None
    while unconfirmed is None:  # fill the pipe until one write blocks past the timeout
        record = allowed_by_consent()
        try:
            await chain.append(record)
        except AuditError:
            unconfirmed = record.id
    chain.not_forwarded(unconfirmed)  # what the gateway does when it fails closed
    received = bytearray()

    def drain() -> None:
        os.set_blocking(read_end, False)
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(read_end, 1 << 16):
                received.extend(chunk)

    await asyncio.to_thread(wait_until, lambda: (drain(), chain.health().ok)[1])
    await chain.append(allowed_by_consent())
    await chain.close()
    drain()
    os.close(read_end)
    os.close(write_end)

    assert unconfirmed.encode() in received  # the allow record did reach the log
    result = verify_lines(bytes(received).splitlines())
    assert result.ok, result.message
    assert [(gap.lost, gap.not_forwarded) for gap in result.gaps] == [(0, (unconfirmed,))]
    assert "1 allowed call(s) not forwarded" in result.message
    log = tmp_path / "log.jsonl"
    log.write_bytes(bytes(received))
    explained = CliRunner().invoke(audit_app, ["explain", str(log), unconfirmed])
    assert explained.exit_code == 0, explained.output
    text = " ".join(explained.output.split())
    assert "It was ALLOWED" in text
    assert "Outcome: NOT FORWARDED (recover marker on line" in text
    printed = CliRunner().invoke(audit_app, ["verify", str(log)])
    assert printed.exit_code == 0, printed.output
    assert "1 allowed call(s) not forwarded" in " ".join(printed.output.split())


async def test_a_marker_that_fails_names_its_decisions_again_in_the_next(log_path: Path) -> None:
    disk = DiskFillingAfter(limit=None)
    chain = AuditChain(FileSink(log_path, write=disk), server="s/s", pod="p", clock=clock)
    await chain.mark("genesis")
    disk.limit = disk.written
    refused = allowed_by_consent()
    with pytest.raises(AuditError):
        await chain.append(refused)
    chain.not_forwarded(refused.id)
    with pytest.raises(AuditError):  # the marker naming it fails on the full disk too
        await chain.append(allowed_by_consent())
    await asyncio.sleep(0)
    disk.limit = None
    await chain.append(allowed_by_consent())
    await chain.close()
    result = verify_file(log_path)
    assert result.ok, result.message
    assert [gap.not_forwarded for gap in result.gaps] == [(refused.id,)]
