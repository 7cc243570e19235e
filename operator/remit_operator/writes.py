"""What one MCPServer's syncer writes to the API: its status, and its grants' phases.

Each write is skipped when the API already has it (the last status written, the phase last
recorded in ``Runtime.grant_phases``), so a sync that changed nothing writes nothing; a write
that fails is logged and tried again by the next sync.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from remit.api.common import Resource
from remit.api.mcpserver import MCPServer
from remit_operator.errors import KubeError
from remit_operator.kube import object_path
from remit_operator.lastuse import LastUse
from remit_operator.runtime import Runtime
from remit_operator.status import ServerReport, grant_status, server_status

log = logging.getLogger(__name__)


class StatusWriter:
    """Writes one server's status and its grants' phases when they change."""

    def __init__(self, server_ref: str, runtime: Runtime) -> None:
        self.ref = server_ref
        self.rt = runtime
        self.written: dict[str, Any] | None = None

    async def server(self, server: MCPServer, report: ServerReport) -> None:
        """Write the MCPServer's status, unless it is what was written last."""
        body = {
            "metadata": {"generation": server.metadata.generation or None},
            "status": self.written or {},
        }
        wanted = server_status(body, report, self.rt.clock())
        if wanted == self.written:
            return
        if await self._patch(server, "mcpservers", wanted):
            self.written = wanted

    async def grants(self, now: datetime) -> None:
        """Write the status of every grant of this server that the watch handler left to it,
        and the phase of any that changed (expired, or a write that failed before)."""
        for grant in self.rt.index.grants_for(self.ref):
            phase = grant.phase(now)
            pending = self.rt.grant_writes.pop(grant.ref, None)
            if pending is not None and pending.get("phase") != phase:
                pending = None  # its phase changed since (expired): write the current one
            if pending is None and self.rt.grant_phases.get(grant.ref) == phase:
                continue
            status = pending or grant_status(
                {"metadata": {"generation": grant.metadata.generation or None}}, grant, now
            )
            if await self._patch(grant, "consentgrants", status):
                self.rt.grant_phases[grant.ref] = phase

    async def last_use(self, uses: LastUse) -> None:
        """Copy the newest reported use of each grant to its ``status.lastUsedAt`` when it
        moved (``lastuse.py``)."""
        grants = self.rt.index.grants_for(self.ref)
        uses.retain(g.ref for g in grants)
        for grant, used in uses.due(grants):
            if await self._patch(grant, "consentgrants", used):
                uses.wrote(grant)

    async def _patch(self, resource: Resource, plural: str, status: Any) -> bool:
        """Patch one object's status subresource; a failure is logged and returned as False."""
        meta = resource.metadata
        path = object_path(resource.api_version, plural, meta.namespace, meta.name, "status")
        try:
            await self.rt.kube.patch(path, {"status": status})
        except KubeError as exc:
            log.warning("%s: cannot write status: %s", resource.ref, exc)
            return False
        return True
