"""Value sets the chart tests render: the defaults and each non-default path through the
templates (peering with and without CRDs, cert-manager, supplied key, no CRDs, monitoring,
pinned digest)."""

from __future__ import annotations

from typing import Any

HA: dict[str, Any] = {"operator": {"replicaCount": 3}}
# Peering with CRDs managed elsewhere (kopf's peering CRD too), not kept, a short lifetime.
HA_OWN_CRDS: dict[str, Any] = {
    "operator": {"replicaCount": 2},
    "crds": {"enabled": False},
    "peering": {"lifetime": 15},
}
CERT_MANAGER: dict[str, Any] = {"webhook": {"tls": {"certManager": {"enabled": True}}}}
CERT_MANAGER_ISSUER: dict[str, Any] = {
    "webhook": {
        "tls": {
            "certManager": {
                "enabled": True,
                "issuerRef": {"kind": "ClusterIssuer", "name": "corp-ca"},
            }
        }
    }
}
CHART_TLS: dict[str, Any] = {"webhook": {"tls": {"operatorManaged": False}}}
SIDECARS: dict[str, Any] = {
    "gateway": {
        "nativeSidecar": "false",
        "imagePullSecrets": [{"name": "regcred"}, {"name": "mirror"}],
        "metricsScraper": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        },
    },
    "operator": {"push": {"concurrency": 8, "concurrencyTotal": 64, "deadlineSeconds": 5}},
}
SUPPLIED_KEY: dict[str, Any] = {"signingKey": {"existingSecret": "my-signing-key"}}
OPERATOR_KEY: dict[str, Any] = {"signingKey": {"create": False}}
NO_CRDS: dict[str, Any] = {"crds": {"enabled": False}}
MONITORED: dict[str, Any] = {
    "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}
}
OBSERVED: dict[str, Any] = {
    "gateway": {"tracing": {"otlpEndpoint": "http://otel-collector.observability:4318"}},
    "monitoring": {
        "dashboard": {"enabled": True, "annotations": {"grafana_folder": "Remit"}},
        "alerts": {"enabled": True, "labels": {"release": "prom"}},
    },
}
PINNED: dict[str, Any] = {
    "image": {"repository": "registry.example/remit", "digest": "sha256:" + "a" * 64},
    "gateway": {"image": {"tag": "0.1.1"}},
    "imagePullSecrets": [{"name": "regcred"}],
    "operator": {
        "logLevel": "debug",
        "extraEnv": [{"name": "EXTRA", "value": "1"}],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
    },
    "webhook": {"failurePolicy": "Ignore", "excludeNamespaces": ["legacy"]},
    "serviceAccount": {"annotations": {"example.com/role": "remit"}},
}
CONSENT: dict[str, Any] = {
    "consent": {
        "enabled": True,
        "publicUrl": "https://consent.example",
        "issuer": "https://idp.example",
        "clientSecretName": "consent-client",
        "sessionKeySecretName": "consent-session",
        "admins": ["auditor@example.com"],
    },
    "admission": {"grantedBy": {"usernamePrefix": "oidc:", "exemptGroups": []}},
}

NON_DEFAULT: dict[str, dict[str, Any]] = {
    "ha": HA,
    "ha-own-crds": HA_OWN_CRDS,
    "cert-manager": CERT_MANAGER,
    "cert-manager-issuer": CERT_MANAGER_ISSUER,
    "chart-tls": CHART_TLS,
    "sidecars": SIDECARS,
    "supplied-key": SUPPLIED_KEY,
    "operator-key": OPERATOR_KEY,
    "no-crds": NO_CRDS,
    "monitored": MONITORED,
    "observed": OBSERVED,
    "pinned": PINNED,
    "consent": CONSENT,
}
ALL: dict[str, dict[str, Any]] = {"default": {}, **NON_DEFAULT}
