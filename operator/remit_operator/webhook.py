"""Sidecar injection as pure functions: which MCPServer a pod belongs to, and the injected pod.

The mutating webhook (``handlers.py``) calls these; tests call them directly too. Injection is
idempotent: a pod that already has the gateway container is returned unchanged. A pod that
matches two MCPServers, or whose containers already use the gateway's ports, is refused with
a message naming the problem (``InjectionError``), never admitted ungoverned.

``webhook_configuration`` is the MutatingWebhookConfiguration: two webhooks, one for pods
labelled ``remit.dev/inject: "true"``, one for every pod in namespaces labelled
``remit.dev/injection: enabled``; both ``failurePolicy: Fail``, neither for system namespaces.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterable, Mapping
from typing import Any

import jsonpatch

from remit.api.mcpserver import LabelSelector, MCPServer
from remit_operator.errors import InjectionError
from remit_operator.index import GATEWAY_CONTAINER, KEY_ANNOTATION, SERVER_ANNOTATION
from remit_operator.settings import Settings

POD_LABEL = "remit.dev/inject"
NAMESPACE_LABEL = "remit.dev/injection"
KEY_VOLUME = "remit-bundle-key"
KEY_MOUNT = "/etc/remit/bundle-key"
WEBHOOK_PATH = "/inject"
CONFIGURATION_NAME = "remit-sidecar-injector"
GATEWAY_UID = 65532


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics; an empty selector matches nothing (never everything)."""
    if not selector.match_labels and not selector.match_expressions:
        return False
    if any(labels.get(k) != v for k, v in selector.match_labels.items()):
        return False
    for expr in selector.match_expressions:
        present, value = expr.key in labels, labels.get(expr.key)
        ok = {
            "In": present and value in expr.values,
            "NotIn": not present or value not in expr.values,
            "Exists": present,
            "DoesNotExist": not present,
        }[expr.operator]
        if not ok:
            return False
    return True


def matching_server(pod: Mapping[str, Any], servers: Iterable[MCPServer]) -> MCPServer | None:
    """The one MCPServer whose selector matches the pod; InjectionError if several do."""
    metadata = pod.get("metadata") or {}
    labels = metadata.get("labels") or {}
    namespace = metadata.get("namespace")
    found = [
        s
        for s in servers
        if s.metadata.namespace == namespace and selector_matches(s.spec.selector, labels)
    ]
    if len(found) > 1:
        names = ", ".join(sorted(s.metadata.name for s in found))
        raise InjectionError(
            f"pod matches several MCPServers ({names}); make their selectors disjoint"
        )
    return found[0] if found else None


def gateway_container(server: MCPServer, settings: Settings) -> dict[str, Any]:
    """The gateway sidecar container for one MCPServer."""
    spec = server.spec
    upstream = f"http://127.0.0.1:{spec.upstream.port}{spec.upstream.path}"

    def field(path: str) -> dict[str, Any]:
        return {"valueFrom": {"fieldRef": {"fieldPath": path}}}

    env = [
        {"name": "REMIT_SERVER", "value": server.ref},
        {"name": "REMIT_LISTEN", "value": f"0.0.0.0:{spec.gateway.port}"},
        {"name": "REMIT_ADMIN_LISTEN", "value": f"0.0.0.0:{spec.gateway.admin_port}"},
        {"name": "REMIT_UPSTREAM", "value": upstream},
        {"name": "REMIT_BUNDLE_PUBLIC_KEY", "value": f"{KEY_MOUNT}/public.jwk"},
        {"name": "REMIT_POD_NAME", **field("metadata.name")},
        {"name": "REMIT_POD_NAMESPACE", **field("metadata.namespace")},
        {"name": "REMIT_AUDIT_SINK", "value": "stdout"},
    ]
    return {
        "name": GATEWAY_CONTAINER,
        "image": settings.gateway_image,
        "args": ["gateway"],
        "env": env,
        "ports": [
            {"name": "remit-mcp", "containerPort": spec.gateway.port, "protocol": "TCP"},
            {"name": "remit-admin", "containerPort": spec.gateway.admin_port, "protocol": "TCP"},
        ],
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": spec.gateway.admin_port},
            "periodSeconds": 2,
            "failureThreshold": 1,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": spec.gateway.admin_port},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "resources": {
            "requests": {
                "cpu": settings.gateway_cpu_request,
                "memory": settings.gateway_memory_request,
            },
            "limits": {"memory": settings.gateway_memory_limit},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": GATEWAY_UID,
            "runAsGroup": GATEWAY_UID,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": KEY_VOLUME, "mountPath": KEY_MOUNT, "readOnly": True}],
    }


def _used_ports(spec: Mapping[str, Any]) -> set[int]:
    containers = [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
    return {
        int(p["containerPort"])
        for c in containers
        for p in c.get("ports") or []
        if "containerPort" in p
    }


def inject(
    pod: Mapping[str, Any], server: MCPServer, settings: Settings, kid: str
) -> dict[str, Any]:
    """The pod with the gateway sidecar, key volume and annotations (unchanged if injected)."""
    result = copy.deepcopy(dict(pod))
    spec = result.setdefault("spec", {})
    containers = spec.setdefault("containers", [])
    if any(c.get("name") == GATEWAY_CONTAINER for c in containers):
        return result
    clash = _used_ports(spec) & {server.spec.gateway.port, server.spec.gateway.admin_port}
    if clash:
        raise InjectionError(
            f"pod already uses port(s) {sorted(clash)}, which MCPServer {server.ref} gives "
            "the gateway"
        )
    containers.append(gateway_container(server, settings))
    volumes = spec.setdefault("volumes", [])
    if not any(v.get("name") == KEY_VOLUME for v in volumes):
        volumes.append({"name": KEY_VOLUME, "configMap": {"name": settings.public_key_configmap}})
    annotations = result.setdefault("metadata", {}).setdefault("annotations", {})
    annotations[SERVER_ANNOTATION] = server.metadata.name
    annotations[KEY_ANNOTATION] = kid
    annotations["remit.dev/gateway-image"] = settings.gateway_image
    return result


def injection_patch(
    pod: Mapping[str, Any], server: MCPServer, settings: Settings, kid: str
) -> list[dict[str, Any]]:
    """The JSONPatch that turns ``pod`` into the injected pod (empty if already injected)."""
    patch: list[dict[str, Any]] = jsonpatch.make_patch(
        dict(pod), inject(pod, server, settings, kid)
    ).patch
    return patch


def webhook_configuration(
    settings: Settings, ca_bundle: bytes, *, url: str | None = None
) -> dict[str, Any]:
    """The MutatingWebhookConfiguration; ``url`` overrides REMIT_WEBHOOK_SERVICE."""
    if url is not None:
        client: dict[str, Any] = {"url": url.rstrip("/") + WEBHOOK_PATH}
    elif settings.webhook_service:
        namespace, name = settings.webhook_service.split("/", 1)
        client = {
            "service": {"namespace": namespace, "name": name, "path": WEBHOOK_PATH, "port": 443}
        }
    else:
        raise InjectionError("the webhook needs REMIT_WEBHOOK_SERVICE (or a URL) to be reachable")
    client["caBundle"] = base64.b64encode(ca_bundle).decode()
    not_system = {
        "key": "kubernetes.io/metadata.name",
        "operator": "NotIn",
        "values": sorted(settings.protected_namespaces),
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
