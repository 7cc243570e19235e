"""The gateway sidecar the webhook injects: its container, volumes and environment.

What a governed pod runs beside its MCP server is decided here, in one place: the image and
arguments, the ports the MCPServer gives the gateway, the probes the operator's first push
waits for, the hardened security context, the bundle public key and chain anchors it mounts
(never the digest key: the operator delivers that over the admin port), and the tracing
variables. ``webhook.inject`` places it in the pod and seals it; tests and the settings
documentation read it directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from remit.api.mcpserver import MCPServer
from remit_operator.anchors import ANCHORS_CONFIGMAP
from remit_operator.podshape import GATEWAY_CONTAINER
from remit_operator.seal import KEY_VOLUME
from remit_operator.settings import Settings

KEY_MOUNT = "/etc/remit/bundle-key"
ANCHORS_VOLUME = "remit-anchors"
ANCHORS_MOUNT = "/etc/remit/anchors"
GATEWAY_UID = 65532


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


# Seconds a stopping gateway may need past its grace: uvicorn's 5 s backstop for a request
# not at the upstream, the audit chain's close and the exit (docs/gateway.md, "Stopping").
SHUTDOWN_MARGIN = 10


def shutdown_env(termination_grace: Any) -> list[dict[str, Any]]:
    """``REMIT_SHUTDOWN_GRACE_SECONDS`` fitted inside the pod's own
    ``terminationGracePeriodSeconds`` (``SHUTDOWN_MARGIN`` less, at least 0); none when the
    pod keeps Kubernetes' default of 30 s, which the gateway's default of 20 s fits."""
    if not isinstance(termination_grace, int) or isinstance(termination_grace, bool):
        return []
    grace = max(termination_grace - SHUTDOWN_MARGIN, 0)
    return [{"name": "REMIT_SHUTDOWN_GRACE_SECONDS", "value": str(grace)}]


def gateway_container(
    server: MCPServer,
    settings: Settings,
    *,
    native: bool = False,
    termination_grace: Any = None,
) -> dict[str, Any]:
    """The gateway sidecar container for one MCPServer (a native sidecar when ``native``);
    ``termination_grace`` is the pod's ``terminationGracePeriodSeconds``, if it sets one."""
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
        *shutdown_env(termination_grace),
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


__all__ = [
    "ANCHORS_MOUNT",
    "ANCHORS_VOLUME",
    "GATEWAY_UID",
    "KEY_MOUNT",
    "evidence_volumes",
    "gateway_container",
    "native_sidecars",
    "shutdown_env",
    "telemetry_env",
]
