"""Sidecar injection as pure functions: which MCPServer a pod belongs to, and the injected pod.

The mutating webhook (``handlers.py``) calls these; tests call them directly too. Injection is
idempotent: a pod that already has the gateway container with a seal this webhook wrote for
its server is returned unchanged (re-invocation); one whose gateway's seal does not verify (a
copy, an edit, a previous release's v1 seal on a new pod) is refused. A pod that matches two
MCPServers, whose containers already use the gateway's ports, or whose shape would let another
process pose as the gateway (``podshape.py``), is refused with a message naming the problem
(``InjectionError``), never admitted ungoverned.

``webhook_configuration`` is the MutatingWebhookConfiguration: two webhooks, one for pods
labelled ``remit.dev/inject: "true"``, one for every pod in namespaces labelled
``remit.dev/injection: enabled``; both ``failurePolicy: Fail``, neither for system namespaces.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import jsonpatch
from joserfc.jwk import OKPKey

from remit.api.mcpserver import LabelSelector, MCPServer
from remit_operator.anchors import ANCHORS_CONFIGMAP
from remit_operator.errors import InjectionError
from remit_operator.index import (
    KEY_ANNOTATION,
    SEAL_ANNOTATION,
    SERVER_ANNOTATION,
    SERVER_LABEL,
    gateway_spec,
)
from remit_operator.podshape import GATEWAY_CONTAINER, exposure
from remit_operator.seal import KEY_VOLUME, container_digest, seal, verify
from remit_operator.settings import Settings

POD_LABEL = "remit.dev/inject"
NAMESPACE_LABEL = "remit.dev/injection"
KEY_MOUNT = "/etc/remit/bundle-key"
ANCHORS_VOLUME = "remit-anchors"
ANCHORS_MOUNT = "/etc/remit/anchors"
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


def native_sidecars(setting: str, version: Mapping[str, Any] | None) -> bool:
    """Whether to inject a native sidecar (an init container with ``restartPolicy: Always``).

    ``setting`` is REMIT_GATEWAY_NATIVE_SIDECAR: ``true``, ``false`` or ``auto``; ``auto`` means
    yes on Kubernetes 1.29 or later (where SidecarContainers is on by default), judged from the
    API server's ``/version``, and no when the version is unknown.
    """
    if setting in ("true", "false"):
        return setting == "true"
    if not version:
        return False
    try:
        major = int(str(version.get("major", "")).rstrip("+"))
        minor = int(str(version.get("minor", "")).rstrip("+"))
    except ValueError:
        return False
    return (major, minor) >= (1, 29)


def evidence_volumes() -> list[dict[str, Any]]:
    """The namespace's chain anchors (optional: a new namespace has none yet). The argument
    digest key is never mounted: the operator delivers it over the admin port
    (``auditkeys.py``), so no pod spec names a key a pod author could swap."""
    return [{"name": ANCHORS_VOLUME, "configMap": {"name": ANCHORS_CONFIGMAP, "optional": True}}]


def telemetry_env(server: MCPServer, settings: Settings) -> list[dict[str, Any]]:
    """The sidecar's tracing variables: none without an endpoint (no tracing, no cost)."""
    telemetry = server.spec.telemetry
    endpoint = telemetry.otlp_endpoint or settings.gateway.otlp_endpoint
    if not endpoint:
        return []
    return [
        {"name": "REMIT_OTLP_ENDPOINT", "value": endpoint},
        {"name": "REMIT_TRACE_SAMPLE_RATIO", "value": str(telemetry.sample_ratio)},
        {"name": "REMIT_OTLP_LOGS", "value": "true" if telemetry.export_records else "false"},
    ]


def gateway_container(
    server: MCPServer, settings: Settings, *, native: bool = False
) -> dict[str, Any]:
    """The gateway sidecar container for one MCPServer (a native sidecar when ``native``)."""
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
        {"name": "REMIT_AUDIT_SINK", "value": "stdout"},
        {"name": "REMIT_AUDIT_DIGEST_KEY_DELIVERED", "value": "true"},
        {
            "name": "REMIT_AUDIT_ANCHOR_FILE",  # $(...): the pod name, set above
            "value": f"{ANCHORS_MOUNT}/{server.metadata.name}.$(REMIT_POD_NAME)",
        },
        *telemetry_env(server, settings),
    ]
    container: dict[str, Any] = {
        "name": GATEWAY_CONTAINER,
        "image": settings.gateway.image,
        "args": ["gateway"],
        "env": env,
        "ports": [
            {"name": "remit-mcp", "containerPort": spec.gateway.port, "protocol": "TCP"},
            {"name": "remit-admin", "containerPort": spec.gateway.admin_port, "protocol": "TCP"},
        ],
        # The kubelet reports the container "started" once its admin API answers: the operator
        # pushes the first bundle then, and a native sidecar holds the app containers back.
        "startupProbe": {
            "httpGet": {"path": "/healthz", "port": spec.gateway.admin_port},
            "periodSeconds": 1,
            "failureThreshold": 120,
        },
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
                "cpu": settings.gateway.cpu_request,
                "memory": settings.gateway.memory_request,
            },
            "limits": {"memory": settings.gateway.memory_limit},
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
        "volumeMounts": [
            {"name": KEY_VOLUME, "mountPath": KEY_MOUNT, "readOnly": True},
            {"name": ANCHORS_VOLUME, "mountPath": ANCHORS_MOUNT, "readOnly": True},
        ],
    }
    if native:
        container["restartPolicy"] = "Always"
    return container


