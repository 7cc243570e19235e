"""Where decision lines go: stdout (the cluster default) or an append-only file.

Both sinks are :class:`~remit.audit.writer.LineWriter` subclasses: ``submit`` queues a line on
the event loop and returns a future that completes once the line is written (for a file with
``fsync``, once it is on disk); a writer thread does the writing, so neither a stdout pipe
nobody reads nor a slow or full disk can block the loop. The back-pressure policy (refuse,
never drop silently; fail every caller of a stalled or failed write within ``timeout``) is
described in ``writer.py``; ``health()`` says whether the sink can write, for ``/readyz``.

:class:`FileSink` group-commits: lines queued while a write runs are written together by the
next one, and synced together, either by the writer (``fsync_strict``: a caller resumes once
its line is on disk) or by a sync thread behind it (``syncer.py``: a caller resumes once its
line is written and may wait for its sync point, as the gateway does before it answers).
A failed write (``ENOSPC``, ``EFBIG``, ``EIO``) is undone by truncating the file back to the
end of its last complete line, so a disk-full event never leaves a torn line in the log.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from remit.audit.arguments import ArgumentMode
from remit.audit.direct import DirectWrite, NowaitWrite, pwrite_nowait
from remit.audit.health import SinkHealth, SinkState
from remit.audit.syncer import DEFAULT_SYNC_DELAY, GroupSync, SyncPoint
from remit.audit.writer import DEFAULT_QUEUE_BYTES, LineWriter
from remit.errors import AuditError

log = logging.getLogger(__name__)

FailurePolicy = Literal["Fail", "Ignore"]


@dataclass(frozen=True, slots=True)
class AuditSettings:
    """How a gateway writes its decision records.

    ``sink`` is ``stdout`` or ``file`` (then ``path`` is required). ``fsync`` makes records
    durable (file sink only): a record is written before the call proceeds and a sync thread
    group-commits right behind it; with ``fsync_wait`` (the default) nothing of a call's answer
    is released before its decision record is synced (the sync runs while the upstream works),
    with ``fsync_wait`` off nobody waits for a sync, and with ``fsync_strict`` each record is
    synced before its call proceeds (see :class:`FileSink`); ``sync_delay`` bounds how long a
    record nobody waits for (an outcome) may wait for the next sync. ``arguments`` chooses what
    is kept of call arguments (``digest`` or ``redacted``). ``failure_policy`` tells the gateway
    what to do when a record cannot be written: ``Fail`` denies the call (the default),
    ``Ignore`` forwards it anyway. ``resume_broken`` lets a gateway append to a file whose tail
    does not verify, after a marker line naming the damage (see
    :func:`remit.audit.chain.open_chain`). ``timeout`` bounds how long a caller waits for its
    line to be durable: a line not written by then fails its caller and marks the sink stalled.
    ``max_queue_bytes`` bounds the lines waiting for the writer; beyond it new lines are refused
    (the call is denied). ``digest_key`` keys argument digests (HMAC-SHA256; see
    ``arguments.py``); with ``key_delivered`` the operator delivers it instead
    (``keydelivery.py``); ``anchor`` is the head this pod's previous chain was last anchored at,
    named by the new chain's marker.
    """

    sink: Literal["stdout", "file"] = "stdout"
    path: Path | None = None
    fsync: bool = True
    fsync_wait: bool = True
    fsync_strict: bool = False
    sync_delay: float = DEFAULT_SYNC_DELAY
    arguments: ArgumentMode = "digest"
    failure_policy: FailurePolicy = "Fail"
    resume_broken: bool = False
    timeout: float = 5.0
    max_queue_bytes: int = DEFAULT_QUEUE_BYTES
    digest_key: bytes | None = field(default=None, repr=False)
    key_delivered: bool = False
    anchor: str | None = None

    def __post_init__(self) -> None:
        if self.key_delivered and self.digest_key is not None:
            raise AuditError("a digest key is either delivered by the operator or given, not both")
        if self.sink not in ("stdout", "file"):
            raise AuditError(f"audit sink must be 'stdout' or 'file', not {self.sink!r}")
        if self.sink == "file" and self.path is None:
            raise AuditError("audit sink 'file' needs a path")
        if self.arguments not in ("digest", "redacted"):
            raise AuditError(
                f"audit arguments must be 'digest' or 'redacted', not {self.arguments!r}"
            )
        if self.failure_policy not in ("Fail", "Ignore"):
            raise AuditError(
                f"audit failure policy must be 'Fail' or 'Ignore', not {self.failure_policy!r}"
            )
        if not 0 < self.timeout < math.inf:  # also refuses NaN
            raise AuditError("audit write timeout must be positive and finite")
        if not 0 <= self.sync_delay < math.inf:
            raise AuditError("audit sync delay must be at least 0 and finite")
        if self.sync_points and self.sync_delay >= self.timeout:  # where the delay is used
            raise AuditError(
                f"REMIT_AUDIT_SYNC_DELAY ({self.sync_delay:g}s) must be less than "
                f"REMIT_AUDIT_TIMEOUT ({self.timeout:g}s) with the file sink's default fsync"
            )
        if self.max_queue_bytes <= 0:
            raise AuditError("audit queue size must be positive")

    @property
    def sync_points(self) -> bool:
        """Whether answers wait for sync points (the file sink's default fsync mode): the only
        mode that uses ``sync_delay``."""
        return self.sink == "file" and waits_for_sync_points(
            fsync=self.fsync, fsync_wait=self.fsync_wait, fsync_strict=self.fsync_strict
        )


def waits_for_sync_points(*, fsync: bool, fsync_wait: bool, fsync_strict: bool) -> bool:
    """Whether a file sink with these settings hands out sync points that answers wait for
    (fsync on, waited for, not per record): the one mode where ``sync_delay`` matters."""
    return fsync and fsync_wait and not fsync_strict


class Sink(Protocol):
    """An ordered, append-only destination for decision lines (see ``writer.py``)."""

    @property
    def failures(self) -> int:
        """How many writes have failed since the sink was opened."""
        ...

    @property
    def lost(self) -> int:
        """How many lines never reached the destination."""
        ...

    @property
    def gap(self) -> tuple[int, str | None, str]:
        """``(lines lost since the tail, the tail's key, why they were lost)``."""
        ...

    def submit(
        self, line: bytes, *, key: str, follows: str | None, counted: bool = True
    ) -> asyncio.Future[None]:
        """Queue ``line``; the future completes when it is written (and synced).

        Raises :class:`AuditError` at once when the line cannot be accepted.
        """
        ...

    def health(self) -> SinkHealth:
        """Whether the sink can write now, and why not."""
        ...

    async def close(self) -> None:
        """Finish pending writes and release the destination."""
        ...


def _write_all(write: Callable[[int, bytes], int], fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``fd`` (a write may write less than asked)."""
    view = memoryview(data)
    while view:
        written = write(fd, view)  # type: ignore[arg-type]
        view = view[written:]


class StdoutSink(LineWriter):
    """Writes lines to standard output (or another descriptor) without blocking the loop.

    In a cluster the container runtime collects the lines; ``kubectl logs`` reads them back.
    A line counts as written once the pipe took it. When stdout is a pipe, a socket or
    ``/dev/null`` and the writer thread is idle, a line is written on the loop with
    ``RWF_NOWAIT`` (``direct.py``: about 5 µs of CPU against some 30 µs for a round trip
    through the thread); what the pipe does not take goes through the thread, as does every
    line to a regular file or terminal, or when the kernel refuses the flag. ``write`` is the
    thread's write and ``nowait`` the loop's (injectable for tests; an injected ``write``
    alone disables the loop's). Keep other output on stderr: a line larger than the pipe
    buffer may interleave with other writers to the descriptor.
    """

    name = "stdout"

    def __init__(
        self,
        fd: int = 1,
        *,
        timeout: float = 5.0,
        max_queue_bytes: int = DEFAULT_QUEUE_BYTES,
        write: Callable[[int, bytes], int] = os.write,
        nowait: NowaitWrite | None = None,
    ) -> None:
        super().__init__(timeout=timeout, max_queue_bytes=max_queue_bytes)
        self._fd = fd
        self._os_write = write
        if nowait is None and write is os.write:
            nowait = pwrite_nowait
        self.direct = DirectWrite(fd, nowait)

    def _write(self, data: bytes) -> None:
        _write_all(self._os_write, self._fd, data)

    def _write_now(self, line: bytes) -> int:
        return self.direct.write(line)


class FileSink(LineWriter):
    """An append-only file (``O_APPEND``) with group-committed ``fsync``.

    ``fsync_strict`` (the default here): a caller resumes once its line is written and synced
    by the writer thread. Otherwise a caller resumes once its line is written (in the page
    cache: a gateway that crashes loses nothing) and a sync thread ``fsync``s behind the
    writer, one sync for every line written while the last one ran (``syncer.py``); with
    ``fsync_wait`` the sink hands out sync points (:meth:`sync_point`) that the gateway waits
    for before it releases an answer, without it nobody waits. A line not synced within
    ``timeout`` marks the sink stalled (lines refused until the sync returns); a sync that
    fails marks it failing and refuses every later line (the gateway denies with
    ``audit_unavailable``): after a failed ``fsync`` nothing says what reached the disk.

    ``fsync_function``, ``write`` and ``clock`` are injectable so tests can count and hold
    syncs, make the operating system's write fail part-way (as a full disk does), and age
    lines without sleeping.
    """

    def __init__(
        self,
        path: Path,
        *,
        fsync: bool = True,
        fsync_wait: bool = True,
        fsync_strict: bool = True,
        sync_delay: float = DEFAULT_SYNC_DELAY,
        timeout: float = 5.0,
        max_queue_bytes: int = DEFAULT_QUEUE_BYTES,
        fsync_function: Callable[[int], None] = os.fsync,
        write: Callable[[int, bytes], int] = os.write,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(timeout=timeout, max_queue_bytes=max_queue_bytes, clock=clock)
        self.path = path
        self.name = f"audit file {path}"
        self._fsync = fsync and fsync_wait and fsync_strict
        self._behind: GroupSync | None = None
        self._points = waits_for_sync_points(
            fsync=fsync, fsync_wait=fsync_wait, fsync_strict=fsync_strict
        )
        self._fsync_function = fsync_function
        self._os_write = write
        self._start_size: int | None = None
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        try:
            self._fd = os.open(path, flags, 0o640)
        except OSError as exc:
            raise AuditError(f"cannot open audit file {path}: {exc.strerror}") from exc
        if fsync and not self._fsync:
            delay = sync_delay if self._points else None
            self._behind = GroupSync(
                self._fd, self.name, fsync_function, timeout=timeout, clock=clock, delay=delay
            )

    def sync_point(self) -> SyncPoint | None:
        """What a caller whose line was written waits for before it acts on the line being
        durable (None when the sink syncs each line before its caller resumes, or never)."""
        return self._behind.point() if self._points and self._behind is not None else None

    async def write(self, line: bytes) -> None:
        """Append ``line`` outside any chain (never refused for earlier losses, nor counted as
        lost) and return once it is durable."""
        await self.submit(line, key="", follows=self.tail, counted=False)
        point = self.sync_point()
        if point is not None:
            await point.wait()

    def _write(self, data: bytes) -> None:
        self._start_size = None
        self._start_size = os.fstat(self._fd).st_size  # this sink is the file's one writer
        _write_all(self._os_write, self._fd, data)
        if self._fsync:
            self._fsync_function(self._fd)
        elif self._behind is not None:
            self._behind.wrote()

    def _refusal(self, size: int, follows: str | None, *, segment: bool) -> str:
        if self._behind is not None:
            problem = self._behind.problem(self._clock())
            if problem:
                return problem
        return super()._refusal(size, follows, segment=segment)

    def health(self) -> SinkHealth:
        health = super().health()
        if self._behind is not None and health.state == "ok":
            problem = self._behind.problem(self._clock())
            if problem:
                state: SinkState = "failing" if self._behind.error else "stalled"
                reason = f"fsync failed: {self._behind.error}" if self._behind.error else problem
                return SinkHealth(state, reason, health.queued, health.lost, health.failures)
        return health

    def _undo(self) -> None:
        """Truncate back to the end of the last complete line (a full disk frees blocks)."""
        if self._start_size is None:  # failed before writing anything
            return
        try:
            if os.fstat(self._fd).st_size > self._start_size:
                os.ftruncate(self._fd, self._start_size)
        except OSError as exc:
            log.error("audit file %s: cannot remove a partly written line: %s", self.path, exc)

    def _release(self) -> None:
        if self._behind is not None:
            self._behind.stop()
        os.close(self._fd)


def sink_from_settings(
    settings: AuditSettings, *, fsync_function: Callable[[int], None] = os.fsync
) -> StdoutSink | FileSink:
    """Open the sink ``settings`` describe; raises :class:`AuditError` when it cannot."""
    if settings.sink == "file":
        assert settings.path is not None  # checked by AuditSettings
        return FileSink(
            settings.path,
            fsync=settings.fsync,
            fsync_wait=settings.fsync_wait,
            fsync_strict=settings.fsync_strict,
            sync_delay=settings.sync_delay,
            timeout=settings.timeout,
            max_queue_bytes=settings.max_queue_bytes,
            fsync_function=fsync_function,
        )
    return StdoutSink(timeout=settings.timeout, max_queue_bytes=settings.max_queue_bytes)
