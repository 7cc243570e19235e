"""The writer thread's hand-over: it is woken only when idle, and a blocked write never blocks
the loop (the per-record wake was the largest cost in the gateway's profile, issue 15)."""

from __future__ import annotations

import asyncio
import threading

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
