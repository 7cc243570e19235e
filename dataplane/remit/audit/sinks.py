"""Where decision lines go: stdout (the cluster default) or an append-only file.

A sink takes whole lines in order. :meth:`Sink.submit` queues a line *synchronously* (so the
chain can hand lines over in hash order without holding a lock across an ``await``) and returns
``None`` when the line is already written, or a future that completes once it is durable.
Every failure surfaces as :class:`~remit.errors.AuditError`, promptly: a write that does not
finish within ``timeout`` seconds fails its callers instead of hanging them, and the gateway
turns that into a deny. ``failures`` counts failed writes so the chain can tell that lines may
have been lost and start a new segment.

:class:`FileSink` group-commits: lines submitted while an ``fsync`` runs are written and synced
together by the next one, so concurrent callers share fsyncs while each caller still resumes
only after its own line is on disk. Writes and fsyncs run in a worker thread, off the event
loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from remit.audit.arguments import ArgumentMode
from remit.errors import AuditError

FailurePolicy = Literal["Fail", "Ignore"]


@dataclass(frozen=True, slots=True)
class AuditSettings:
    """How a gateway writes its decision records.

    ``sink`` is ``stdout`` or ``file`` (then ``path`` is required). ``fsync`` makes each
    record durable before the call proceeds (file sink only). ``arguments`` chooses what is kept
    of call arguments (``digest`` or ``redacted``). ``failure_policy`` tells the gateway what to
    do when a record cannot be written: ``Fail`` denies the call (the default), ``Ignore``
    forwards it anyway. ``resume_broken`` lets a gateway append to a file whose tail does not
    verify, after a marker line naming the damage (see :func:`remit.audit.chain.open_chain`).
    ``timeout`` bounds how long a caller waits for its line to be durable.
    """

    sink: Literal["stdout", "file"] = "stdout"
    path: Path | None = None
    fsync: bool = True
    arguments: ArgumentMode = "digest"
    failure_policy: FailurePolicy = "Fail"
    resume_broken: bool = False
    timeout: float = 5.0

    def __post_init__(self) -> None:
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
        if self.timeout <= 0:
            raise AuditError("audit write timeout must be positive")


class Sink(Protocol):
    """An ordered, append-only destination for decision lines."""

    @property
    def failures(self) -> int:
        """How many writes have failed since the sink was opened."""
        ...

    def submit(self, line: bytes) -> asyncio.Future[None] | None:
        """Queue ``line``; ``None`` if already written, else a future completing when durable.

        Raises :class:`AuditError` at once when the line cannot be accepted.
        """
        ...

    async def close(self) -> None:
        """Finish pending writes and release the destination."""
        ...


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``fd`` (``os.write`` may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class StdoutSink:
    """Writes each line to standard output (or another descriptor) at once, unbuffered.

    In a cluster the container runtime collects the lines; ``kubectl logs`` reads them back.
    Keep other output on stderr: a line larger than the pipe buffer may interleave with other
    writers to the same descriptor.
    """

    def __init__(self, fd: int = 1) -> None:
        self._fd = fd
        self._failures = 0
        self._closed = False

    @property
    def failures(self) -> int:
        """How many writes have failed."""
        return self._failures

    def submit(self, line: bytes) -> None:
        """Write ``line`` now; raises :class:`AuditError` when the descriptor refuses it."""
        if self._closed:
            raise AuditError("audit sink is closed")
        try:
            _write_all(self._fd, line)
        except OSError as exc:
            self._failures += 1
            raise AuditError(f"cannot write audit record to stdout: {exc.strerror}") from exc

    async def close(self) -> None:
        """Stop accepting lines (the descriptor itself stays open)."""
        self._closed = True


class FileSink:
    """An append-only file (``O_APPEND``) with group-committed ``fsync``.

    ``fsync_function`` is injectable so tests can count syncs. With ``fsync=False`` lines are
    written to the page cache synchronously and the sink never blocks on the disk.
    """

    def __init__(
        self,
        path: Path,
        *,
        fsync: bool = True,
        timeout: float = 5.0,
        fsync_function: Callable[[int], None] = os.fsync,
    ) -> None:
        self.path = path
        self._fsync = fsync
        self._timeout = timeout
        self._fsync_function = fsync_function
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        try:
            self._fd = os.open(path, flags, 0o640)
        except OSError as exc:
            raise AuditError(f"cannot open audit file {path}: {exc.strerror}") from exc
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._stuck: asyncio.Future[None] | None = None
        self._failures = 0
        self._closed = False

    @property
    def failures(self) -> int:
        """How many batches (or unsynced writes) have failed."""
        return self._failures

    def submit(self, line: bytes) -> asyncio.Future[None] | None:
        """Queue ``line`` for the next group commit (or write it now when not syncing)."""
        if self._closed:
            raise AuditError(f"audit file {self.path} is closed")
        if not self._fsync:
            try:
                _write_all(self._fd, line)
            except OSError as exc:
                self._failures += 1
                raise AuditError(f"cannot write audit file {self.path}: {exc.strerror}") from exc
            return None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((line, future))
        if self._flusher is None:
            self._flusher = loop.create_task(self._flush())
        return future

    async def write(self, line: bytes) -> None:
        """Append ``line`` and return once it is durable; raises :class:`AuditError`."""
        future = self.submit(line)
        if future is not None:
            await future

    async def _flush(self) -> None:
        """Write and sync pending lines in batches until none are left."""
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await self._commit(b"".join(line for line, _ in batch))
                except Exception as exc:  # noqa: BLE001 - every failure must reach the waiters
                    self._failures += 1
                    # Later lines chain onto lines that may be lost: fail them too.
                    batch += self._pending
                    self._pending = []
                    error = (
                        str(exc) if isinstance(exc, AuditError) else f"audit write failed: {exc!r}"
                    )
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(AuditError(error))
                    continue
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)
        finally:
            self._flusher = None

    async def _commit(self, data: bytes) -> None:
        """Write ``data`` and fsync in a worker thread, waiting at most ``timeout`` seconds."""
        if self._stuck is not None:
            # A previous commit outlived its timeout; never run two at once (order matters).
            await self._await_worker(self._stuck)
            self._stuck = None
        worker = asyncio.ensure_future(asyncio.to_thread(self._write_and_sync, data))
        await self._await_worker(worker)

    async def _await_worker(self, worker: asyncio.Future[None]) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(worker), self._timeout)
        except TimeoutError as exc:
            self._stuck = worker
            raise AuditError(
                f"audit file {self.path} not written within {self._timeout:g}s"
            ) from exc

    def _write_and_sync(self, data: bytes) -> None:
        try:
            _write_all(self._fd, data)
            self._fsync_function(self._fd)
        except OSError as exc:
            raise AuditError(f"cannot write audit file {self.path}: {exc.strerror}") from exc

    async def close(self) -> None:
        """Wait for pending lines, then close the file."""
        if self._closed:
            return
        self._closed = True
        if self._flusher is not None:
            await asyncio.shield(self._flusher)
        if self._stuck is not None:
            # Do not close a descriptor a worker thread may still write to.
            self._stuck.add_done_callback(lambda _: os.close(self._fd))
            return
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
            timeout=settings.timeout,
            fsync_function=fsync_function,
        )
    return StdoutSink()
