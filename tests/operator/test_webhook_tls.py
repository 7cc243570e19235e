"""The webhook certificate kept by the operator: made once, stored in a Secret, served by every
run and replica, and its CA written into the chart's MutatingWebhookConfiguration, so nothing
rendered by Helm or Argo CD ever has to change."""

from __future__ import annotations

import base64
import dataclasses
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import kmock
import kopf
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from remit_operator.kube import KubeClient
from remit_operator.settings import KubeSettings, Settings, WebhookSettings, WebhookTls
from remit_operator.webhook_tls import ensure_serving_cert
from tests.operator.support import (
    OPERATOR_NAMESPACE,
    admission_review,
    app_pod,
    operator_settings,
    running_operator,
    stored,
)

CONFIGURATION = "remit-remit-system"
SECRET = "remit-webhook-tls"


def _chart_configuration() -> dict[str, object]:
    """The MutatingWebhookConfiguration as the chart renders it: no caBundle."""
    hook = {
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "clientConfig": {
            "service": {"name": "remit-webhook", "namespace": OPERATOR_NAMESPACE, "port": 443}
        },
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": CONFIGURATION},
        "webhooks": [{"name": "a.pods.remit.dev", **hook}, {"name": "b.pods.remit.dev", **hook}],
    }


def _settings(tmp: Path) -> Settings:
    base = operator_settings(tmp)
    webhook = dataclasses.replace(
        base.webhook, configuration=CONFIGURATION, tls=WebhookTls(secret=SECRET)
    )
    return dataclasses.replace(base, webhook=webhook)


async def _served(settings: Settings, ca: bytes) -> bytes:
    """The certificate the running webhook presents, after a review verified against ``ca``."""
    context = ssl.create_default_context(cadata=ca.decode())
    context.check_hostname = False  # the certificate names the Service; we dial 127.0.0.1
    url = f"https://{settings.webhook.host}:{settings.webhook.port}/inject"
    async with httpx.AsyncClient(verify=context, timeout=10) as http:
        response = await http.post(url, json=admission_review(app_pod("p")))
    assert response.status_code == 200
    address = (settings.webhook.host, settings.webhook.port)
    return ssl.get_server_certificate(address).encode()


def _ca_bundles(k8s: kmock.KubernetesEmulator) -> set[str]:
    config = stored(
        k8s, "admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", None, CONFIGURATION
    )
    assert config is not None
    return {h["clientConfig"].get("caBundle") for h in config["webhooks"]}


async def test_operator_keeps_one_certificate_across_runs_and_publishes_its_ca(
    k8s: kmock.KubernetesEmulator, tmp_path: Path
) -> None:
    k8s.resources["admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"] = {
        "kind": "MutatingWebhookConfiguration",
        "singular": "mutatingwebhookconfiguration",
        "namespaced": False,
        "verbs": {"list", "watch", "get", "patch", "create"},
    }
    response = await k8s.post(
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
        json=_chart_configuration(),
    )
    assert response.status < 300
    served = []
    for run in range(2):  # a restart, or the second replica: the same certificate
        (tmp_path / str(run)).mkdir()
        settings = _settings(tmp_path / str(run))
        async with running_operator(k8s, settings):
            secret = stored(k8s, "v1/secrets", OPERATOR_NAMESPACE, SECRET)
            assert secret is not None
            ca = base64.b64decode(secret["data"]["ca.crt"])
            assert _ca_bundles(k8s) == {secret["data"]["ca.crt"]}
            served.append(await _served(settings, ca))
    assert served[0] == served[1]
    cert = x509.load_pem_x509_certificate(served[0])
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"remit-webhook.{OPERATOR_NAMESPACE}.svc" in names.get_values_for_type(x509.DNSName)


async def test_an_expiring_certificate_is_renewed_and_the_old_ca_kept_while_valid(
    k8s: kmock.KubernetesEmulator,
) -> None:
    kube = KubeClient(kopf.ConnectionInfo(server=str(k8s.url).rstrip("/")))
    settings = Settings(
        kube=KubeSettings(namespace=OPERATOR_NAMESPACE),
        webhook=WebhookSettings(tls=WebhookTls(secret=SECRET)),
    )
    try:
        first = await ensure_serving_cert(kube, settings)
        assert await ensure_serving_cert(kube, settings) == first  # stable while valid
        later = datetime.now(UTC) + timedelta(days=3650 - 10)  # within 30 days of expiry
        renewed = await ensure_serving_cert(kube, settings, now=later)
    finally:
        await kube.close()
    assert renewed.cert != first.cert
    bundle = x509.load_pem_x509_certificates(renewed.ca)
    assert [c.public_bytes(Encoding.PEM) for c in bundle] == [renewed.cert, first.cert]
