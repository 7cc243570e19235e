"""When one MCPServer's sync runs: on a wake, at an expiry, at the periodic check, on retry.

An asyncio task owned by ``remit_operator.syncers.Syncers`` runs ``Syncer.run`` for each
MCPServer (not a kopf daemon: those put a finalizer on the object). It wakes when a resource
that takes part in the bundle changes (``touch``), at the bundle's ``nextExpiry`` (so an
expired grant leaves the bundle on time even if nothing is written), and about every
``REMIT_RESYNC_SECONDS`` (spread and jittered) to read every sidecar's digest and push again to
any that differ (a restarted sidecar, a drift). Wakes and expiries are urgent; the first sync,
the periodic check and retries wait for a periodic slot (``remit_operator.lanes``). What a
pass does is ``sync.py``; this mixin only decides when, so the scheduling reads on its own.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

from remit.errors import RemitError
from remit_operator.bundling import Signed
from remit_operator.lanes import next_wake, wait_any
from remit_operator.runtime import Runtime

log = logging.getLogger(__name__)


class SyncLoop:
    """The task body of ``Syncer`` (``sync.py``): the state it reads, and ``run``."""

    ref: str
    rt: Runtime
    wake: asyncio.Event
    signed: Signed | None
    _retry: float | None  # seconds until failed sidecars are tried again

    async def sync(self, *, check_all: bool = False) -> object:
        """One pass (``Syncer.sync``)."""
        raise NotImplementedError

    async def run(self, stopped: Any) -> None:
        """The task body: sync now, then on every wake, expiry and periodic check, until stopped.

        A wake or an expiry is urgent (``remit_operator.lanes``); the first sync, the periodic
        check and the retry of failed pushes take the periodic lane, which a wake abandons.
        """
        await self.rt.ready()  # nothing is signed before the signing key is loaded
        lanes = self.rt.lanes
        interval = self.rt.settings.sync.resync_seconds
        next_check = self.rt.clock()  # the first sync reads what every sidecar holds
        first = True
        retry_at: datetime | None = None
        self.wake.clear()  # what was touched before the loop ran is in the first sync
        while not stopped:
            now = self.rt.clock()
            expiry = self.signed.bundle.next_expiry if self.signed else None
            ran = False
            if self.wake.is_set() or (expiry is not None and now >= expiry):
                self.wake.clear()
                async with lanes.urgent():
                    await self._logged(check_all=False)
                ran = True
            elif now >= next_check or (retry_at is not None and now >= retry_at):
                full = now >= next_check
                async with lanes.periodic(self.wake) as entered:
                    if entered and not stopped:
                        await self._logged(check_all=full)
                if not entered:
                    continue  # woken meanwhile: that urgent sync goes first
                ran = True
                if full:
                    spread = lanes.spread(interval, first=first)
                    next_check = self.rt.clock() + timedelta(seconds=spread)
                    first = False
            if ran:
                retry = self._retry
                retry_at = None if retry is None else self.rt.clock() + timedelta(seconds=retry)
            expiry = self.signed.bundle.next_expiry if self.signed else None
            deadline = next_check if retry_at is None else min(next_check, retry_at)
            await wait_any(self.wake, stopped, next_wake(self.rt.clock(), expiry, deadline))

    async def _logged(self, *, check_all: bool) -> None:
        try:
            await self.sync(check_all=check_all)
        except (RemitError, OSError) as exc:
            log.exception("sync of %s failed: %s", self.ref, exc)


__all__ = ["SyncLoop"]
