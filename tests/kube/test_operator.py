"""Item 2: `remit operator` starts as in production, on a real API server, as the chart's
ServiceAccount (a TokenRequest token in a kubeconfig): it creates the signing key, serves the
admission webhook over TLS and its metrics, and reports ready."""

from __future__ import annotations

import base64
import json
import socket

from joserfc.jwk import OKPKey

from tests.kube.controlplane import ControlPlane
from tests.kube.operator import NAMESPACE, Installation, OperatorProcess


def test_it_starts_with_credentials_from_a_kubeconfig_and_reports_ready(
    operator: OperatorProcess,
) -> None:
    assert operator.proc is not None
    assert operator.proc.poll() is None
    assert operator.healthy()
    assert operator.webhook_listening()
    assert "Traceback" not in operator.logs(400)


def test_it_runs_as_the_charts_service_account(
    control_plane: ControlPlane, installation: Installation, operator: OperatorProcess
) -> None:
    users = {e["user"]["username"] for e in control_plane.audit()}
    assert f"system:serviceaccount:{NAMESPACE}:{installation.service_account}" in users


def test_it_creates_the_signing_key(
    control_plane: ControlPlane, installation: Installation, operator: OperatorProcess
) -> None:
    name = "remit-signing-key"
    assert not any(
        o["kind"] == "Secret" and o["metadata"]["name"] == name for o in installation.objects
    )
    secret = control_plane.admin.get("v1", "Secret", NAMESPACE, name)
    assert secret is not None
    assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "remit-operator"
    key = OKPKey.import_key(json.loads(base64.b64decode(secret["data"]["private.jwk"])))
    assert key.is_private
    assert f"signing bundles with key {key.kid}" in operator.logs(400)


def test_it_serves_the_webhook_with_the_charts_certificate(
    installation: Installation, operator: OperatorProcess
) -> None:
    service = installation.webhook_service["metadata"]["name"]
    server_name = f"{service}.{NAMESPACE}.svc"  # what the API server verifies
    context = operator.webhook_tls_context()
    with (
        socket.create_connection((operator.host, operator.ports["webhook"]), 5) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_it_keeps_the_webhook_certificate_and_the_ca_bundle(
    control_plane: ControlPlane, installation: Installation, operator: OperatorProcess
) -> None:
    assert installation.rendered_tls is None  # webhook.tls.operatorManaged (the default)
    tls = installation.webhook_tls  # the Secret the operator created
    configuration = installation.find("MutatingWebhookConfiguration")
    stored = control_plane.admin.get(
        "admissionregistration.k8s.io/v1",
        "MutatingWebhookConfiguration",
        None,
        configuration["metadata"]["name"],
    )
    assert stored is not None
    for webhook in stored["webhooks"]:
        assert base64.b64decode(webhook["clientConfig"]["caBundle"]) == tls["ca.crt"]


def test_it_serves_metrics(operator: OperatorProcess) -> None:
    text = operator.metrics()
    assert "remit_operator_syncs" in text or "# HELP remit_operator" in text
