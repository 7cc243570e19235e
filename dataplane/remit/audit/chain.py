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

A ``genesis`` marker written by a restarted sidecar names, in ``after``, the head of its pod's
previous chain as the operator last anchored it (``AuditSettings.anchor``), so a verifier given
both logs and the anchors sees the two segments as one pod's history.

If records are lost (a write failed and was undone, the sink stalled, or its queue was full:
see ``writer.py``), the next append first writes a ``recover`` record (``prev`` = 64 zeros,
preceded by a newline in case a line was torn) naming the gap: ``after`` is the hash of the
last record that was written and ``lost`` how many were not. The chain continues as a new
segment, and ``remit audit verify`` checks that the marker follows that record and reports the
gap.

Unconfirmed allows. A stalled sink fails its waiting callers while the write in progress still
completes: an allow record can reach the log although the gateway, told it was not written,
failed closed and never forwarded the call. The gateway reports each such decision with
:meth:`AuditChain.not_forwarded`; the next ``recover`` marker names them (``notForwarded``),
written even when no record was lost, so the log never says "allowed" without saying that the
call did not happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import msgspec

from remit.audit.health import SinkHealth
from remit.audit.lines import Entry, seal
from remit.audit.records import (
    GENESIS,
    ChainRecord,
    ChainStart,
    ConsentRecord,
    DecisionRecord,
    OutcomeRecord,
    format_time,
    new_record_id,
    utc_now,
)
from remit.audit.sinks import AuditSettings, Sink, sink_from_settings
from remit.audit.syncer import SyncPoint
from remit.audit.verify import verify_tail
from remit.errors import AuditError

MAX_NOT_FORWARDED = 1000
"""How many decision ids one ``recover`` marker names; more are counted in its message."""


