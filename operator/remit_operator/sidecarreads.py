"""What a sync pass learns by reading its sidecars' ``/v1/status``, and what it believes of it.

The periodic resync reads every sidecar (``_observe``): the digest and serial it holds, the
tool pins it saw, its chain head (anchored outside the pod), its grants' last use and the
later bundle fields it knows. A bundle that uses fields some sidecar may not know asks those
not yet asked (``_too_old``) alongside the push. A serial a sidecar reports raises the serial
floor only when it can be one this operator signed (``_plausible``: a pod must not push the
operator's serials into the future). ``Syncer`` (``sync.py``) holds the state these read and
write; this mixin keeps the reading apart from compiling and pushing.
"""

from __future__ import annotations

import logging

from remit.api.mcpserver import MCPServer
from remit.times import utc_text
from remit_operator.anchors import AnchorKeeper
from remit_operator.bundlefields import BundleFields, TooOld, describe
from remit_operator.bundling import Signed
from remit_operator.deltas import Deltas
from remit_operator.errors import KubeError
from remit_operator.index import Sidecar
from remit_operator.lastuse import LastUse
from remit_operator.push import MAX_PINS, PushResult
from remit_operator.runtime import Runtime
from remit_operator.trust import plausible_serial

log = logging.getLogger(__name__)


class SidecarReads:
    """Reading sidecars for ``Syncer`` (``sync.py``), which owns the state declared here."""

    ref: str
    rt: Runtime
    signed: Signed | None
    serial_floor: int
    held: dict[str, tuple[str, str | None]]  # pod → (incarnation, digest)
    pins: dict[str, str]
    last_use: LastUse
    anchors: AnchorKeeper
    deltas: Deltas
    fields: BundleFields

    def _plausible(self, serial: int | None) -> int:
        """A serial a sidecar reports, if it can be one this operator signed; else 0."""
        if serial is not None and not plausible_serial(serial, self.rt.clock(), self.serial_floor):
            log.warning("%s: ignoring implausible serial %d from a sidecar", self.ref, serial)
            return 0
        return serial or 0

    async def _observe(self, sidecars: list[Sidecar], observed: dict[str, PushResult]) -> bool:
        """Read every sidecar's digest and pins (kept in ``observed`` for the key deliveries
        of the same pass); return whether new pins were learned."""
        server = self.rt.index.servers[self.ref]
        outcomes = await self.rt.pusher.status_all(sidecars, server.spec.gateway.admin_port)
        observed.update((o.sidecar.pod, o) for o in outcomes)
        learned = False
        heads = [(o.sidecar.pod, o.head) for o in outcomes if o.error is None and o.head]
        try:
            await self.anchors.anchor(self.ref, heads, utc_text(self.rt.clock(), "seconds"))
        except KubeError as exc:
            log.warning("%s: cannot write the chain anchors: %s", self.ref, exc)
        for outcome in outcomes:
            self.deltas.note(outcome)
            self.fields.note(outcome)
            if outcome.error is None:
                self.held[outcome.sidecar.pod] = (outcome.sidecar.incarnation, outcome.digest)
                self.serial_floor = max(self.serial_floor, self._plausible(outcome.serial))
                self.last_use.observe(outcome.grants_used or {}, self.rt.clock())
            for tool, digest in (outcome.pins or {}).items():
                if tool not in self.pins and len(self.pins) < MAX_PINS:
                    self.pins[tool] = digest
                    learned = True
        return learned

    async def _too_old(self, server: MCPServer, sidecars: list[Sidecar]) -> str | None:
        """Which sidecars do not know a field the bundle uses (asking those not yet asked, but
        not those that did not answer last time; alongside the push, never delaying it):
        counted, a Warning Event per pod, and the status message; ``None`` when all know."""
        assert self.signed is not None
        uses, found = self.signed.uses, TooOld()
        if uses:
            pusher = self.rt.pusher
            if unknown := [s for s in self.fields.unknown(sidecars) if not pusher.is_silent(s)]:
                port = server.spec.gateway.admin_port
                for outcome in await pusher.status_all(unknown, port):
                    self.fields.note(outcome)
            found = self.fields.too_old(sidecars, uses)
            for pod, missing in self.fields.to_warn(sidecars, found):
                text = f"{pod}: sidecar does not know bundle field(s) {', '.join(missing)}"
                text += "; it refuses this bundle and keeps its last one until restarted newer"
                self.rt.event(server, "Warning", "SidecarsTooOld", text)
        self.rt.metrics.sidecars.labels(self.ref, "too_old").set(len(found))
        return describe(found) if found else None


__all__ = ["SidecarReads"]
