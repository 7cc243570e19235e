"""Whether this replica leads: kopf's peering rule, read from the ClusterKopfPeering object.

The per-MCPServer sync loops are the operator's own asyncio tasks (``sync.Syncers``), not kopf
daemons: kopf puts a finalizer on every object that has a daemon, so with the operator stopped
a deleted MCPServer, or its namespace, would never go away. kopf pauses its watches when
peering says another replica leads, but it tells handlers nothing, so the sync loops follow the
same rule themselves: this replica leads when no live peer (``lastseen + lifetime`` in the
future) other than itself has a priority at or above its own (kopf pauses every replica on a
tie). The peering object is read every ``PEERING_POLL_SECONDS``; a read that fails, or an object
that is missing, counts as not leading (kopf is paused then too): fail closed. Standalone
(no ``REMIT_PEERING``) always leads. A replica that finds itself leading waits
``HANDOVER_SECONDS`` (one poll and a margin: the replica that led until then has stopped its
loops by then) and reads again before its loops start, so two replicas never push at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import kopf

from remit.errors import RemitError
from remit_operator.kube import KubeClient, object_path

log = logging.getLogger(__name__)
PEERING_API = "kopf.dev/v1"
PEERING_POLL_SECONDS = 2.0
HANDOVER_SECONDS = PEERING_POLL_SECONDS + 0.5  # a replica that led stops within one poll
MAX_PEERS = 1000  # a peering object is hostile input too: bound what is read from it


def own_identity() -> str:
    """This replica's peering identity: the pod's name (``POD_ID``, as kopf reads it), else a
    fresh one. The operator passes it to kopf so that both use the same."""
    return os.environ.get("POD_ID") or f"remit@{socket.gethostname()}/{secrets.token_hex(4)}"


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)  # Python 3.11 reads the Z suffix itself
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def leads(status: Mapping[str, Any] | None, identity: str, priority: int, now: datetime) -> bool:
    """kopf's rule: no live peer but this one has a priority at or above ``priority``.

    An entry that cannot be read (no priority, a bad time) counts as a live peer that blocks:
    when in doubt, do not reconcile.
    """
    if not isinstance(status, Mapping):
        return True
    for count, (peer, info) in enumerate(status.items()):
        if count >= MAX_PEERS:
            return False
        if peer == identity:
            continue
        if not isinstance(info, Mapping):
            return False
        try:
            their = int(info.get("priority", 0))
            lifetime = int(info.get("lifetime", 60))
        except (TypeError, ValueError):
            return False
        seen = _parse_time(info.get("lastseen"))
        if seen is None:
            return False
        if seen + timedelta(seconds=lifetime) > now and their >= priority:
            return False
    return True


class Leadership:
    """Tells ``on_change`` whether this replica leads, as kopf's peering decides.

    Before a replica that stood by leads again, ``refresh`` brings what it knows up to date
    (its watches were paused meanwhile); if that fails, it keeps standing by: fail closed.
    """

    def __init__(
        self,
        kube: Callable[[], KubeClient],
        identity: str,
        on_change: Callable[[bool], None],
        clock: Callable[[], datetime],
        refresh: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._kube = kube
        self.identity = identity
        self._on_change = on_change
        self._clock = clock
        self._refresh = refresh
        self.leading: bool | None = None

    async def observe(self, leading: bool) -> None:
        """Act on what peering says: a replica that stood by refreshes before it leads."""
        if leading and self.leading is False and self._refresh is not None:
            try:
                await self._refresh()
            except RemitError as exc:
                log.warning("peering: cannot refresh before leading (standing by): %s", exc)
                leading = False
        self._set(leading)

    def _set(self, leading: bool) -> None:
        if leading != self.leading:
            log.info("peering: this replica %s", "leads" if leading else "stands by")
            self.leading = leading
            self._on_change(leading)

    async def run(self, settings: kopf.OperatorSettings) -> None:
        """Follow kopf's peering settings (read now: kopf has them after every start-up step)."""
        peering = settings.peering
        if peering.standalone or not peering.name:
            self._set(True)
            return
        path = object_path(PEERING_API, "clusterkopfpeerings", None, peering.name)
        while True:
            leading = await self._read(path, peering)
            if leading and self.leading is not True:
                # The replica that led until now learns of this one at its next poll and stops
                # its loops then: wait that out before pushing, so that no sidecar gets bundles
                # from two replicas at once, and ask again.
                await asyncio.sleep(HANDOVER_SECONDS)
                leading = await self._read(path, peering)
            await self.observe(leading)
            await asyncio.sleep(PEERING_POLL_SECONDS)

    async def _read(self, path: str, peering: Any) -> bool:
        """Whether the peering object says this replica leads; False when it cannot be read."""
        try:
            found = await self._kube().get(path)
            return leads(found.get("status"), self.identity, int(peering.priority), self._clock())
        except RemitError as exc:  # the API, or an operator not started: not leading
            log.warning("peering: cannot read %s (standing by): %s", peering.name, exc)
            return False
