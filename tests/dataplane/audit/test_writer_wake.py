"""The writer thread's hand-over: it is woken only when idle, and a blocked write never blocks
the loop (the per-record wake was the largest cost in the gateway's profile, issue 15)."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from remit.audit.sinks import FileSink
from remit.audit.writer import LineWriter
from tests.dataplane.audit.helpers import wait_until


class GatedWriter(LineWriter):
    """Records each batch it writes and how often the loop had to wake its thread; a write
    blocks while ``gate`` is clear."""

    name = "gated"

    def __init__(self) -> None:
        super().__init__(timeout=30.0)
        self.batches: list[bytes] = []
        self.wakes = 0
        self.writing = threading.Event()
        self.gate = threading.Event()
        self.gate.set()

    def _wake_writer(self) -> None:
        self.wakes += self._sleeping  # lock held: the flag the thread set before it blocked
        super()._wake_writer()

    @property
    def idle(self) -> bool:
        with self._lock:
            return self._sleeping

    def _write(self, data: bytes) -> None:
        self.writing.set()
        self.gate.wait(timeout=10)
        self.batches.append(data)


def chain(writer: GatedWriter, lines: list[bytes], start: int = 0) -> list[asyncio.Future[None]]:
    futures = []
    for n, line in enumerate(lines, start):
        follows = str(n - 1) if n else None
        futures.append(writer.submit(line, key=str(n), follows=follows))
    return futures


async def test_lines_queued_during_a_write_cost_no_wake_and_stay_in_order() -> None:
    writer = GatedWriter()
    writer.gate.clear()
    lines = [f"{n}\n".encode() for n in range(10)]
    first = chain(writer, lines[:1])
    await asyncio.to_thread(writer.writing.wait, 10)
    later = chain(writer, lines[1:], start=1)  # the thread is busy writing the first line
    await asyncio.sleep(0)
    assert not any(future.done() for future in first + later)
    writer.gate.set()
    await asyncio.gather(*first, *later)

    assert writer.wakes == 1
    assert writer.batches == [lines[0], b"".join(lines[1:])]
    await writer.close()


async def test_lines_submitted_together_to_an_idle_writer_cost_one_wake() -> None:
    writer = GatedWriter()
    lines = [f"{n}\n".encode() for n in range(5)]
    await asyncio.gather(*chain(writer, lines[:1]))  # the thread has started and gone idle
    await asyncio.to_thread(wait_until, lambda: writer.idle)
    wakes = writer.wakes
    await asyncio.gather(*chain(writer, lines[1:], start=1))  # one loop iteration, four lines

    assert writer.wakes - wakes == 1
    assert b"".join(writer.batches) == b"".join(lines)
    await writer.close()


async def test_a_blocked_write_leaves_the_loop_running() -> None:
    writer = GatedWriter()
    writer.gate.clear()
    pending = chain(writer, [b"0\n"])
    await asyncio.to_thread(writer.writing.wait, 10)
    timer = asyncio.Event()  # the loop keeps serving while the thread is stuck in a write
    asyncio.get_running_loop().call_later(0.01, timer.set)
    await asyncio.wait_for(timer.wait(), 5)
    queued = chain(writer, [b"1\n"], start=1)  # accepted at once, queued behind the write

    assert not pending[0].done()
    assert not queued[0].done()
    assert writer.health().queued == 2
    writer.gate.set()
    await asyncio.gather(*pending, *queued)
    assert writer.batches == [b"0\n", b"1\n"]
    await writer.close()


async def test_lines_queued_in_one_tick_wake_the_writer_once_after_the_tick() -> None:
    writer = GatedWriter()
    await asyncio.gather(*chain(writer, [b"0\n"]))
    await asyncio.to_thread(wait_until, lambda: writer.idle)
    wakes, batches = writer.wakes, len(writer.batches)
    lines = [f"{n}\n".encode() for n in range(1, 9)]
    futures = chain(writer, lines, start=1)  # one tick: the writer is not woken mid-tick

    assert writer.wakes == wakes
    await asyncio.gather(*futures)
    assert writer.wakes - wakes == 1
    assert writer.batches[batches:] == [b"".join(lines)]  # one batch, in order
    await writer.close()


@pytest.mark.parametrize("fsync", [True, False])
async def test_a_line_queued_in_a_tick_is_on_disk_when_its_caller_resumes(
    tmp_path: Path, fsync: bool
) -> None:
    path = tmp_path / "log"
    synced: list[int] = []

    def counting_fsync(fd: int) -> None:
        os.fsync(fd)
        synced.append(path.stat().st_size)

    sink = FileSink(path, fsync=fsync, fsync_function=counting_fsync)
    lines = [f'{{"n":{n}}}\n'.encode() for n in range(20)]
    seen: list[tuple[int, int, int]] = []  # (line end, bytes in the file, bytes synced)
    futures, end = [], 0
    for n, line in enumerate(lines):  # one tick, chained as the audit chain submits them
        end += len(line)
        futures.append(sink.submit(line, key=str(n), follows=str(n - 1) if n else None))
        futures[-1].add_done_callback(  # runs as the caller resumes
            lambda _, end=end: seen.append((end, path.stat().st_size, synced[-1] if synced else 0))
        )
    await asyncio.gather(*futures)
    await sink.close()

    assert path.read_bytes() == b"".join(lines)
    assert [line_end for line_end, _, _ in seen] == sorted(line_end for line_end, _, _ in seen)
    assert all(size >= line_end for line_end, size, _ in seen)
    if fsync:
        assert synced == [end]  # the tick's lines were written and synced together
        assert all(on_disk >= line_end for line_end, _, on_disk in seen)
    else:
        assert synced == []
