"""The operator's shared state for one run: settings, index, API client, keys, pusher.

kopf handlers are thin; they call into one ``Runtime``, which is created per run and passed in
(never a module global), so tests run several operators side by side. The per-MCPServer
syncers are not here: ``sync.Syncers`` owns them (a syncer needs the runtime, not the reverse).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import kopf

from remit.api.mcpserver import MCPServer
from remit_operator.errors import OperatorError
from remit_operator.index import Index
from remit_operator.keys import Keyring, Publisher, load_or_create
from remit_operator.kube import KubeClient
from remit_operator.metrics import OperatorMetrics
from remit_operator.push import Pusher
from remit_operator.settings import Settings

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Login = Callable[..., Any]


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
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.index = Index()
        self.grant_phases: dict[str, str] = {}
        self._connection = connection
        self._kube: KubeClient | None = None
        self._keyring: Keyring | None = None
        self._publisher: Publisher | None = None
        self._pusher: Pusher | None = None
        self.metrics = OperatorMetrics()

    # --- lifecycle -------------------------------------------------------------------------

    def login(self, logger: logging.Logger | Any, **kwargs: Any) -> kopf.ConnectionInfo | None:
        """kopf's login: a given connection (tests), else kopf's own client/pykube login."""
        info: kopf.ConnectionInfo | None = self._connection
        if info is None:
            info = kopf.login_via_client(logger=logger, **kwargs)
        if info is None:
            info = kopf.login_via_pykube(logger=logger, **kwargs)
        if info is not None:
            self._connection = info
        return info

    async def start(self) -> None:
        """Connect the API client, load or create the signing key, open the push client."""
        if self._connection is None:
            raise OperatorError("no Kubernetes credentials: kopf's login found none")
        self._kube = KubeClient(self._connection)
        self._keyring = await load_or_create(self._kube, self.settings)
        self._publisher = Publisher(self._kube, self.settings)
        self._pusher = Pusher(self.settings)
        self.metrics.serve(self.settings.metrics_port)
        log.info("signing bundles with key %s", self._keyring.kid)

    async def stop(self) -> None:
        """Close clients and the metrics server."""
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
