"""Stdout lines written on the event loop (``audit/direct.py``): a pipe, socket or /dev/null
takes a line without the writer thread; a full pipe, a refused flag, a file or a terminal
fall back to the thread with every line whole and in order (issue 15: the hand-over cost two
wake-ups a line)."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import pty
import select
import socket
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from remit.audit.direct import pwrite_nowait
from remit.audit.sinks import StdoutSink
from remit.errors import AuditError
from tests.dataplane.audit.helpers import wait_until

PAGE = os.sysconf("SC_PAGE_SIZE")


class CountingNowait:
    """The real ``RWF_NOWAIT`` write, remembering what each call returned (or raised)."""

    def __init__(self, error: int | None = None) -> None:
        self.error = error
        self.results: list[int | str] = []

    def __call__(self, fd: int, data: bytes) -> int:
        if self.error is not None:
            self.results.append(errno.errorcode[self.error])
            raise OSError(self.error, os.strerror(self.error))
        try:
            written = pwrite_nowait(fd, data)
        except BlockingIOError:
            self.results.append("EAGAIN")
            raise
        self.results.append(written)
        return written


@pytest.fixture
def small_pipe() -> Iterator[tuple[int, int]]:
    """A pipe holding one page (the smallest the kernel allows), both ends blocking."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PAGE)
    yield read_end, write_end
    os.close(read_end)
    os.close(write_end)


def read_exactly(fd: int, size: int) -> bytes:
    """Read ``size`` bytes as the writer thread writes them; fail if none come for 10 s."""
    data = bytearray()
    while len(data) < size:
        ready, _, _ = select.select([fd], [], [], 10.0)
        assert ready, f"only {len(data)} of {size} bytes arrived"
        chunk = os.read(fd, size - len(data))
        assert chunk, "the writer closed the descriptor early"
        data.extend(chunk)
    return bytes(data)


@pytest.mark.parametrize("kind", ["pipe", "socket", "/dev/null"])
async def test_a_pipe_socket_or_dev_null_takes_each_line_on_the_loop(kind: str) -> None:
    if kind == "pipe":
        read_end, write_end = os.pipe()
    elif kind == "socket":
        a, b = socket.socketpair()
        read_end, write_end = a.detach(), b.detach()
    else:
        read_end, write_end = os.open("/dev/zero", os.O_RDONLY), os.open(kind, os.O_WRONLY)
    nowait = CountingNowait()
    sink = StdoutSink(write_end, nowait=nowait)
    assert sink.direct.enabled
    tail = None
    for n in range(3):
        future = sink.submit(b"line %d\n" % n, key=str(n), follows=tail)
        assert future.done()  # written before submit returned: no thread round trip
        await future
        tail = str(n)
    assert nowait.results == [7, 7, 7]
    if kind != "/dev/null":
        assert os.read(read_end, 100) == b"line 0\nline 1\nline 2\n"
    await sink.close()
    os.close(read_end)
    os.close(write_end)


@pytest.mark.parametrize("prefill", [0, PAGE], ids=["partial", "full"])
async def test_a_full_pipe_falls_back_to_the_thread_in_order(
    small_pipe: tuple[int, int], prefill: int
) -> None:
    read_end, write_end = small_pipe
    os.write(write_end, b"p" * prefill)  # fits: does not block
    nowait = CountingNowait()
    sink = StdoutSink(write_end, nowait=nowait)
    big = b"a" * (PAGE + PAGE // 2 - 1) + b"\n"  # more than the pipe holds
    first = sink.submit(big, key="a", follows=None)
    assert not first.done()  # the pipe took part of it (or nothing): the thread has the rest
    assert nowait.results == ([PAGE] if prefill == 0 else ["EAGAIN"])
    follows = ["a", "0", "1", "2", "3"]
    later = [sink.submit(b"%d\n" % n, key=str(n), follows=follows[n]) for n in range(5)]
    assert len(nowait.results) == 1  # queued behind the rest, never tried on the loop
    assert sink.health().queued == 6

    expected = b"p" * prefill + big + b"0\n1\n2\n3\n4\n"
    received = await asyncio.to_thread(read_exactly, read_end, len(expected))
    assert received == expected  # the rest of the line first, then the others, in order
    await asyncio.gather(first, *later)

    again = sink.submit(b"direct\n", key="d", follows="4")
    assert again.done()  # drained: the next line goes straight to the pipe again
    assert nowait.results[1:] == [7]
    assert os.read(read_end, 100) == b"direct\n"
    assert sink.lost == 0
    await sink.close()


async def test_a_stall_keeps_the_rest_of_a_partly_written_line(
    small_pipe: tuple[int, int],
) -> None:
    read_end, write_end = small_pipe
    now = [0.0]
    sink = StdoutSink(write_end, timeout=1.0)
    sink._clock = lambda: now[0]  # age the line without sleeping
    big = b"a" * (PAGE * 2 - 1) + b"\n"
    first = sink.submit(big, key="a", follows=None)
    assert not first.done()
    now[0] = 2.0
    sink._watch()  # the timeout timer fires before the thread took the rest
    with pytest.raises(AuditError, match="stalled"):
        await first
    assert sink.health().state == "stalled"
    assert sink.lost == 0  # the line is still on its way, not lost

    received = await asyncio.to_thread(read_exactly, read_end, len(big))
    assert received == big  # whole: never a torn line in the log
    await asyncio.to_thread(wait_until, lambda: sink.health().state == "ok")
    await sink.submit(b"next\n", key="n", follows="a")  # the chain goes on from the line
    assert os.read(read_end, 100) == b"next\n"
    await sink.close()


@pytest.mark.parametrize("code", [errno.EOPNOTSUPP, errno.EINVAL])
async def test_a_kernel_refusing_rwf_nowait_keeps_the_thread(code: int) -> None:
    read_end, write_end = os.pipe()
    nowait = CountingNowait(error=code)
    sink = StdoutSink(write_end, nowait=nowait)
    tail = None
    for n in range(3):
        await sink.submit(b"%d\n" % n, key=str(n), follows=tail)
        tail = str(n)
    assert nowait.results == [errno.errorcode[code]]  # asked once, then remembered
    assert not sink.direct.enabled
    assert sink.direct.refused
    assert os.read(read_end, 100) == b"0\n1\n2\n"
    await sink.close()
    os.close(read_end)
    os.close(write_end)


async def test_a_terminal_uses_the_thread() -> None:
    main_end, terminal = pty.openpty()
    tty.setraw(terminal)  # no newline translation
    nowait = CountingNowait()
    sink = StdoutSink(terminal, nowait=nowait)
    assert not sink.direct.enabled
    await sink.submit(b"to a terminal\n", key="t", follows=None)
    assert nowait.results == []
    assert os.read(main_end, 100) == b"to a terminal\n"
    await sink.close()
    os.close(terminal)
    os.close(main_end)


async def test_a_regular_file_uses_the_thread(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    nowait = CountingNowait()
    sink = StdoutSink(fd, nowait=nowait)
    assert not sink.direct.enabled
    future = sink.submit(b"0\n", key="0", follows=None)
    assert not future.done()  # handed to the thread
    await future
    await sink.submit(b"1\n", key="1", follows="0")
    assert nowait.results == []
    await sink.close()
    os.close(fd)
    assert (tmp_path / "out").read_bytes() == b"0\n1\n"
