"""Sinks: group-committed fsync, prompt AuditError on failure, stdout, settings."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from pathlib import Path

import pytest

from remit.audit import AuditSettings, FileSink, StdoutSink, sink_from_settings
from remit.errors import AuditError
from tests.dataplane.audit.helpers import DiskFillingAfter, wait_until


class FsyncCounter:
    """Counts fsyncs and records how many bytes were on disk at each one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sizes: list[int] = []

    def __call__(self, fd: int) -> None:
        os.fsync(fd)
        self.sizes.append(self.path.stat().st_size)


async def test_concurrent_writes_share_fsyncs_and_are_durable_on_return(tmp_path: Path) -> None:
    path = tmp_path / "log"
    counter = FsyncCounter(path)
    sink = FileSink(path, fsync_function=counter)
    lines = [f'{{"n":{i}}}\n'.encode() for i in range(200)]

    async def write(line: bytes) -> int:
        await sink.write(line)
        return counter.sizes[-1] if counter.sizes else 0  # bytes synced when we resumed

    synced = await asyncio.gather(*(write(line) for line in lines))
    await sink.close()

    assert path.read_bytes() == b"".join(lines)
    assert 1 <= len(counter.sizes) < len(lines)
    offsets = [sum(map(len, lines[: i + 1])) for i in range(len(lines))]
    assert all(s >= end for s, end in zip(synced, offsets, strict=True))


async def test_writes_during_an_fsync_form_the_next_batch(tmp_path: Path) -> None:
    path = tmp_path / "log"
    started, release = threading.Event(), threading.Event()
    batches: list[int] = []

    def slow_fsync(fd: int) -> None:
        batches.append(path.stat().st_size)
        started.set()
        release.wait(timeout=10)

    sink = FileSink(path, fsync_function=slow_fsync)
    first = asyncio.ensure_future(sink.write(b"a\n"))
    await asyncio.to_thread(started.wait, 10)
    later = [asyncio.ensure_future(sink.write(b"b\n")) for _ in range(5)]
    await asyncio.sleep(0)  # let the five queue behind the running fsync
    release.set()
    await asyncio.gather(first, *later)
    await sink.close()

    assert batches == [2, 12]


async def test_full_disk_raises_audit_error(tmp_path: Path) -> None:
    sink = FileSink(Path("/dev/full"))
    with pytest.raises(AuditError, match="No space left"):
        await sink.write(b'{"n":1}\n')
    assert sink.failures == 1
    await sink.close()


async def test_full_disk_without_fsync_fails_the_writer() -> None:
    sink = FileSink(Path("/dev/full"), fsync=False)
    with pytest.raises(AuditError, match="No space left"):
        await sink.write(b'{"n":1}\n')
    await sink.close()


async def test_a_partly_written_batch_is_truncated_back_to_the_last_whole_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log"
    disk = DiskFillingAfter(limit=12)  # the OS takes 12 bytes, then the disk is full
    sink = FileSink(path, write=disk)
    await sink.write(b"first line\n")  # 11 bytes
    with pytest.raises(AuditError, match="No space left"):
        await sink.write(b"second line\n")
    assert path.read_bytes() == b"first line\n"  # not b"first line\ns"
    assert disk.torn == 1
    assert sink.health().state == "failing"
    disk.limit = None  # room again
    await sink.write(b"third line\n")
    assert sink.health().ok
    await sink.close()
    assert path.read_bytes() == b"first line\nthird line\n"


def test_unopenable_path_raises_audit_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(AuditError, match="cannot open audit file"):
        FileSink(tmp_path / "file" / "log")


