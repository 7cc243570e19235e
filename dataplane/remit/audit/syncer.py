"""The sync thread of a file sink: group-committed ``fsync`` off the write path.

Why: an ``fsync`` on the writer thread puts one disk flush on every call's path twice (the
decision before forwarding, the outcome after). Here the writer thread only writes (a line is
in the kernel when its caller resumes) and wakes this thread, which ``fsync``s whenever lines
were written since its last sync began: one sync for every line written while the last one
ran (group commit), never on the event loop.

Each written batch is a *generation*. :meth:`GroupSync.point` names the newest generation
written so far; a caller whose line is written takes a point and may wait for it
(:meth:`SyncPoint.wait`). The gateway takes one for each decision record, forwards the call
while its sync runs, and releases nothing of the upstream's answer until the point is durable
(``gateway/durability.py``). A point already durable costs nothing to check; the loop is
woken from this thread only when someone waits.

With a ``delay`` (the gateway's default), taking a point is what starts a sync at once; a
line nobody takes a point for (an outcome) is synced by the next sync someone waits for (the
next decision's), or ``delay`` seconds after it was written, whichever comes first. At a low
call rate that is one ``fsync`` per call instead of two. Without a ``delay`` every write is
synced right behind (``REMIT_AUDIT_FSYNC_WAIT=false``).

Bounds, fail closed:

- *Stalled*: a written line not synced within ``timeout`` seconds of its write (a sync that
  does not return). Waiters fail with :class:`AuditError` at the latest ``timeout`` after the
  oldest unsynced line was written (however late they began to wait), :meth:`problem` names
  the stall (the sink then refuses new lines and ``/readyz`` fails) until the sync returns. A
  point that failed stays failed (:class:`SyncPoint`: one verdict per point).
- *Failed*: a sync that raises. After a failed ``fsync`` nothing says what reached the disk,
  so every waiter fails and :meth:`problem` refuses every later line for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable

from remit.errors import AuditError

log = logging.getLogger(__name__)

DEFAULT_SYNC_DELAY = 0.05
"""Seconds a line nobody waits for (an outcome) may stay unsynced for the next sync someone
waits for (the next decision) to cover it too: at a low call rate one fsync per call, not two."""


class GroupSync:
    """Syncs one descriptor behind its writer (see the module docstring).

    Woken through a bare lock, as the writer thread is (``writer.py``): a ``threading.Event``
    is a ``Condition``, whose wait and notify take the GIL several times more.
    """

    def __init__(
        self,
        fd: int,
        name: str,
        fsync_function: Callable[[int], None],
        *,
        timeout: float,
        clock: Callable[[], float],
        delay: float | None = None,
    ) -> None:
        self._fd = fd
        self._name = name
        self._fsync_function = fsync_function
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Lock()  # held while the thread sleeps; released to wake it
        self._wake.acquire()
        self._sleeping = False
        self._stopping = False
        self.written = 0  # generations written (one per batch the writer wrote)
        self.durable = 0  # generations on stable storage
        self._oldest: float | None = None  # when the oldest line not yet durable was written
        self._after: float | None = None  # ... the oldest written after the running sync began
        self._syncing = False
        self._waiters: list[tuple[int, asyncio.Future[None], asyncio.TimerHandle]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.error = ""
        self.syncs = 0
        self._delay = delay
        self._wanted = 0  # the newest generation a caller waits for (point)
        self._thread = threading.Thread(target=self._run, name=f"{name} sync", daemon=True)
        self._thread.start()

    # -- the writer thread ----------------------------------------------------------------

    def wrote(self) -> None:
        """A batch was written (called by the writer thread once its write returned): sync it
        now, or with a ``delay`` once someone takes a point or within ``delay`` seconds."""
        now = self._clock()
        with self._lock:
            self.written += 1
            first = self._oldest is None
            if first:
                self._oldest = now
            elif self._syncing and self._after is None:
                self._after = now
            if self._delay is None or first:
                self._wake_thread()  # (lazy: so it times the delay from the oldest write)

    def _wake_thread(self) -> None:
        """Wake the sync thread if it sleeps (lock held)."""
        if self._sleeping:
            self._sleeping = False
            self._wake.release()

    # -- the loop side --------------------------------------------------------------------

    def point(self) -> SyncPoint:
        """The newest generation written so far (it holds every line whose write returned);
        its sync starts now if it has not (taking a point is what makes a sync urgent)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        generation = self.written
        if generation > self.durable and generation > self._wanted:
            with self._lock:
                self._wanted = generation
                self._wake_thread()
        return SyncPoint(self, generation)

    def problem(self, now: float) -> str:
        """Why lines cannot be trusted to reach the disk now ('' if they can)."""
        if self.error:
            return f"{self._name}: fsync failed ({self.error}); records may not be on disk"
        oldest = self._oldest
        if oldest is not None and now - oldest >= self._timeout:
            return (
                f"{self._name} stalled: a record written {now - oldest:.3g}s ago is not synced "
                f"(bound {self._timeout:g}s)"
            )
        return ""

    def _check(self, generation: int) -> asyncio.Future[None] | None:
        """None if ``generation`` is durable, a future to await if not; raises if it never
        will be (the sync failed or stalled). The future fails ``timeout`` seconds after the
        oldest line not yet durable was written (so at the latest ``timeout`` after the
        point's own line), not ``timeout`` after the wait began."""
        if self.durable >= generation:
            return None
        now = self._clock()
        problem = self.problem(now)
        if problem:
            raise AuditError(problem)
        loop = self._loop
        assert loop is not None
        future = loop.create_future()
        with self._lock:
            if self.durable >= generation:
                return None
            written = self._oldest if self._oldest is not None else now
            left = max(0.0, written + self._timeout - now)
            timer = loop.call_later(left, self._expire, generation, future)
            self._waiters.append((generation, future, timer))
        return future

    def _expire(self, generation: int, future: asyncio.Future[None]) -> None:
        """Timer: a waiter not served within ``timeout`` of the write fails (the sync stalled)
        unless the sync completed meanwhile (its settle not yet run: same loop turn)."""
        if future.done():
            return
        if self.durable >= generation:
            future.set_result(None)
        else:
            future.set_exception(AuditError(self.problem(self._clock()) or self._stalled()))

    def _stalled(self) -> str:
        return f"{self._name} stalled: a sync has not completed within {self._timeout:g}s"

    def _settle(self, durable: int, error: str) -> None:
        """On the loop: resolve the waiters ``durable`` covers, or fail them all."""
        with self._lock:
            if error:
                ready, self._waiters = self._waiters, []
            else:
                ready = [w for w in self._waiters if w[0] <= durable]
                self._waiters = [w for w in self._waiters if w[0] > durable]
        for _, future, timer in ready:
            timer.cancel()
            if future.done():
                continue
            if error:
                future.set_exception(AuditError(f"{self._name}: fsync failed ({error})"))
            else:
                future.set_result(None)

    # -- the sync thread ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                wait = self._wait()
                self._sleeping = wait != 0.0
            late = False
            if wait is None:
                self._wake.acquire()  # until wrote, point or stop releases it
            elif wait > 0.0 and not self._wake.acquire(timeout=wait):
                late = True  # the delay is up
                with self._lock:
                    if self._sleeping:
                        self._sleeping = False
                    else:  # a wake came as the wait ended: take it back
                        self._wake.acquire()
            with self._lock:
                if self.written == self.durable and self._stopping:
                    return
                due = late or self._wait() == 0.0
            if due and not self.sync():
                return

    def _wait(self) -> float | None:
        """How long to wait before the next sync (lock held): 0 now, None until woken."""
        if self.written == self.durable:
            return 0.0 if self._stopping else None
        if self._delay is None or self._stopping or self._wanted > self.durable:
            return 0.0
        oldest = self._oldest if self._oldest is not None else self._clock()
        return max(0.0, oldest + self._delay - self._clock())

    def sync(self) -> bool:
        """Sync what was written (on the sync thread, or on the writer thread right after a
        write when the sink has no sync thread); False once a sync has failed."""
        with self._lock:
            target = self.written
            if self.error:
                return False
            if target == self.durable:
                return True
            self._syncing, self._after = True, None
        error = ""
        try:
            self._fsync_function(self._fd)
        except OSError as exc:
            error = exc.strerror or str(exc)
        except Exception as exc:  # noqa: BLE001 - every failure must reach the waiters
            error = repr(exc)
        with self._lock:
            self._syncing = False
            if error:
                self.error = error
            else:
                self.durable, self._oldest, self._after = target, self._after, None
                self.syncs += 1
            waiting = bool(self._waiters)
        if error:
            log.error("%s: fsync failed: %s", self._name, error)
        if waiting and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                self._loop.call_soon_threadsafe(self._settle, target, error)
        return not error

    def stop(self) -> None:
        """Sync what was written and stop (the writer thread has stopped)."""
        with self._lock:
            self._stopping = True
            if self._sleeping:
                self._sleeping = False
                self._wake.release()
        self._thread.join()