class AuditChain:
    """Appends sealed records to a sink, one chain per process.

    Safe for any number of concurrent tasks on one event loop; the head is also guarded by a
    lock so threads cannot fork it (the sink's futures belong to the loop that first used it).
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
        self._unsent: list[str] = []  # allow decisions not forwarded, for the next marker
        self._unsent_dropped = 0  # beyond MAX_NOT_FORWARDED: counted in the marker's message
        #: Keys the argument digests of records built for this chain (None: plain sha256).
        self.digest_key: bytes | None = None

    @property
    def head(self) -> str:
        """The hash of the last record handed to the sink (expose it to anchor the chain)."""
        return self._head

    def _marker(
        self,
        start: ChainStart,
        message: str,
        after: str | None = None,
        lost: int | None = None,
        unsent: tuple[str, ...] = (),
    ) -> ChainRecord:
        return ChainRecord(
            id=new_record_id(),
            time=format_time(self._clock()),
            server=self.server,
            pod=self.pod,
            start=start,
            message=message,
            after=after,
            lost=lost,
            not_forwarded=unsent,
        )

    def not_forwarded(self, decision_id: str) -> None:
        """The allow ``decision_id`` was refused or unconfirmed by the sink and its call was
        not forwarded: the next ``recover`` marker says so (see the module docstring)."""
        with self._lock:
            if len(self._unsent) < MAX_NOT_FORWARDED:
                self._unsent.append(decision_id)
            else:
                self._unsent_dropped += 1

    def _submit(
        self, entry: Entry, follows: str | None, *, marker: bool = False, newline: bool = False
    ) -> asyncio.Future[None]:
        """Hand ``entry``'s line to the sink and advance the head to it (lock held).

        A marker is not counted as a lost record if it fails, and may start a segment after
        lost records; ``newline`` puts it on a line of its own in case a line before it was torn.
        """
        line = b"\n" + entry.line if newline else entry.line
        digest = entry.record.hash
        future = self.sink.submit(line, key=digest, follows=follows, counted=not marker)
        self._head = digest
        return future

    def _recover(self) -> asyncio.Future[None] | None:
        """If records were lost since the sink's tail, queue the ``recover`` marker naming the
        gap (lock held); raises :class:`AuditError` when the sink refuses it."""
        lost, tail, reason = self.sink.gap
        if not lost and not self._unsent and not self._unsent_dropped:
            return None
        unsent, dropped = tuple(self._unsent), self._unsent_dropped
        message = f"{lost} record(s) not written" + (f": {reason}" if lost else "")
        if unsent or dropped:
            message += (
                f"; {len(unsent) + dropped} allowed call(s) not forwarded: their records "
                "were not confirmed by the audit sink, so the gateway denied them"
            )
            if dropped:
                message += f" ({dropped} not named)"
        marker = self._marker("recover", message, after=tail, lost=lost, unsent=unsent)
        entry = seal(marker, GENESIS)
        future = self._submit(entry, tail, marker=True, newline=True)
        self._unsent, self._unsent_dropped = [], 0
        future.add_done_callback(functools.partial(self._restore, unsent, dropped))
        return future

    def _restore(self, unsent: tuple[str, ...], dropped: int, future: asyncio.Future[None]) -> None:
        """A marker naming ``unsent`` failed: name them again in the next one."""
        if future.cancelled() or future.exception() is not None:
            with self._lock:
                self._unsent[:0] = unsent
                self._unsent_dropped += dropped

    async def mark(self, start: ChainStart, message: str = "", after: str | None = None) -> Entry:
        """Write a ``chain`` record; ``resume`` links to the head, other starts to genesis.
        ``after`` on a ``genesis`` names the previous anchored head of this pod."""
        with self._lock:
            prev = self._head if start == "resume" else GENESIS
            entry = seal(self._marker(start, message, after=after), prev)
            newline = start not in ("genesis", "resume")
            future = self._submit(entry, self.sink.gap[1], marker=True, newline=newline)
        await future
        return entry

    async def append(self, record: DecisionRecord | OutcomeRecord | ConsentRecord) -> Entry:
        """Seal ``record`` after the head and return once its line is written (and synced).

        After lost records, a ``recover`` marker goes first. Raises :class:`AuditError` when
        the sink refuses the line, fails, or times out.
        """
        futures: list[asyncio.Future[None]] = []
        error: AuditError | None = None
        with self._lock:
            try:
                marker = self._recover()
            except AuditError as exc:
                error, marker = exc, None
            if marker is not None:
                futures.append(marker)
            head = self._head
            try:
                entry = seal(record, head)
            except (TypeError, msgspec.EncodeError) as exc:
                raise AuditError(f"record {record.id} cannot be serialised: {exc}") from exc
            try:
                futures.append(self._submit(entry, head))
            except AuditError as exc:  # refused: counted by the sink, reported by the marker
                error = error or exc
        for pending in futures:  # await each so no failure goes unretrieved
            try:
                await pending
            except AuditError as exc:
                error = error or exc
        if error is not None:
            raise error
        return entry

    def sync_point(self) -> SyncPoint | None:
        """What to wait for before acting on the records appended so far being durable: None
        when an append returns only once its record is durable (or never will be: stdout,
        ``fsync`` off, ``fsync_wait`` off). See ``syncer.py``."""
        point = getattr(self.sink, "sync_point", None)
        return point() if point is not None else None

    def health(self) -> SinkHealth:
        """Whether the sink can write (for ``/readyz`` and metrics).

        While the sink is failing, this also queues the ``recover`` marker, so a sink whose disk
        has room again becomes ready without waiting for a call (which an unready pod would
        not get).
        """
        health = self.sink.health()
        owed = health.state == "ok" and bool(self._unsent)  # a stall ended with nothing lost
        if (health.state == "failing" or owed) and health.queued == 0:  # and no probe in flight
            with self._lock:
                try:
                    probe = self._recover()
                except AuditError:
                    probe = None
            if probe is not None:
                probe.add_done_callback(_retrieve)
        return health

    async def close(self) -> None:
        """Write a marker still owed for calls not forwarded (if the sink can), then flush
        and close the sink."""
        with self._lock:
            try:
                owed = self._recover() if self._unsent else None
            except AuditError:
                owed = None
        if owed is not None:
            with contextlib.suppress(AuditError):
                await owed
        await self.sink.close()


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark a probe's failure as seen (the sink counts and reports it)."""
    if not future.cancelled():
        future.exception()


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
    chain.digest_key = settings.digest_key
    after = None
    if start == "genesis" and settings.anchor:
        after = settings.anchor
        message = message or "this pod restarted; its previous chain was anchored at after"
    try:
        await chain.mark(start, message, after)
    except AuditError:
        await sink.close()
        raise
    return chain