def _used_ports(spec: Mapping[str, Any]) -> set[int]:
    containers = [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
    return {
        int(p["containerPort"])
        for c in containers
        for p in c.get("ports") or []
        if "containerPort" in p
    }


def _check_shape(spec: Mapping[str, Any], server: MCPServer) -> None:
    why = exposure(spec)
    if why is not None:
        raise InjectionError(
            f"{why}, so something other than the gateway of MCPServer {server.ref} could "
            "answer on its ports or run inside it; the operator would never trust it"
        )


def inject(
    pod: Mapping[str, Any],
    server: MCPServer,
    settings: Settings,
    key: OKPKey,
    *,
    native: bool = False,
    keys: Sequence[OKPKey] = (),
) -> dict[str, Any]:
    """The pod with the gateway sidecar, key volume, pull secrets, label and sealed annotations.

    ``native`` puts the gateway first among the init containers with ``restartPolicy: Always``
    (Kubernetes >= 1.29): every other init container and native sidecar starts after its
    startup probe passed, and a Job's pod completes when its containers do; otherwise it is
    one more container. A pod that already has the gateway is returned unchanged when its
    seal verifies for ``server`` under ``key`` or ``keys`` (this webhook's own re-invocation);
    otherwise it is a copied or edited gateway and refused (``InjectionError``), as is a pod
    whose shape would let something else pose as the gateway (``podshape.exposure``).
    """
    result = copy.deepcopy(dict(pod))
    spec = result.setdefault("spec", {})
    present = gateway_spec(spec)
    if present is not None:
        seal_value = (result.get("metadata") or {}).get("annotations", {}).get(SEAL_ANNOTATION)
        digest = container_digest(present, spec)
        uid = server.metadata.uid
        if not verify([key, *keys], uid, server.ref, digest, seal_value):
            raise InjectionError(
                f"pod already has a {GATEWAY_CONTAINER} container that this webhook did not "
                f"inject for MCPServer {server.ref} (its seal does not verify: a copied or "
                "edited gateway); remove it and the remit.dev annotations, the webhook "
                "injects its own"
            )
        _check_shape(spec, server)
        return result
    clash = _used_ports(spec) & {server.spec.gateway.port, server.spec.gateway.admin_port}
    if clash:
        raise InjectionError(
            f"pod already uses port(s) {sorted(clash)}, which MCPServer {server.ref} gives "
            "the gateway"
        )
    container = gateway_container(server, settings, native=native)
    if native:
        spec["initContainers"] = [container, *(spec.get("initContainers") or [])]
    else:
        spec.setdefault("containers", []).append(container)
    volumes = spec.setdefault("volumes", [])
    injected = [
        {"name": KEY_VOLUME, "configMap": {"name": settings.signing.public_key_configmap}},
        *evidence_volumes(),
    ]
    taken = {v.get("name") for v in volumes if isinstance(v, Mapping)}
    clash_names = sorted(str(v["name"]) for v in injected if v["name"] in taken)
    if clash_names:  # the pod's own volume would stand in for the one the gateway trusts
        raise InjectionError(
            f"pod already has volume(s) {', '.join(clash_names)}, which the gateway of "
            f"MCPServer {server.ref} mounts; rename them"
        )
    volumes.extend(injected)
    pull = spec.setdefault("imagePullSecrets", [])
    for name in settings.gateway.pull_secrets:
        if not any(s.get("name") == name for s in pull):
            pull.append({"name": name})
    if not pull:
        del spec["imagePullSecrets"]
    metadata = result.setdefault("metadata", {})
    # The label only narrows the operator's pod watch (the annotation names the server); a
    # label value is at most 63 characters, so a longer name leaves it empty.
    name = server.metadata.name
    metadata.setdefault("labels", {})[SERVER_LABEL] = name if len(name) <= 63 else ""
    annotations = metadata.setdefault("annotations", {})
    annotations[SERVER_ANNOTATION] = server.metadata.name
    annotations[KEY_ANNOTATION] = str(key.kid)
    annotations["remit.dev/gateway-image"] = settings.gateway.image
    _check_shape(spec, server)
    digest = container_digest(gateway_spec(spec) or {}, spec)
    annotations[SEAL_ANNOTATION] = seal(key, server.metadata.uid or "", server.ref, digest)
    return result


def injection_patch(
    pod: Mapping[str, Any],
    server: MCPServer,
    settings: Settings,
    key: OKPKey,
    *,
    native: bool = False,
) -> list[dict[str, Any]]:
    """The JSONPatch that turns ``pod`` into the injected pod (empty if already injected)."""
    patch: list[dict[str, Any]] = jsonpatch.make_patch(
        dict(pod), inject(pod, server, settings, key, native=native)
    ).patch
    return patch


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
