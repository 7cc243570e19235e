"""Remit objects and pods for the real-API-server tests (one governed namespace per module)."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.kube.controlplane import ADMIN_USER, Api
from tests.operator.support import AUDIENCE, decide
from tests.support.policies import grant
from tests.support.ports import free_port

__all__ = [
    "API",
    "AUDIENCE",
    "ENABLED",
    "admin_grant",
    "app_pod",
    "call",
    "injected",
    "mcpserver",
    "server_status",
]

API = "remit.dev/v1alpha1"
ENABLED = {"remit.dev/injection": "enabled"}
APP_LABELS = {"app": "files-mcp"}


def mcpserver(namespace: str, issuer: str, jwks_uri: str, name: str = "files") -> dict[str, Any]:
    """The MCPServer for the demo files server, authenticating with the test issuer."""
    port = free_port("127.0.0.1")
    admin_port = free_port("127.0.0.1")  # never the same: tests/support/ports.py
    return {
        "apiVersion": API,
        "kind": "MCPServer",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": dict(APP_LABELS)},
            "upstream": {"port": free_port("127.0.0.1"), "path": "/mcp"},
            "gateway": {"port": port, "adminPort": admin_port},
            "authentication": {"issuer": issuer, "audience": AUDIENCE, "jwksUri": jwks_uri},
        },
    }


def app_pod(
    namespace: str, labels: dict[str, str] | None = None, port: int = 8080
) -> dict[str, Any]:
    """An MCP server pod as a ReplicaSet creates it: ``generateName``, no name."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "files-",
            "namespace": namespace,
            "labels": dict(APP_LABELS if labels is None else labels),
        },
        "spec": {
            "containers": [
                {
                    "name": "files",
                    "image": "files:1",
                    "ports": [{"containerPort": port}],
                    "readinessProbe": {"tcpSocket": {"port": port}},
                }
            ]
        },
    }


def injected(pod: dict[str, Any]) -> bool:
    spec = pod["spec"]
    every = [*(spec.get("initContainers") or []), *spec["containers"]]
    return any(c["name"] == "remit-gateway" for c in every)


def server_status(api: Api, namespace: str, name: str = "files") -> dict[str, Any]:
    found = api.get(API, "MCPServer", namespace, name) or {}
    status: dict[str, Any] = found.get("status") or {}
    return status


def call(url: str, token: str, tool: str, arguments: dict[str, Any]) -> str:
    """One real MCP tools/call through a sidecar: "allowed", "denied", "unavailable" or an error."""
    return asyncio.run(decide(url, token, tool, arguments))


def admin_grant(name: str, **options: Any) -> dict[str, Any]:
    """A ConsentGrant the test's admin applies: ``grantedBy`` names the admin, since the chart's
    admission policy holds cluster admins (system:masters) to their own name too."""
    doc = grant(name, **options)
    doc["spec"]["grantedBy"] = ADMIN_USER
    return doc
