"""The sync loop of every MCPServer as an asyncio task of the operator's own (no finalizer).

kopf daemons would run these loops, but kopf puts a finalizer on every object that has a
daemon: with the operator stopped (scaled to 0, uninstalled, crashed) a deleted MCPServer, and
a namespace holding one, would then wait for it forever. So ``Syncers`` owns one ``Syncer`` per
MCPServer and runs its loop as a task: started when kopf's index or event handlers see the
server (they need no finalizer), stopped when the server is deleted or starts terminating, and
stopped for every server while this replica does not lead (``remit_operator.leader``: kopf
peering pauses the standby's watches, and its loops stop with them). Nothing needs cleaning up
when a server goes: the NetworkPolicy it owns and the objects of its namespace are collected by
Kubernetes through their ownerReferences.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from remit_operator.runtime import Runtime
from remit_operator.sync import Syncer

log = logging.getLogger(__name__)
STOP_SECONDS = 5.0  # how long ``close`` waits for the cancelled loops to end


class Stop:
    """The stop flag a sync loop checks (truthy once set) and can wait for."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    def __bool__(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()


class Syncers:
    """The syncer of each MCPServer and the task running it: the registry's only owner."""

    def __init__(self, runtime: Runtime, *, leading: bool = False) -> None:
        self.rt = runtime
        self.leading = leading
        self.indexed = False  # kopf has listed every indexed kind (see ``listed``)
        self._syncers: dict[str, Syncer] = {}
        self._tasks: dict[str, tuple[asyncio.Task[None], Stop]] = {}

    def get(self, server_ref: str) -> Syncer:
        """The syncer of one MCPServer, created on first use."""
        found = self._syncers.get(server_ref)
        if found is None:
            found = self._syncers[server_ref] = Syncer(server_ref, self.rt)
        return found

    def running(self) -> set[str]:
        """The servers whose loop runs now."""
        return {ref for ref, (task, _) in self._tasks.items() if not task.done()}

    def is_running(self, server_ref: str) -> bool:
        """Whether this server's loop runs now (``running`` without building a set)."""
        entry = self._tasks.get(server_ref)
        return entry is not None and not entry[0].done()

    def ensure(self, server_ref: str) -> Syncer:
        """The syncer of a server kopf reported, its loop started if this replica leads."""
        syncer = self.get(server_ref)
        if self.leading and self.indexed and not self.is_running(server_ref):
            stop = Stop()
            task = asyncio.create_task(self._run(syncer, stop), name=f"remit sync {server_ref}")
            self._tasks[server_ref] = (task, stop)
        return syncer

    def listed(self) -> None:
        """kopf called an event handler: it does so only after listing every indexed kind, so
        the index holds every policy and grant and loops may compile from it."""
        if not self.indexed:
            self.indexed = True
            self.lead(self.leading)

    async def _run(self, syncer: Syncer, stop: Stop) -> None:
        try:
            await syncer.run(stop)
        except asyncio.CancelledError:
            raise
        except Exception:  # a loop must never die silently: log; the next event restarts it
            log.exception("the sync loop of %s ended", syncer.ref)

    def _stop(self, server_ref: str) -> asyncio.Task[None] | None:
        entry = self._tasks.pop(server_ref, None)
        if entry is None:
            return None
        task, stop = entry
        stop.set()
        syncer = self._syncers.get(server_ref)
        if syncer is not None:
            syncer.touch()  # out of its wait at once
        return task

    def forget(self, server_ref: str) -> None:
        """A deleted (or terminating) server: stop its loop, drop its syncer (a re-created
        server starts afresh)."""
        task = self._stop(server_ref)
        if task is not None:
            task.cancel()
        self._syncers.pop(server_ref, None)

    def lead(self, leading: bool) -> None:
        """Start every known server's loop (this replica leads) or stop them all (stand by)."""
        self.leading = leading
        if leading and self.indexed:
            for server_ref in list(self.rt.index.servers):
                self.ensure(server_ref)
        elif not leading:
            for server_ref in list(self._tasks):
                task = self._stop(server_ref)
                if task is not None:
                    task.cancel()

    async def close(self) -> None:
        """Stop every loop and wait for them (the operator exits)."""
        self.leading = False
        tasks = [t for t in (self._stop(r) for r in list(self._tasks)) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, STOP_SECONDS)

    def touch(self, server_refs: Iterable[str]) -> None:
        """Wake the syncers of these servers (only those the operator knows)."""
        for ref in server_refs:
            if ref in self.rt.index.servers:
                self.get(ref).touch()
