"""Giving each sidecar the consent page's URL and sealing key, encrypted to that process.

The key lives in one Secret (``REMIT_CONSENT_KEY_SECRET`` in ``REMIT_NAMESPACE``, key
``key``), which the consent service mounts too; the operator creates it when absent (32
random bytes, base64), like the signing key. It never goes into a pod spec or a Secret of a
governed namespace: each sidecar shows a per-process X25519 public key in ``/v1/status``
(``consent.recipient``), and the operator ``PUT``s ``/v1/consent`` a delivery signed with the
bundle key and encrypted to it (``remit.policy.consentdelivery``). The URL is
``spec.consent.url`` of the MCPServer when set, else ``REMIT_CONSENT_PUBLIC_URL``.

A sidecar whose ``consent.holds`` already names this URL and key gets nothing; one that
restarted (new recipient, holds nothing) gets it again, and the periodic resync reads what
every sidecar holds (``check_all``) and delivers again where it differs. The Secret is read
at most every ``KEY_TTL`` seconds; a rotated key reaches the sidecars ``SETTLE_SECONDS``
after it was first read (the consent service must hold it first), within a periodic check
after that.
"""

from __future__ import annotations

import base64
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from joserfc.jwk import OKPKey

from remit.api.mcpserver import MCPServer
from remit.errors import ConsentRequestError, RemitError
from remit.policy.consentdelivery import holding, seal_delivery
from remit_operator.delivery import deliver_sealed, recipient_of
from remit_operator.errors import KubeError, NotFoundError
from remit_operator.index import Sidecar
from remit_operator.keys import Keyring
from remit_operator.kube import KubeClient, object_path
from remit_operator.push import Pusher, PushResult
from remit_operator.settings import Settings

log = logging.getLogger(__name__)
KEY_TTL = 30.0
# How long a new `key` must have been in the Secret before sidecars get it: the kubelet
# updates the consent service's mounted copy only at its next sync (a minute or more), and
# links sealed with a key the service has not seen yet would be refused as unknown.
SETTLE_SECONDS = 180.0
MANAGED_BY = {"app.kubernetes.io/managed-by": "remit-operator"}


class ConsentKey:
    """The sealing key from its Secret (created when absent), cached for ``KEY_TTL``.

    A changed ``key`` (a rotation) is handed out only once it has been read in the Secret for
    ``settle`` seconds: until then the key held before is (it still opens links, as the
    service's ``previous`` or its current key). The first key read is used at once."""

    settle = SETTLE_SECONDS

    def __init__(
        self, kube: KubeClient, settings: Settings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.clock = clock
        self._key: bytes | None = None
        self._read_at = -KEY_TTL
        self._next: tuple[bytes, float] | None = None  # a new key read, and since when

    async def get(self) -> bytes | None:
        """The key, or None when it cannot be read (logged; the last good key is kept)."""
        if self._key is not None and self.clock() - self._read_at < KEY_TTL:
            return self._key
        collection = object_path("v1", "secrets", self.settings.kube.namespace)
        name = self.secret_name()
        try:
            try:
                secret = await self.kube.get(f"{collection}/{name}")
            except NotFoundError:
                secret = await self._create(collection, name)
            self._take(self.key_of(secret))
            self._read_at = self.clock()
        except RemitError as exc:  # KubeError, or an unusable key (key_of)
            log.warning("%s secret %s: %s", self.what, name, exc)
        return self._key

    def _take(self, read: bytes) -> None:
        """Use ``read`` at once if it is the first key or unchanged, else once it settled."""
        now = self.clock()
        if self._key is None or read == self._key or self.settle <= 0:
            self._key, self._next = read, None
            return
        if self._next is None or self._next[0] != read:
            self._next = (read, now)
            log.info("%s changed in its Secret: delivered in %.0f s, once the consent service "
                     "can have seen it", self.what, self.settle)  # fmt: skip
        elif now - self._next[1] >= self.settle:
            self._key, self._next = read, None
            log.info("%s rotated: delivering the new key", self.what)

    what = "consent key"

    def secret_name(self) -> str:
        """The Secret's name (in ``REMIT_NAMESPACE``)."""
        return self.settings.consent.key_secret

    def key_of(self, secret: dict[str, Any]) -> bytes:
        """The key in the Secret; ``ConsentRequestError`` saying why it is unusable."""
        return _key_of(secret)

    async def _create(self, collection: str, name: str) -> dict[str, Any]:
        value = base64.b64encode(base64.b64encode(secrets.token_bytes(32))).decode()
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "labels": MANAGED_BY},
            "type": "Opaque",
            "data": {"key": value},
        }
        try:
            await self.kube.create(collection, body)
            log.info("created the %s secret %s", self.what, name)
        except KubeError:
            pass  # another replica created it first: read theirs
        return await self.kube.get(f"{collection}/{name}")


def _key_of(secret: dict[str, Any]) -> bytes:
    data = secret.get("data") or {}
    try:
        text = base64.b64decode(str(data.get("key", "")), validate=True)
        raw = text if len(text) == 32 else base64.b64decode(text.strip(), validate=True)
    except ValueError as exc:
        raise ConsentRequestError("key `key` is not base64") from exc
    if len(raw) != 32:
        raise ConsentRequestError("key `key` must hold 32 bytes (raw or base64)")
    return raw


async def deliver_all(
    pusher: Pusher,
    keyring: Keyring,
    server: MCPServer,
    url: str,
    key: bytes,
    sidecars: Sequence[Sidecar],
    held: dict[str, tuple[str, str]],
    check_all: bool = False,
    known: Mapping[str, PushResult] | None = None,
) -> list[tuple[Sidecar, str]]:
    """Deliver to every sidecar not known to hold ``url`` and ``key``; ``held`` (pod →
    (incarnation, holding)) is updated; return the sidecars that failed, with why.
    ``check_all`` (the periodic resync): read what every sidecar holds, even one this
    incarnation was delivered to, and deliver again where it differs. ``known``: statuses
    this pass already read (``Pusher.status_all``), not read again. The loop is
    ``delivery.deliver_sealed``."""

    def seal(signing: OKPKey, recipient: dict[str, Any]) -> bytes:
        return seal_delivery(signing, recipient, server.ref, url, key, time.time())

    return await deliver_sealed(
        pusher,
        keyring,
        server,
        sidecars,
        held,
        want=holding(url, key),
        what="consent delivery",
        part=lambda outcome: outcome.consent,
        seal=seal,
        path="/v1/consent",
        refused=(ConsentRequestError,),
        check_all=check_all,
        known=known,
    )


__all__ = ["ConsentKey", "deliver_all", "recipient_of"]
