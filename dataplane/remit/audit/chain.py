"""The hash chain a gateway appends its decision records to.

:class:`AuditChain` holds the head hash, seals each record after it and hands the line to a
sink in the same step, so lines reach the sink in chain order even when many requests are
decided concurrently (nothing awaits between sealing and submitting). The caller then awaits
durability; any failure raises :class:`~remit.errors.AuditError`, which the gateway turns into
a deny under the ``Fail`` policy.

Segments. Every process start writes a ``chain`` record first:

- ``genesis`` (``prev`` = 64 zeros) for a new file, and always on stdout (a new container's
  log is a new stream);
- ``resume`` (``prev`` = the file's last hash) when the file already holds a chain whose tail
  verifies, so the file stays one unbroken chain across restarts;
- ``override`` (``prev`` = 64 zeros) when the tail does *not* verify and the operator set
  ``resume_broken``. Without it, :func:`open_chain` refuses with ``AuditError``: appending to
  a damaged chain would bury the damage. The damaged lines stay in place, so ``remit audit
  verify`` still reports them.

If a write fails (its line may or may not have reached the sink), the next append first writes
a ``recover`` record (``prev`` = 64 zeros, preceded by a newline in case a line was torn) so
the chain continues as a new, verifiable segment and the gap stays visible.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import msgspec

from remit.audit.lines import Entry, seal
from remit.audit.records import (
    GENESIS,
    ChainRecord,
    ChainStart,
    DecisionRecord,
    OutcomeRecord,
    format_time,
    new_record_id,
    utc_now,
)
from remit.audit.sinks import AuditSettings, Sink, sink_from_settings
from remit.audit.verify import verify_tail
from remit.errors import AuditError


class AuditChain:
    """Appends sealed records to a sink, one chain per process.

    Safe for any number of concurrent tasks on one event loop; the head is also guarded by a
    lock so threads cannot fork it (a :class:`~remit.audit.sinks.FileSink` itself must be used
    from its event loop).
    """

    def __init__(
        self,
        sink: Sink,
        *,
        server: str,
        pod: str,
        head: str = GENESIS,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.sink = sink
        self.server = server
        self.pod = pod
        self._head = head
        self._clock = clock
        self._lock = threading.Lock()
        self._failures_seen = sink.failures

    @property
    def head(self) -> str:
        """The hash of the last record handed to the sink (expose it to anchor the chain)."""
        return self._head

    def _marker(self, start: ChainStart, message: str) -> ChainRecord:
        return ChainRecord(
            id=new_record_id(),
            time=format_time(self._clock()),
            server=self.server,
            pod=self.pod,
            start=start,
            message=message,
        )

    def _submit(self, entry: Entry, prefix: bytes = b"") -> asyncio.Future[None] | None:
        """Advance the head to ``entry`` and hand its line to the sink (lock held)."""
        self._head = entry.hash
        return self.sink.submit(prefix + entry.line)

    async def mark(self, start: ChainStart, message: str = "") -> Entry:
        """Write a ``chain`` record; ``resume`` links to the head, other starts to genesis."""
        with self._lock:
            prev = self._head if start == "resume" else GENESIS
            entry = seal(self._marker(start, message), prev)
            prefix = b"" if start in ("genesis", "resume") else b"\n"
            future = self._submit(entry, prefix)
        if future is not None:
            await future
        return entry

    async def append(self, record: DecisionRecord | OutcomeRecord) -> Entry:
        """Seal ``record`` after the head and return once its line is written (and synced).

        Raises :class:`AuditError` when the sink fails or times out.
        """
        futures: list[asyncio.Future[None]] = []
        with self._lock:
            failures = self.sink.failures
            if failures != self._failures_seen:
                self._failures_seen = failures
                lost = "a write failed before this record; records may be missing"
                marker = seal(self._marker("recover", lost), GENESIS)
                future = self._submit(marker, b"\n")
                if future is not None:
                    futures.append(future)
            try:
                entry = seal(record, self._head)
            except (TypeError, msgspec.EncodeError) as exc:
                raise AuditError(f"record {record.id} cannot be serialised: {exc}") from exc
            future = self._submit(entry)
            if future is not None:
                futures.append(future)
        error: AuditError | None = None
        for pending in futures:  # await each so no failure goes unretrieved
            try:
                await pending
            except AuditError as exc:
                error = error or exc
        if error is not None:
            raise error
        return entry

    async def close(self) -> None:
        """Flush and close the sink."""
        await self.sink.close()


def resume_point(file: Path, resume_broken: bool) -> tuple[str, ChainStart, str]:
    """Decide how a chain continues in an existing file: ``(head, start, message)``.

    Raises :class:`AuditError` when the file's tail does not verify and ``resume_broken`` is
    false.
    """
    if not file.exists():
        return GENESIS, "genesis", ""
    result = verify_tail(file)
    if result.ok and result.head is not None:
        return result.head, "resume", ""
    if result.ok:
        return GENESIS, "genesis", ""
    problem = f"the end of {file} does not verify ({result.message})"
    if not resume_broken:
        raise AuditError(
            f"{problem}; refusing to append to a damaged chain (move the file aside, or allow "
            "resume_broken to start a new chain after the damage)"
        )
    return GENESIS, "override", f"started after a damaged tail: {result.message}"


async def open_chain(
    settings: AuditSettings,
    *,
    server: str,
    pod: str,
    clock: Callable[[], datetime] = utc_now,
    fsync_function: Callable[[int], None] = os.fsync,
) -> AuditChain:
    """Open the sink ``settings`` describe, resume or start its chain, write the marker.

    Raises :class:`AuditError` when the sink cannot be opened or the marker written, or when a
    file's tail does not verify (see the module docstring).
    """
    head: str = GENESIS
    start: ChainStart = "genesis"
    message = ""
    if settings.sink == "file" and settings.path is not None:
        head, start, message = resume_point(settings.path, settings.resume_broken)
    sink = sink_from_settings(settings, fsync_function=fsync_function)
    chain = AuditChain(sink, server=server, pod=pod, head=head, clock=clock)
    try:
        await chain.mark(start, message)
    except AuditError:
        await sink.close()
        raise
    return chain
