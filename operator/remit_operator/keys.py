"""The bundle signing key: kept in a Secret, created once, its public half published per namespace.

The Secret (``REMIT_SIGNING_SECRET`` in ``REMIT_NAMESPACE``) holds ``private.jwk`` (or
``private.pem``): the active key. During a rotation it also holds ``previous.jwk``: the key that
sidecars started before the rotation still trust. The operator signs with the active key and,
when a sidecar refuses that signature, with the previous one, so no sidecar is ever left unable
to verify (docs/operator.md, "Rotating the signing key").

Each namespace with an MCPServer gets a ConfigMap (``REMIT_PUBLIC_KEY_CONFIGMAP``) with
``public.jwk`` (the active public key, which injected sidecars mount) and, during a rotation,
``previous.jwk``.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from joserfc.jwk import OKPKey

from remit.errors import SigningKeyError
from remit.policy.signing import generate_key, load_key
from remit_operator.errors import KubeError, NotFoundError
from remit_operator.kube import KubeClient, object_path
from remit_operator.settings import Settings

log = logging.getLogger(__name__)

ACTIVE_KEYS = ("private.jwk", "private.pem")
PREVIOUS_KEY = "previous.jwk"
PUBLIC_KEY = "public.jwk"
MANAGED_BY = {"app.kubernetes.io/managed-by": "remit-operator"}


def _public_jwk(key: OKPKey) -> str:
    return json.dumps(key.as_dict(private=False), sort_keys=True)


@dataclass(frozen=True)
class Keyring:
    """The active signing key, and the previous one during a rotation."""

    active: OKPKey
    previous: OKPKey | None = None

    @property
    def kid(self) -> str:
        """The active key's id (injected pods are annotated with it)."""
        return str(self.active.kid or "")

    def candidates(self, preferred_kid: str | None = None) -> Iterator[OKPKey]:
        """Keys to sign with for one sidecar: the one it was started with first, then the others."""
        keys = [k for k in (self.active, self.previous) if k is not None]
        keys.sort(key=lambda k: k.kid != preferred_kid)
        yield from keys

    def public_data(self) -> dict[str, str]:
        """The ConfigMap ``data`` sidecars mount."""
        data = {PUBLIC_KEY: _public_jwk(self.active)}
        if self.previous is not None:
            data[PREVIOUS_KEY] = _public_jwk(self.previous)
        return data


def _with_kid(key: OKPKey) -> OKPKey:
    """The key with a ``kid`` (its RFC 7638 thumbprint when it came without one, e.g. PEM)."""
    if key.kid:
        return key
    return OKPKey.import_key(key.as_dict(private=True), parameters={"kid": key.thumbprint()})


def _decode(data: dict[str, str], name: str) -> bytes | None:
    value = data.get(name)
    if not value:
        return None
    try:
        return base64.b64decode(value)
    except ValueError as exc:
        raise SigningKeyError(f"secret key {name}: not base64") from exc


def keyring_from_secret(secret: dict[str, object]) -> Keyring:
    """Read a Keyring from a Secret object; raise ``SigningKeyError`` if it has no usable key."""
    data = secret.get("data") or {}
    if not isinstance(data, dict):
        raise SigningKeyError("signing Secret has no data")
    for name in ACTIVE_KEYS:
        raw = _decode(data, name)
        if raw is not None:
            active = _with_kid(load_key(raw))
            break
    else:
        raise SigningKeyError(f"signing Secret has none of {', '.join(ACTIVE_KEYS)}")
    previous_raw = _decode(data, PREVIOUS_KEY)
    previous = _with_kid(load_key(previous_raw)) if previous_raw is not None else None
    return Keyring(active, previous)


def secret_for(key: OKPKey, settings: Settings) -> dict[str, object]:
    """A new signing-key Secret holding ``key``."""
    private = json.dumps(key.as_dict(private=True)).encode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": settings.signing.secret,
            "namespace": settings.kube.namespace,
            "labels": dict(MANAGED_BY),
        },
        "data": {ACTIVE_KEYS[0]: base64.b64encode(private).decode()},
    }


async def load_or_create(kube: KubeClient, settings: Settings) -> Keyring:
    """The Keyring from the Secret, creating the Secret with a new key when there is none."""
    collection = object_path("v1", "secrets", settings.kube.namespace)
    path = f"{collection}/{settings.signing.secret}"
    try:
        return keyring_from_secret(await kube.get(path))
    except NotFoundError:
        pass
    key = generate_key()
    try:
        await kube.create(collection, secret_for(key, settings))
    except KubeError as exc:
        if exc.status != 409:
            raise
        return keyring_from_secret(await kube.get(path))  # another replica created it first
    log.info(
        "created signing key %s in Secret %s/%s",
        key.kid,
        settings.kube.namespace,
        settings.signing.secret,
    )
    return Keyring(key)


def public_configmap(keyring: Keyring, settings: Settings, namespace: str) -> dict[str, object]:
    """The public-key ConfigMap for one namespace."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": settings.signing.public_key_configmap,
            "namespace": namespace,
            "labels": dict(MANAGED_BY),
        },
        "data": keyring.public_data(),
    }


class Publisher:
    """Publishes the public key into namespaces, writing each one only when it changed."""

    def __init__(self, kube: KubeClient, settings: Settings) -> None:
        self.kube = kube
        self.settings = settings
        self._published: dict[str, dict[str, str]] = {}

    async def publish(self, keyring: Keyring, namespace: str) -> None:
        """Make sure ``namespace`` has the ConfigMap with the current public key(s)."""
        data = keyring.public_data()
        if self._published.get(namespace) == data:
            return
        body = public_configmap(keyring, self.settings, namespace)
        await self.kube.ensure(object_path("v1", "configmaps", namespace), body, ("data",))
        self._published[namespace] = data
