"""The webhook's serving certificate, kept by the operator in a Secret, and the caBundle with it.

A chart that generates the certificate at render time makes a new one on every ``helm template``
(Argo CD, Flux): the caBundle changes on each sync and replicas disagree. With
REMIT_WEBHOOK_TLS_SECRET the operator owns it instead, as controller-runtime's cert rotators do:

- at start it reads the ``kubernetes.io/tls`` Secret; when it is missing, unreadable, for other
  names, or within ``RENEW_BEFORE`` of expiry, it makes a new self-signed certificate (its own
  CA) for the webhook Service's DNS names and writes it (a concurrent replica's 409 means: use
  theirs). A renewed ``ca.crt`` keeps the previous certificate next to the new one while it is
  valid, so replicas still serving the old one stay trusted;
- it writes ``ca.crt`` into ``clientConfig.caBundle`` of every webhook of the
  MutatingWebhookConfiguration REMIT_WEBHOOK_CONFIGURATION (the chart renders it without one),
  and takes the Service names from that configuration, so one setting names everything.

The rendered manifests therefore never change between renders.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from remit_operator.certs import self_signed, service_names
from remit_operator.errors import KubeError, NotFoundError
from remit_operator.kube import CONFLICT, KubeClient, object_path
from remit_operator.settings import Settings

log = logging.getLogger(__name__)
RENEW_BEFORE = timedelta(days=30)
VALIDITY_DAYS = 3650
MWC = "admissionregistration.k8s.io/v1"


@dataclass(frozen=True)
class ServingCert:
    """PEM certificate and key the webhook serves, and the CA bundle clients trust."""

    cert: bytes
    key: bytes
    ca: bytes


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _read(secret: dict[str, Any]) -> ServingCert | None:
    data = secret.get("data") or {}
    try:
        parts = [base64.b64decode(data[k]) for k in ("tls.crt", "tls.key", "ca.crt")]
    except (KeyError, ValueError, TypeError):
        return None
    return ServingCert(*parts)


def usable(found: ServingCert | None, names: list[str], now: datetime) -> bool:
    """Whether a stored certificate serves every name and is not about to expire."""
    if found is None:
        return False
    try:
        cert = x509.load_pem_x509_certificate(found.cert)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    dns = set(sans.get_values_for_type(x509.DNSName))
    return set(names) <= dns and cert.not_valid_after_utc - RENEW_BEFORE > now


def _still_valid(pem: bytes, now: datetime) -> bytes:
    """The certificates of a bundle that have not expired (PEM, concatenated)."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError:
        return b""
    return b"".join(c.public_bytes(Encoding.PEM) for c in certs if c.not_valid_after_utc > now)


def secret_body(settings: Settings, tls: ServingCert) -> dict[str, Any]:
    """The Secret holding the serving certificate."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": settings.webhook.tls.secret,
            "namespace": settings.kube.namespace,
            "labels": {"app.kubernetes.io/managed-by": "remit-operator"},
        },
        "data": {"tls.crt": _b64(tls.cert), "tls.key": _b64(tls.key), "ca.crt": _b64(tls.ca)},
    }


async def service_of(kube: KubeClient, configuration: str) -> str | None:
    """``namespace/name`` of the Service the webhook configuration calls."""
    body = await kube.get(object_path(MWC, "mutatingwebhookconfigurations", name=configuration))
    for hook in body.get("webhooks") or []:
        service = (hook.get("clientConfig") or {}).get("service") or {}
        if service.get("name") and service.get("namespace"):
            return f"{service['namespace']}/{service['name']}"
    return None


async def load_or_create(
    kube: KubeClient, settings: Settings, names: list[str], now: datetime
) -> ServingCert:
    """The serving certificate from the Secret, made (or renewed) when it cannot serve."""
    collection = object_path("v1", "secrets", settings.kube.namespace)
    path = f"{collection}/{settings.webhook.tls.secret}"
    try:
        current: dict[str, Any] | None = await kube.get(path)
    except NotFoundError:
        current = None
    found = _read(current) if current is not None else None
    if found is not None and usable(found, names, now):
        return found
    cert, key = self_signed(names, days=VALIDITY_DAYS)
    previous = _still_valid(found.ca, now) if found is not None else b""
    fresh = ServingCert(cert, key, cert + previous)
    body = secret_body(settings, fresh)
    try:
        if current is None:
            await kube.create(collection, body)
        else:  # optimistic: a replica that renewed first wins, and we use its certificate
            version = (current.get("metadata") or {}).get("resourceVersion")
            await kube.patch(path, {**body, "metadata": {"resourceVersion": version}})
    except KubeError as exc:
        if exc.status != CONFLICT:
            raise
        winner = _read(await kube.get(path))
        if winner is None:
            raise
        return winner
    log.info("wrote a new webhook serving certificate to Secret %s", path)
    return fresh


async def patch_ca_bundle(kube: KubeClient, configuration: str, ca: bytes) -> bool:
    """Put ``ca`` into every webhook's caBundle of the configuration; True if it changed."""
    path = object_path(MWC, "mutatingwebhookconfigurations", name=configuration)
    body = await kube.get(path)
    hooks = body.get("webhooks") or []
    wanted = _b64(ca)
    if all((h.get("clientConfig") or {}).get("caBundle") == wanted for h in hooks):
        return False
    for hook in hooks:
        hook.setdefault("clientConfig", {})["caBundle"] = wanted
    version = (body.get("metadata") or {}).get("resourceVersion")
    await kube.patch(path, {"metadata": {"resourceVersion": version}, "webhooks": hooks})
    return True


def install(tls: ServingCert, certfile: str, keyfile: str) -> None:
    """Write the certificate and key where the webhook server reads them when it starts."""
    Path(certfile).write_bytes(tls.cert)
    Path(keyfile).write_bytes(tls.key)
    Path(keyfile).chmod(0o600)


async def ensure_serving_cert(
    kube: KubeClient, settings: Settings, *, now: datetime | None = None
) -> ServingCert:
    """Load or make the certificate for the configured webhook and publish its CA bundle."""
    configuration = settings.webhook.configuration
    service = settings.webhook.service
    if configuration:
        service = await service_of(kube, configuration) or service
    names = [*service_names(service), "localhost"]
    tls = await load_or_create(kube, settings, names, now or datetime.now(UTC))
    if configuration:
        for _ in range(3):  # a concurrent writer (helm, another replica): read again
            try:
                await patch_ca_bundle(kube, configuration, tls.ca)
                break
            except KubeError as exc:
                if exc.status != CONFLICT:
                    raise
    return tls