async def test_hung_fsync_fails_callers_within_the_timeout(tmp_path: Path) -> None:
    release = threading.Event()
    sink = FileSink(
        tmp_path / "log", timeout=0.05, fsync_function=lambda fd: bool(release.wait(10))
    )
    with pytest.raises(AuditError, match="not completed within"):
        await sink.write(b"a\n")
    assert sink.health().state == "stalled"
    with pytest.raises(AuditError, match="stalled"):  # refused at once while it hangs
        sink.submit(b"b\n", key="b", follows="")
    release.set()
    await asyncio.to_thread(wait_until, lambda: sink.health().ok)
    await sink.write(b"c\n")  # the stuck commit finished; the sink works again
    await sink.close()
    assert (tmp_path / "log").read_bytes() == b"a\nc\n"
    assert sink.lost == 1  # b, refused and counted


async def test_closed_sink_refuses_lines(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "log")
    await sink.close()
    with pytest.raises(AuditError, match="closed"):
        sink.submit(b"a\n", key="a", follows=None)


async def test_stdout_sink_writes_whole_lines_to_its_descriptor() -> None:
    read_end, write_end = os.pipe()
    sink = StdoutSink(write_end)
    await sink.submit(b'{"n":1}\n', key="1", follows=None)
    assert os.read(read_end, 100) == b'{"n":1}\n'
    await sink.close()
    os.close(read_end)
    os.close(write_end)


async def test_stdout_sink_on_a_closed_descriptor_raises_audit_error() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody reads: EPIPE
    sink = StdoutSink(write_end)
    with pytest.raises(AuditError, match="cannot write to stdout"):
        await sink.submit(b"a\n", key="a", follows=None)
    assert sink.failures == 1
    await sink.close()
    os.close(write_end)


async def test_a_stdout_pipe_nobody_reads_never_blocks_the_loop() -> None:
    read_end, write_end = os.pipe()
    sink = StdoutSink(write_end, timeout=0.2)
    line = b"x" * 1023 + b"\n"
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    running = asyncio.ensure_future(ticker())
    tail: str | None = None
    outcomes: list[BaseException | None] = []
    for n in range(200):  # 200 KiB: far more than the 64 KiB pipe buffer holds
        key = str(n)
        try:
            future = sink.submit(line, key=key, follows=tail)
        except AuditError as exc:
            outcomes.append(exc)
            continue
        tail = key
        outcomes.append(None)
        with contextlib.suppress(AuditError):
            await asyncio.wait_for(asyncio.shield(future), 1.0)
    assert ticks > 10  # the loop kept running while the writer was blocked
    assert sink.health().state == "stalled"
    refused = [o for o in outcomes if isinstance(o, AuditError)]
    assert refused
    assert all("stalled" in str(o) for o in refused)
    assert sink.lost >= len(refused)

    data = bytearray()
    os.set_blocking(read_end, False)

    def drained() -> bool:  # the reader resumes
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(read_end, 1 << 16):
                data.extend(chunk)
        health = sink.health()
        return health.ok and health.queued == 0

    await asyncio.to_thread(wait_until, drained)
    drained()
    assert data
    assert data == line * (len(data) // len(line))  # whole lines only
    running.cancel()
    await sink.close()
    os.close(read_end)
    os.close(write_end)


async def test_a_full_queue_refuses_lines_and_counts_them(tmp_path: Path) -> None:
    release, syncing = threading.Event(), threading.Event()

    def hang(fd: int) -> None:
        syncing.set()
        release.wait(10)

    sink = FileSink(tmp_path / "log", max_queue_bytes=4, fsync_function=hang)
    first = sink.submit(b"a\n", key="a", follows=None)  # taken by the writer, fsync hangs
    await asyncio.to_thread(syncing.wait, 10)
    second = sink.submit(b"b\n", key="b", follows="a")
    third = sink.submit(b"c\n", key="c", follows="b")  # 4 bytes queued: the limit
    with pytest.raises(AuditError, match="queue full"):
        sink.submit(b"d\n", key="d", follows="c")
    assert sink.lost == 1
    lost, tail, reason = sink.gap
    assert (lost, tail) == (1, "c")
    assert reason.endswith("queue full (4 bytes waiting)")
    release.set()
    await asyncio.gather(first, second, third)
    await sink.close()


def test_settings_choose_the_sink(tmp_path: Path) -> None:
    assert isinstance(sink_from_settings(AuditSettings()), StdoutSink)
    file_sink = sink_from_settings(AuditSettings(sink="file", path=tmp_path / "log"))
    assert isinstance(file_sink, FileSink)
    assert AuditSettings().failure_policy == "Fail"


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"sink": "file"}, "needs a path"),
        ({"sink": "kafka"}, "must be 'stdout' or 'file'"),
        ({"arguments": "all"}, "'digest' or 'redacted'"),
        ({"failure_policy": "Open"}, "'Fail' or 'Ignore'"),
        ({"timeout": 0}, "positive"),
        ({"timeout": float("nan")}, "positive and finite"),
        ({"max_queue_bytes": 0}, "positive"),
    ],
)
def test_invalid_settings_are_named(overrides: dict[str, object], problem: str) -> None:
    with pytest.raises(AuditError, match=problem):
        AuditSettings(**overrides)  # type: ignore[arg-type]


