"""The MutatingWebhookConfiguration that makes the API server call the injection webhook.

Two webhooks: one for pods labelled ``remit.dev/inject: "true"``, one for every pod in
namespaces labelled ``remit.dev/injection: enabled``; both ``failurePolicy: Fail`` (a pod the
webhook cannot judge is not admitted ungoverned), neither for system namespaces. The operator
applies it at startup (``entry.py``) with the CA of its own serving certificate.
"""

from __future__ import annotations

import base64
from typing import Any

from remit_operator.errors import InjectionError
from remit_operator.settings import Settings

POD_LABEL = "remit.dev/inject"
NAMESPACE_LABEL = "remit.dev/injection"
WEBHOOK_PATH = "/inject"
CONFIGURATION_NAME = "remit-sidecar-injector"


def webhook_configuration(
    settings: Settings, ca_bundle: bytes, *, url: str | None = None
) -> dict[str, Any]:
    """The MutatingWebhookConfiguration; ``url`` overrides REMIT_WEBHOOK_SERVICE."""
    if url is not None:
        client: dict[str, Any] = {"url": url.rstrip("/") + WEBHOOK_PATH}
    elif settings.webhook.service:
        namespace, name = settings.webhook.service.split("/", 1)
        client = {
            "service": {"namespace": namespace, "name": name, "path": WEBHOOK_PATH, "port": 443}
        }
    else:
        raise InjectionError("the webhook needs REMIT_WEBHOOK_SERVICE (or a URL) to be reachable")
    client["caBundle"] = base64.b64encode(ca_bundle).decode()
    not_system = {
        "key": "kubernetes.io/metadata.name",
        "operator": "NotIn",
        "values": sorted(settings.kube.protected_namespaces),
    }
    common: dict[str, Any] = {
        "clientConfig": client,
        "rules": [
            {
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods"],
                "operations": ["CREATE"],
                "scope": "Namespaced",
            }
        ],
        "failurePolicy": "Fail",
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": 10,
        "reinvocationPolicy": "IfNeeded",
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {
            "name": CONFIGURATION_NAME,
            "labels": {"app.kubernetes.io/managed-by": "remit-operator"},
        },
        "webhooks": [
            {
                "name": "pods.inject.remit.dev",
                "objectSelector": {"matchLabels": {POD_LABEL: "true"}},
                "namespaceSelector": {"matchExpressions": [not_system]},
                **common,
            },
            {
                "name": "namespaces.inject.remit.dev",
                "namespaceSelector": {
                    "matchExpressions": [
                        {"key": NAMESPACE_LABEL, "operator": "In", "values": ["enabled"]},
                        not_system,
                    ]
                },
                **common,
            },
        ],
    }


__all__ = [
    "CONFIGURATION_NAME",
    "NAMESPACE_LABEL",
    "POD_LABEL",
    "WEBHOOK_PATH",
    "webhook_configuration",
]
