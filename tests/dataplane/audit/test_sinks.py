"""Sinks: group-committed fsync, prompt AuditError on failure, stdout, settings."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from remit.audit import AuditSettings, FileSink, StdoutSink, sink_from_settings
from remit.errors import AuditError


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


async def test_full_disk_without_fsync_raises_at_submit() -> None:
    sink = FileSink(Path("/dev/full"), fsync=False)
    with pytest.raises(AuditError, match="No space left"):
        sink.submit(b'{"n":1}\n')


def test_unopenable_path_raises_audit_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(AuditError, match="cannot open audit file"):
        FileSink(tmp_path / "file" / "log")


async def test_hung_fsync_fails_callers_within_the_timeout(tmp_path: Path) -> None:
    release = threading.Event()
    sink = FileSink(
        tmp_path / "log", timeout=0.05, fsync_function=lambda fd: bool(release.wait(10))
    )
    with pytest.raises(AuditError, match="not written within"):
        await sink.write(b"a\n")
    release.set()
    await sink.write(b"b\n")  # the stuck commit finished; the sink works again
    await sink.close()
    assert (tmp_path / "log").read_bytes() == b"a\nb\n"


async def test_closed_sink_refuses_lines(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "log")
    await sink.close()
    with pytest.raises(AuditError, match="closed"):
        sink.submit(b"a\n")


def test_stdout_sink_writes_whole_lines_to_its_descriptor() -> None:
    read_end, write_end = os.pipe()
    sink = StdoutSink(write_end)
    assert sink.submit(b'{"n":1}\n') is None
    assert os.read(read_end, 100) == b'{"n":1}\n'
    os.close(read_end)
    os.close(write_end)


def test_stdout_sink_on_a_closed_descriptor_raises_audit_error() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody reads: EPIPE
    sink = StdoutSink(write_end)
    with pytest.raises(AuditError, match="cannot write audit record"):
        sink.submit(b"a\n")
    assert sink.failures == 1
    os.close(write_end)


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