class SyncPoint:
    """A generation of a :class:`GroupSync`: every line written before the point was taken.

    A point has one verdict: once a wait on it has failed (the sync failed or stalled) it
    stays failed, even if the sync completes later, so the outcome recorded for a call and the
    gate on its answer (``gateway/durability.py``) always agree; once it is durable it stays
    durable. Concurrent waits share one future (a cancelled waiter does not cancel it).
    """

    __slots__ = ("_error", "_future", "_sync", "generation")

    def __init__(self, sync: GroupSync, generation: int) -> None:
        self._sync = sync
        self.generation = generation
        self._error: str | None = None  # the verdict: None undecided, '' durable, else why not
        self._future: asyncio.Future[None] | None = None

    def durable(self) -> bool:
        """Whether the point is on stable storage now (False for good once a wait failed)."""
        if self._error is None and self._sync.durable >= self.generation:
            self._error = ""
        return self._error == ""

    async def wait(self) -> None:
        """Return once the point is durable; :class:`AuditError` if the sync failed or did not
        complete within the sink's timeout of the write (the same verdict for every wait)."""
        if self._error is None and not self.durable():
            try:
                if self._future is None:
                    self._future = self._sync._check(self.generation)
                if self._future is not None:
                    await asyncio.shield(self._future)
                self._error = ""
            except AuditError as exc:
                self._error = str(exc) or "the record did not sync"
        if self._error:
            raise AuditError(self._error)