async def test_unexpected_fsync_failure_still_reaches_the_writer(tmp_path: Path) -> None:
    def broken(fd: int) -> None:
        raise RuntimeError("driver bug")

    sink = FileSink(tmp_path / "log", fsync_function=broken)
    with pytest.raises(AuditError, match="driver bug"):
        await sink.write(b"a\n")
    await sink.close()


async def test_a_line_larger_than_the_pipe_arrives_whole() -> None:
    read_end, write_end = os.pipe()
    sink = StdoutSink(write_end)
    line = b"y" * (256 * 1024) + b"\n"  # the pipe takes part of it at once, the thread the rest
    received = bytearray()

    def read() -> None:
        while len(received) < len(line):
            received.extend(os.read(read_end, 1 << 16))

    reading = asyncio.ensure_future(asyncio.to_thread(read))
    await sink.submit(line, key="big", follows=None)
    await reading
    assert received == line
    await sink.close()
    os.close(read_end)
    os.close(write_end)


async def test_stdout_redirected_to_a_file_is_written_in_order(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    sink = StdoutSink(fd)  # a file may refuse RWF_NOWAIT (ext4 does): then the thread writes
    tail = None
    for n in range(3):
        await sink.submit(b"%d\n" % n, key=str(n), follows=tail)
        tail = str(n)
    await sink.close()
    os.close(fd)
    assert (tmp_path / "out").read_bytes() == b"0\n1\n2\n"


async def test_sync_behind_resumes_callers_once_written_and_syncs_behind_them(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log"
    started, release = threading.Event(), threading.Event()
    synced: list[int] = []

    def slow_fsync(fd: int) -> None:
        started.set()
        release.wait(timeout=10)
        os.fsync(fd)
        synced.append(path.stat().st_size)

    sink = FileSink(path, fsync_wait=False, fsync_function=slow_fsync)
    await sink.write(b"a\n")  # resumes while its fsync is still held
    assert path.read_bytes() == b"a\n"
    await asyncio.to_thread(started.wait, 10)
    await asyncio.gather(*(sink.write(b"b\n") for _ in range(5)))  # written during the sync
    assert path.read_bytes() == b"a\n" + b"b\n" * 5
    assert synced == []
    release.set()
    await sink.close()  # syncs what the held sync did not cover before releasing the file
    assert synced[-1] == 12
    assert len(synced) <= 3  # group commit: not one sync per line


async def test_a_failed_sync_behind_refuses_every_later_line(tmp_path: Path) -> None:
    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    sink = FileSink(tmp_path / "log", fsync_wait=False, fsync_function=failing_fsync)
    await sink.write(b"a\n")
    await asyncio.to_thread(wait_until, lambda: sink.health().state == "failing")
    assert "fsync failed: Input/output error" in sink.health().reason
    with pytest.raises(AuditError, match="fsync failed"):
        sink.submit(b"b\n", key="b", follows="")
    await sink.close()
