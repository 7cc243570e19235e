"""The operator's shared state for one run: settings, index, API client, keys, pusher.

kopf handlers are thin; they call into one ``Runtime``, which is created per run and passed in
(never a module global), so tests run several operators side by side. The per-MCPServer
syncers are not here: ``sync.Syncers`` owns them (a syncer needs the runtime, not the reverse).

Order matters: kopf runs every ``on.startup`` handler *before* its first login, so ``start``
touches no API. It opens what needs no credentials (push client, metrics) and starts a task
that waits for kopf's login (``login``), then loads or creates the signing key, retrying until
it can. Whatever needs the key awaits ``ready``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import kopf

from remit.api.mcpserver import MCPServer
from remit.errors import RemitError
from remit_operator.auditkeys import AuditRootKey
from remit_operator.consentpush import ConsentKey
from remit_operator.errors import OperatorError
from remit_operator.index import Index
from remit_operator.keys import Keyring, Publisher, load_or_create
from remit_operator.kube import KubeClient
from remit_operator.lanes import Lanes
from remit_operator.leader import own_identity
from remit_operator.metrics import OperatorMetrics
from remit_operator.push import Pusher
from remit_operator.settings import Settings

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Login = Callable[..., Any]
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0)


def utcnow() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


class Runtime:
    """Everything one operator run shares between its handlers."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = utcnow,
        connection: kopf.ConnectionInfo | None = None,
        identity: str | None = None,
    ) -> None:
        self.settings = settings
        self.identity = identity or own_identity()  # kopf's peering identity (given to kopf)
        self.clock = clock
        self.index = Index()
        self.grant_phases: dict[str, str] = {}
        self.grant_writes: dict[str, dict[str, Any]] = {}  # grant → status its syncer writes
        self.lanes = Lanes()  # urgent syncs before periodic ones (remit_operator.lanes)
        self._given = connection
        self._connection = connection
        self._login_kwargs: dict[str, Any] = {}
        self._connected = asyncio.Event()
        self._ready = asyncio.Event()
        self._started = asyncio.Event()
        self._boot: asyncio.Task[None] | None = None
        self.after_ready: list[Callable[[], Awaitable[None]]] = []
        self._kube: KubeClient | None = None
        self._keyring: Keyring | None = None
        self._publisher: Publisher | None = None
        self._pusher: Pusher | None = None
        self._consent_key: ConsentKey | None = None
        self._audit_key: AuditRootKey | None = None
        self.metrics = OperatorMetrics()

    # --- lifecycle -------------------------------------------------------------------------

    def login(self, logger: logging.Logger | Any, **kwargs: Any) -> kopf.ConnectionInfo | None:
        """kopf's login: a given connection (tests), else a fresh kubeconfig/in-cluster login.

        kopf calls it again whenever its client gets a 401; it re-reads the kubeconfig or the
        service-account token file each time, so rotated tokens are followed.
        """
        info: kopf.ConnectionInfo | None = self._given
        self._login_kwargs = kwargs  # kopf's (its settings): relogin passes them again
        if info is None:
            info = kopf.login_via_client(logger=logger, **kwargs)
        if info is None:
            info = kopf.login_via_pykube(logger=logger, **kwargs)
        if info is not None:
            self._connection = info
        return info

    def connected(self) -> None:
        """Tell the boot task that kopf has logged in (call from the event loop)."""
        self._connected.set()

    def credentials(self) -> kopf.ConnectionInfo | None:
        """The latest credentials kopf logged in with (None before the first login)."""
        return self._connection

    def relogin(self) -> None:
        """Log in again (the API client calls this when a token stopped working)."""
        self.login(logger=log, **self._login_kwargs)

    async def start(self) -> None:
        """Open what needs no API (push client, metrics); load the key once logged in."""
        self._kube = KubeClient(self.credentials, refresh=self.relogin)
        self._pusher = Pusher(self.settings)
        self.metrics.serve(self.settings.metrics.port)
        if self._given is not None:
            self._connected.set()
        self._boot = asyncio.create_task(self._load_keys(), name="remit signing key")

    async def _load_keys(self) -> None:
        await self._connected.wait()
        attempt = 0
        while True:
            try:
                keyring = await load_or_create(self.kube, self.settings)
            except (RemitError, OSError) as exc:
                delay = RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)]
                attempt += 1
                log.warning("cannot load the signing key (retrying in %ss): %s", delay, exc)
                await asyncio.sleep(delay)
                continue
            self._keyring = keyring
            self._publisher = Publisher(self.kube, self.settings)
            self._ready.set()
            log.info("signing bundles with key %s", keyring.kid)
            break
        for hook in self.after_ready:
            try:
                await hook()
            except (RemitError, OSError) as exc:
                log.error("start-up step %s failed: %s", getattr(hook, "__name__", hook), exc)
        self._started.set()

    async def started(self) -> None:
        """Wait until the key is loaded and every ``after_ready`` step has run."""
        await self._started.wait()

    async def ready(self, timeout: float | None = None) -> bool:
        """Wait until the signing key is loaded; False if ``timeout`` passed first."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """Close clients and the metrics server."""
        if self._boot is not None:
            self._boot.cancel()
        self.metrics.close()
        if self._pusher is not None:
            await self._pusher.close()
        if self._kube is not None:
            await self._kube.close()

    # --- accessors -------------------------------------------------------------------------

    @property
    def kube(self) -> KubeClient:
        """The API client (after ``start``)."""
        if self._kube is None:
            raise OperatorError("the operator has not started")
        return self._kube

    @property
    def keyring(self) -> Keyring:
        """The signing keys (after ``start``)."""
        if self._keyring is None:
            raise OperatorError("the operator has not started")
        return self._keyring

    @property
    def publisher(self) -> Publisher:
        """Public-key publisher (after ``start``)."""
        if self._publisher is None:
            raise OperatorError("the operator has not started")
        return self._publisher

    @property
    def consent_key(self) -> ConsentKey:
        """The consent sealing key's Secret, read lazily (after ``start``)."""
        if self._consent_key is None:
            self._consent_key = ConsentKey(self.kube, self.settings)
        return self._consent_key

    @property
    def audit_key(self) -> AuditRootKey:
        """The root of the argument digest keys, from its Secret, read lazily."""
        if self._audit_key is None:
            self._audit_key = AuditRootKey(self.kube, self.settings)
        return self._audit_key

    @property
    def pusher(self) -> Pusher:
        """Bundle pusher (after ``start``)."""
        if self._pusher is None:
            raise OperatorError("the operator has not started")
        return self._pusher

    def event(
        self, server: MCPServer | dict[str, Any], type_: str, reason: str, message: str
    ) -> None:
        """Post a Kubernetes Event about an object (through kopf's event poster)."""
        if isinstance(server, MCPServer):
            body: dict[str, Any] = {
                "apiVersion": server.api_version,
                "kind": "MCPServer",
                "metadata": {
                    "name": server.metadata.name,
                    "namespace": server.metadata.namespace,
                    "uid": server.metadata.uid,
                },
            }
        else:
            body = server
        try:
            kopf.event(
                kopf.Body(body),  # type: ignore[arg-type]
                type=type_,
                reason=reason,
                message=message[:1000],
            )
        except LookupError:  # outside kopf's context (unit tests): log only
            log.info("event %s %s: %s", type_, reason, message)
