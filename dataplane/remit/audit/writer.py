"""The write path of every sink: a bounded queue on the event loop, one writer thread behind it.

Why: a blocking ``write`` on the event loop (a stdout pipe nobody reads, a slow or full disk)
froze the whole gateway, ``/healthz`` included. Here the loop only appends a line to a queue and
gets a future; one thread per sink writes the queued lines in order, in batches, and resolves
each future once its line is written (and, for a file with ``fsync``, synced). Lines queued
while a write or ``fsync`` runs go out together in the next one: group commit, so concurrent
callers share syscalls while each still resumes only after its own line is durable. An idle
thread is woken once per loop tick that queued lines (a callback at the end of the tick), so
every line of the tick goes out in one batch for one hand-over.

Back-pressure policy. Nothing is dropped silently: every line that does not reach the
destination fails its caller with :class:`~remit.errors.AuditError` (the gateway then denies
with ``audit_unavailable``) and is counted in ``lost``.

- A line is refused at once when the queue already holds ``max_queue_bytes``, when the sink is
  stalled, or when lines were lost since the last accepted line and no segment start (the
  chain's ``recover`` marker) has been accepted yet.
- *Stalled*: a line not written within ``timeout`` seconds. Every waiting caller fails, lines
  not yet handed to the thread are discarded, and new lines are refused until the write in
  progress returns (a reader resumes, a disk answers). The write in progress still completes.
- A failed write fails its batch and everything queued behind it (those lines chain onto lines
  that are gone); the sink's :meth:`LineWriter._undo` removes any partial line (a file is
  truncated back to the end of its last complete line).

``tail`` is the key (the record hash) of the last line accepted and not lost, and ``gap`` the
number of lines lost since it: the chain writes a ``recover`` marker naming both before its next
record. Health (``ok``, ``stalled``, ``failing``, ``closed``) feeds ``/readyz`` and metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from remit.audit.health import SinkHealth, SinkState
from remit.errors import AuditError

DEFAULT_QUEUE_BYTES = 16 * 1024 * 1024
_RECOVERING = "; a recover marker must come first"


@dataclass(slots=True)
class _Line:
    data: bytes
    key: str
    counted: bool
    lost_at: int  # ``lost`` when the line was accepted: the gap it closes
    future: asyncio.Future[None]
    queued_at: float
    rest: bool = False  # the rest of a line partly written on the loop: never discarded


class LineWriter:
    """Ordered lines to one destination through a writer thread (see the module docstring).

    Subclasses implement :meth:`_write` (all of ``data``, or raise) and may implement
    :meth:`_undo` (remove a partly written batch) and :meth:`_release`.
    """

    name = "audit sink"

    def __init__(
        self,
        *,
        timeout: float = 5.0,
        max_queue_bytes: int = DEFAULT_QUEUE_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._timeout = timeout
        self._max_queue_bytes = max_queue_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Lock()  # held while the writer sleeps; released to wake it
        self._wake.acquire()
        self._sleeping = False
        self._kick_due = False  # a wake is scheduled for the end of this loop tick
        self._queue: deque[_Line] = deque()
        self._queued_bytes = 0
        self._inflight: list[_Line] = []
        self._busy_since: float | None = None
        self._tail: str | None = None
        self._tail_lost = 0
        self._durable: str | None = None
        self._durable_lost = 0
        self._lost = 0
        self._failures = 0
        self._error = ""
        self._gap_reason = ""
        self._failing = False
        self._stalled = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._timer: asyncio.TimerHandle | None = None

    # -- what the chain reads -------------------------------------------------------------

    @property
    def failures(self) -> int:
        """How many batches failed to write."""
        return self._failures

    @property
    def lost(self) -> int:
        """How many (counted) lines never reached the destination since the sink opened."""
        return self._lost

    @property
    def tail(self) -> str | None:
        """The key of the last line accepted and not lost (``None`` before the first)."""
        with self._lock:
            return self._tail

    @property
    def gap(self) -> tuple[int, str | None, str]:
        """``(lines lost since the tail, the tail, why they were lost)``."""
        with self._lock:
            return self._lost - self._tail_lost, self._tail, self._gap_reason

    def health(self) -> SinkHealth:
        """The sink's state now (a write blocked beyond ``timeout`` counts as stalled)."""
        with self._lock:
            queued = len(self._queue) + len(self._inflight)
            state: SinkState = "ok"
            reason = ""
            if self._closed:
                state, reason = "closed", f"{self.name} is closed"
            elif self._stalled or self._blocked(self._clock()):
                state, reason = "stalled", self._stall_message()
            elif self._failing:
                state, reason = "failing", f"the last write failed: {self._error}"
            return SinkHealth(state, reason, queued, self._lost, self._failures)

    # -- the loop side --------------------------------------------------------------------

    def submit(
        self, line: bytes, *, key: str, follows: str | None, counted: bool = True
    ) -> asyncio.Future[None]:
        """Queue ``line`` (whose hash is ``key``); the future completes once it is written.

        ``follows`` is the key the line chains onto (a segment start passes the tail it comes
        after, and ``counted=False``, which also marks it as closing a gap). Raises
        :class:`AuditError` at once when the line is refused (see the module docstring).
        """
        loop = self._start()
        now = self._clock()
        with self._lock:
            doomed = self._stall() if self._blocked(now) and not self._stalled else []
            refusal = self._refusal(len(line), follows, segment=not counted)
            if refusal:
                if counted:
                    self._lose(1, refusal, keep_reason=refusal.endswith(_RECOVERING))
            else:
                future = loop.create_future()
                self._tail, self._tail_lost = key, self._lost
                written = self._write_now(line) if not self._queue and not self._inflight else 0
                if written == len(line):
                    self._durable, self._durable_lost = key, self._lost
                    self._failing = False
                    future.set_result(None)
                else:  # the writer thread writes the rest
                    data = line[written:]
                    rest = written > 0
                    self._queue.append(_Line(data, key, counted, self._lost, future, now, rest))
                    self._queued_bytes += len(data)
                    if self._sleeping and not self._kick_due:
                        self._kick_due = True
                        loop.call_soon(self._kick)
        if doomed:  # the message is formatted only for callers who get it
            self._fail(doomed, self._stall_message())
        if refusal:
            raise AuditError(refusal)
        if self._timer is None and not future.done():
            self._timer = loop.call_later(self._timeout, self._watch)
        return future

    def _write_now(self, line: bytes) -> int:
        """Write what can be written without blocking, on the loop (lock held, writer idle);
        how many bytes. The default writes nothing: every line goes through the thread."""
        return 0

    def _refusal(self, size: int, follows: str | None, *, segment: bool) -> str:
        """Why a line cannot be accepted now ('' if it can); lock held."""
        if self._closed:
            return f"{self.name} is closed"
        if self._stalled:
            return self._stall_message()
        if self._tail is not None and follows != self._tail:
            return f"{self.name}: the record does not follow the last line written (lines lost)"
        if not segment and self._lost != self._tail_lost:
            return f"{self.name}: records were lost ({self._gap_reason}){_RECOVERING}"
        if self._queued_bytes and self._queued_bytes + size > self._max_queue_bytes:
            return f"{self.name} queue full ({self._queued_bytes} bytes waiting)"
        return ""

    def _blocked(self, now: float) -> bool:
        return self._busy_since is not None and now - self._busy_since >= self._timeout

    def _stall_message(self) -> str:
        return f"{self.name} stalled: a write has not completed within {self._timeout:g}s"

    def _stall(self) -> list[_Line]:
        """Declare the sink stalled: discard the queue; return the lines whose callers fail.

        The rest of a line partly written on the loop (always first in the queue) stays
        queued, as a write in progress does: discarding it would leave a torn line."""
        self._stalled = True
        kept = [self._queue.popleft()] if self._queue and self._queue[0].rest else []
        discarded = list(self._queue)
        self._queue.clear()
        self._queue.extend(kept)
        self._queued_bytes = sum(len(line.data) for line in kept)
        unfinished = self._inflight + kept
        if unfinished:
            self._tail, self._tail_lost = unfinished[-1].key, unfinished[-1].lost_at
        elif discarded:
            self._tail, self._tail_lost = self._durable, self._durable_lost
        self._lose(sum(line.counted for line in discarded), self._stall_message())
        return unfinished + discarded

    def _lose(self, count: int, reason: str, *, keep_reason: bool = False) -> None:
        """Count ``count`` lines as lost because of ``reason``; lock held."""
        self._lost += count
        if count and not keep_reason:
            self._gap_reason = reason

    def _watch(self) -> None:
        """Timer: fail everyone behind a line that has waited ``timeout`` seconds."""
        self._timer = None
        loop = self._loop
        now = self._clock()
        with self._lock:
            waiting = self._inflight or self._queue
            if self._stalled or not waiting:
                return
            oldest = waiting[0].queued_at
            doomed = self._stall() if now - oldest >= self._timeout else []
        if doomed:
            self._fail(doomed, self._stall_message())
        elif loop is not None:
            self._timer = loop.call_later(oldest + self._timeout - now, self._watch)

    @staticmethod
    def _fail(lines: list[_Line], message: str) -> None:
        for line in lines:
            if not line.future.done():
                line.future.set_exception(AuditError(message))

    def _settle(self, batch: list[_Line], failed: list[_Line], error: str) -> None:
        """On the loop: resolve a written batch, or fail ``failed`` with ``error``."""
        if error:
            self._fail(failed, error)
            return
        for line in batch:
            if not line.future.done():
                line.future.set_result(None)

    def _start(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        return loop

    # -- the writer thread ----------------------------------------------------------------

    def _kick(self) -> None:
        """On the loop, once per tick that queued lines for an idle writer: wake it once for
        all of them. Waking on each line handed the GIL to the thread in the middle of the
        tick, for a batch of one line, while the tick went on queueing more."""
        with self._lock:
            self._kick_due = False
            self._wake_writer()

    def _wake_writer(self) -> None:
        """Wake the writer if it sleeps (lock held). A bare lock, not a ``Condition``: this
        hand-over is on every record's path and a ``Condition`` costs several times more."""
        if self._sleeping:
            self._sleeping = False
            self._wake.release()

    def _run(self) -> None:
        while True:
            with self._lock:
                sleep = self._sleeping = not self._queue and not self._closed
            if sleep:
                self._wake.acquire()  # until _wake_writer releases it
            with self._lock:
                if not self._queue:
                    if self._closed:
                        return
                    continue
                batch = list(self._queue)
                self._queue.clear()
                self._queued_bytes = 0
                self._inflight, self._busy_since = batch, self._clock()
            error = self._commit(b"".join(line.data for line in batch))
            failed: list[_Line] = []
            with self._lock:
                self._inflight, self._busy_since, self._stalled = [], None, False
                if not error:
                    self._durable, self._durable_lost = batch[-1].key, batch[-1].lost_at
                    self._failing = False
                else:
                    # Everything queued behind the batch chains onto lines that are gone.
                    failed = batch + list(self._queue)
                    self._queue.clear()
                    self._queued_bytes = 0
                    self._tail, self._tail_lost = self._durable, self._durable_lost
                    self._lose(sum(line.counted for line in failed), error)
                    self._failures += 1
                    self._failing, self._error = True, error
            assert self._loop is not None
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
                self._loop.call_soon_threadsafe(self._settle, batch, failed, error)

    def _commit(self, data: bytes) -> str:
        """Write ``data``; on failure undo the partial write and return the error ('' if ok)."""
        try:
            self._write(data)
        except OSError as exc:
            error = f"cannot write to {self.name}: {exc.strerror or exc}"
        except Exception as exc:  # noqa: BLE001 - every failure must reach the waiters
            error = f"{self.name} write failed: {exc!r}"
        else:
            return ""
        self._undo()
        return error

    def _write(self, data: bytes) -> None:
        raise NotImplementedError

    def _undo(self) -> None:
        """Remove what a failed batch left behind, if the destination allows it."""

    def _release(self) -> None:
        """Release the destination once the thread has stopped."""

    # -- closing --------------------------------------------------------------------------

    async def close(self) -> None:
        """Write what is queued (waiting at most ``timeout``), then release the destination."""
        if self._closed:
            return
        with self._lock:
            self._closed = True
            self._wake_writer()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        thread = self._thread
        if thread is not None:
            await asyncio.to_thread(thread.join, self._timeout)
            await asyncio.sleep(0)  # let the thread's last settle run
            if thread.is_alive():
                with self._lock:
                    left = self._inflight + list(self._queue)
                self._fail(left, f"{self.name} closed before these lines were written")
                return  # never release a destination the thread may still write to
        self._release()
