"""Write a stdout line on the event loop when the write cannot block: pipes, sockets, /dev/null.

Why: handing a line to the writer thread and waiting for it costs a loop -> thread -> loop round
trip (two cross-thread wake-ups and GIL hand-overs, ~30 µs of CPU per line measured on uvloop,
two lines per call) where the write itself costs a few µs. In a pod stdout is a pipe read by
the container runtime; a pipe or socket write with ``RWF_NOWAIT`` either takes bytes at once
or refuses with ``EAGAIN`` and never sleeps, so the loop can make it itself. The flag is per
call: ``O_NONBLOCK`` is never set, because the file description is shared with whoever else
holds the descriptor (a shell, the runtime, other processes' stdout).

What this module decides, :class:`~remit.audit.writer.LineWriter` relies on: a direct write
is tried only while nothing waits for the writer thread (so lines never reorder), and what it
did not write (``EAGAIN``, a partial write, an error) goes to the thread, which writes the rest
of a partial line before anything else. Only pipes, sockets and devices such as ``/dev/null``
are tried (the kernel accepts the flag only from drivers that honour it): a regular
file (its write may wait for the disk; ext4 refuses ``RWF_NOWAIT`` for buffered writes
anyway) and a terminal keep the thread. A kernel that refuses the flag
(``EOPNOTSUPP``, ``EINVAL``, ``ENOSYS``) is remembered: every later line uses the thread.
Any other error is left for the thread's blocking write to meet and report (``EPIPE``), so
failure accounting stays in one place.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable

NowaitWrite = Callable[[int, bytes], int]
"""``(fd, data) -> bytes written``; raises ``BlockingIOError`` rather than block."""

_REFUSED = frozenset({errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS, errno.ESPIPE})


def pwrite_nowait(fd: int, data: bytes) -> int:
    """One ``pwritev2(fd, data, offset=-1, RWF_NOWAIT)``: write at the current position
    without ever sleeping for room."""
    return os.pwritev(fd, [data], -1, os.RWF_NOWAIT)


def can_write_directly(fd: int) -> bool:
    """Whether ``fd`` is a pipe, a socket or a device other than a terminal (``/dev/null``):
    those whose ``RWF_NOWAIT`` write cannot block, when the kernel accepts the flag at all."""
    if not hasattr(os, "RWF_NOWAIT"):
        return False
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISCHR(mode):
            return not os.isatty(fd)
    except OSError:
        return False  # a closed descriptor: the thread meets the error and reports it
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


class DirectWrite:
    """Non-blocking writes of whole or partial lines to one descriptor, on the event loop.

    ``write`` is injectable so tests can make the kernel refuse the flag; ``None`` (or a
    descriptor :func:`can_write_directly` turns down) disables direct writes altogether.
    """

    def __init__(self, fd: int, write: NowaitWrite | None = pwrite_nowait) -> None:
        self._fd = fd
        self._write = write if write is not None and can_write_directly(fd) else None
        self.refused = ""  # why the kernel refused direct writes ('' while it has not)

    @property
    def enabled(self) -> bool:
        """Whether lines are still tried on the loop."""
        return self._write is not None

    def write(self, data: bytes) -> int:
        """Write what the descriptor takes now; how many bytes (0: the thread writes it all)."""
        write = self._write
        if write is None:
            return 0
        try:
            return write(self._fd, data)
        except BlockingIOError:
            return 0  # full: the thread waits for room
        except OSError as exc:
            if exc.errno in _REFUSED:
                self._write = None  # not supported here: from now on, always the thread
                self.refused = exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
            return 0  # a real error (EPIPE): the thread meets it and fails the line


__all__ = ["DirectWrite", "NowaitWrite", "can_write_directly", "pwrite_nowait"]
