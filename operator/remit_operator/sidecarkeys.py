"""What one server's sidecars were handed besides the bundle: the digest key and consent link.

Every sync pass gives each reachable sidecar its server's argument digest key first (it
refuses calls until it has it: ``auditkeys.py``) and, once the bundle reached it, the consent
page's URL and sealing key (``consentpush.py``). This keeps, per server, which sidecar process
was given what (forgetting pods that left), so a pass delivers only where something is
missing, and logs each sidecar that could not be given it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping

from remit.api.mcpserver import MCPServer
from remit_operator.auditkeys import deliver_keys
from remit_operator.consentpush import deliver_all
from remit_operator.index import Sidecar
from remit_operator.push import PushResult
from remit_operator.runtime import Runtime

log = logging.getLogger(__name__)


class SidecarKeys:
    """The digest-key and consent deliveries to one MCPServer's sidecars."""

    def __init__(self, server_ref: str, runtime: Runtime) -> None:
        self.ref = server_ref
        self.rt = runtime
        self.consent_held: dict[str, tuple[str, str]] = {}  # pod → what it was delivered
        self.key_held: dict[str, tuple[str, str]] = {}  # pod → digest key id it holds

    async def consent(
        self,
        server: MCPServer,
        sidecars: list[Sidecar],
        check_all: bool = False,
        observed: Mapping[str, PushResult] | None = None,
    ) -> None:
        """Give sidecars the consent page's URL and key, encrypted to each (consentpush.py)."""
        url = server.spec.consent.url or self.rt.settings.consent.public_url
        live = {s.pod for s in sidecars}
        self.consent_held = {p: h for p, h in self.consent_held.items() if p in live}
        if not url:
            return
        key = await self.rt.consent_key.get()
        if key is None:
            return
        for sidecar, why in await deliver_all(
            self.rt.pusher,
            self.rt.keyring,
            server,
            url,
            key,
            sidecars,
            self.consent_held,
            check_all,
            observed,
        ):
            log.warning("%s: pod %s: %s", self.ref, sidecar.pod, why)

    async def digest_key(
        self,
        server: MCPServer,
        sidecars: list[Sidecar],
        legacy: Collection[str],
        check_all: bool = False,
        observed: Mapping[str, PushResult] | None = None,
    ) -> bool:
        """Give sidecars their server's argument digest key, encrypted to each (auditkeys.py);
        a sidecar refuses calls until it has it. True when one is still without it.
        ``legacy``: pods the previous release injected (``trust.sort_sidecars``)."""
        live = {s.pod for s in sidecars}
        self.key_held = {p: h for p, h in self.key_held.items() if p in live}
        root = await self.rt.audit_key.get()
        if root is None:
            return bool(sidecars)
        failed = await deliver_keys(
            self.rt.pusher,
            self.rt.keyring,
            server,
            root,
            sidecars,
            self.key_held,
            legacy,
            check_all,
            observed,
        )
        for sidecar, why in failed:
            log.warning("%s: pod %s: %s", self.ref, sidecar.pod, why)
        return bool(failed)


__all__ = ["SidecarKeys"]
