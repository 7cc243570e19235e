"""End to end in a real cluster (opt-in: --e2e): the operator installed by the chart injects the
gateway into a Deployment's pods, pushes every policy change to each of them, and a revoked
grant leaves every sidecar's bundle within the target time.

Reading each sidecar's admin API goes through the API server's pod proxy, so the test needs
no port-forwards. The MCP-call half of the scenario runs in tests/operator (the cluster cannot
reach a token issuer on this machine's loopback).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

pytestmark = pytest.mark.e2e
GROUP, VERSION = "remit.dev", "v1alpha1"
REPLICAS = 3


def _crd(api: Any, namespace: str, plural: str, body: dict[str, Any]) -> None:
    from kubernetes import client  # noqa: PLC0415

    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, body
    )


def _digests(api: Any, namespace: str) -> dict[str, str | None]:
    from kubernetes import client  # noqa: PLC0415

    core = client.CoreV1Api(api)
    pods = core.list_namespaced_pod(namespace, label_selector="app=files-mcp").items
    found: dict[str, str | None] = {}
    for pod in pods:
        if pod.status.phase != "Running":
            continue
        raw = core.connect_get_namespaced_pod_proxy_with_path(
            f"{pod.metadata.name}:9901", namespace, "v1/status"
        )
        data = json.loads(raw) if isinstance(raw, str) else raw
        found[pod.metadata.name] = (data.get("bundle") or {}).get("digest")
    return found


def _wait(check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout}s")


def test_policy_and_revocation_reach_every_pod(cluster: Any, namespace: str, image: str) -> None:
    from kubernetes import client  # noqa: PLC0415

    meta = {"namespace": namespace}
    _crd(
        cluster,
        namespace,
        "mcpservers",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MCPServer",
            "metadata": {"name": "files", **meta},
            "spec": {
                "selector": {"matchLabels": {"app": "files-mcp"}},
                "authentication": {"issuer": "https://issuer.invalid", "audience": "files"},
            },
        },
    )
    client.AppsV1Api(cluster).create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "files", **meta},
            "spec": {
                "replicas": REPLICAS,
                "selector": {"matchLabels": {"app": "files-mcp"}},
                "template": {
                    "metadata": {"labels": {"app": "files-mcp"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "files",
                                "image": image,
                                "command": [
                                    "python",
                                    "-m",
                                    "remit.demo.files_server",
                                    "--port",
                                    "8080",
                                ],
                            }
                        ]
                    },
                },
            },
        },
    )
    first = _wait(
        lambda: (
            (d := _digests(cluster, namespace))
            and len(d) == REPLICAS
            and len(set(d.values())) == 1
            and None not in d.values()
            and d
        ),
        180,
    )
    _crd(
        cluster,
        namespace,
        "agentpolicies",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AgentPolicy",
            "metadata": {"name": "bot", **meta},
            "spec": {
                "servers": ["files"],
                "agents": ["bot"],
                "rules": [
                    {
                        "name": "w",
                        "effect": "Allow",
                        "tools": ["write_file"],
                        "requireConsent": True,
                    }
                ],
            },
        },
    )
    expires = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    _crd(
        cluster,
        namespace,
        "consentgrants",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ConsentGrant",
            "metadata": {"name": "alice", **meta},
            "spec": {
                "subject": "alice",
                "agent": "bot",
                "server": "files",
                "tools": ["write_file"],
                "expiresAt": expires,
                "grantedBy": "alice",
            },
        },
    )
    granted = _wait(
        lambda: (
            (d := _digests(cluster, namespace))
            and len(set(d.values())) == 1
            and set(d.values()) != set(first.values())
            and d
        ),
        30,
    )
    started = time.monotonic()
    client.CustomObjectsApi(cluster).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "consentgrants", "alice", {"spec": {"revoked": True}}
    )
    _wait(
        lambda: (
            (d := _digests(cluster, namespace))
            and len(set(d.values())) == 1
            and set(d.values()) != set(granted.values())
        ),
        30,
    )
    elapsed = time.monotonic() - started
    print(f"revocation reached {REPLICAS} pods in {elapsed:.3f}s (includes polling)")
    assert elapsed <= 5.0
