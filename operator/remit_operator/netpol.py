"""One NetworkPolicy per MCPServer, so the gateway cannot be bypassed inside the cluster.

It selects the server's pods (the MCPServer's own selector) and admits, for ingress, only:
MCP clients to the gateway port, the operator's pods to the admin port, and, when
REMIT_METRICS_SCRAPER names them, the metrics scraper's pods (Prometheus) to the admin port,
where ``/metrics`` is served (a bundle pushed there still needs the operator's signature).
Nothing reaches the upstream (MCP server) port from outside the pod: the gateway talks to it
on 127.0.0.1, which NetworkPolicies do not govern. The policy is owned by the MCPServer and
goes away with it.
"""

from __future__ import annotations

from typing import Any

from remit.api.mcpserver import MCPServer
from remit_operator.settings import Settings

# The label the chart puts on operator pods (templates/deployment.yaml): whatever the release
# is called, the NetworkPolicy admits exactly these pods to a sidecar's admin port.
OPERATOR_POD_LABELS = {"remit.dev/role": "operator"}
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def policy_name(server: MCPServer) -> str:
    """``remit-<server name>``."""
    return f"remit-{server.metadata.name}"[:253]


def pod_selector(server: MCPServer) -> dict[str, Any]:
    """The MCPServer's label selector in Kubernetes form."""
    selector = server.spec.selector
    result: dict[str, Any] = {}
    if selector.match_labels:
        result["matchLabels"] = dict(selector.match_labels)
    if selector.match_expressions:
        result["matchExpressions"] = [
            {
                "key": e.key,
                "operator": e.operator,
                **({"values": list(e.values)} if e.values else {}),
            }
            for e in selector.match_expressions
        ]
    return result


def network_policy(server: MCPServer, settings: Settings) -> dict[str, Any]:
    """The NetworkPolicy for one MCPServer."""
    ports = server.spec.gateway
    admin = [{"protocol": "TCP", "port": ports.admin_port}]
    ingress: list[dict[str, Any]] = [
        {"ports": [{"protocol": "TCP", "port": ports.port}]},
        {
            "from": [
                {
                    "namespaceSelector": {
                        "matchLabels": {NAMESPACE_NAME_LABEL: settings.kube.namespace}
                    },
                    "podSelector": {"matchLabels": dict(OPERATOR_POD_LABELS)},
                }
            ],
            "ports": admin,
        },
    ]
    scraper = settings.metrics.scraper_peer
    if scraper is not None:
        ingress.append({"from": [scraper], "ports": list(admin)})
    metadata: dict[str, Any] = {
        "name": policy_name(server),
        "namespace": server.metadata.namespace,
        "labels": {
            "app.kubernetes.io/managed-by": "remit-operator",
            "remit.dev/mcpserver": server.metadata.name,
        },
    }
    if server.metadata.uid:
        metadata["ownerReferences"] = [
            {
                "apiVersion": server.api_version,
                "kind": "MCPServer",
                "name": server.metadata.name,
                "uid": server.metadata.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata,
        "spec": {
            "podSelector": pod_selector(server),
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }
