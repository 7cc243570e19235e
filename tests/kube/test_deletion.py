"""Item 4, deletion: an MCPServer, and a whole namespace, go away completely with the operator
running and with it stopped, leaving no finalizer behind.

No handler of the operator needs a finalizer (the per-server sync loops are the operator's own
tasks, not kopf daemons), so nothing waits for the operator: the API server and the garbage
collector delete the MCPServer and collect what it owns (its NetworkPolicy) through
ownerReferences. Objects an older version left with kopf's finalizer (``remit.dev/operator``)
lose it as soon as the operator sees them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from remit.demo.issuer import Issuer
from tests.kube.cluster import wait_for
from tests.kube.controlplane import Api, ControlPlane
from tests.kube.kubelet import Kubelet
from tests.kube.operator import OperatorProcess
from tests.kube.world import API, ENABLED, admin_grant, app_pod, mcpserver
from tests.support.policies import policy, rule

NETPOL = "networking.k8s.io/v1"
# The garbage collector discovers resource kinds every 30 s and retries an owner it cannot map
# with a backoff: in a session that has just installed the CRDs (this module run alone), it
# needs that long before it collects what an MCPServer owned.
COLLECTED_SECONDS = 90
FINALIZER = "remit.dev/operator"  # kopf's, as older versions (with a sync daemon) left it


def _populated(
    api: Api, kubelet: Kubelet, issuer: Issuer, prefix: str
) -> tuple[str, dict[str, Any]]:
    """A namespace with an MCPServer (its finalizer and NetworkPolicy in place), a policy, a
    grant and a running injected pod."""
    ns = f"{prefix}-{uuid.uuid4().hex[:6]}"
    api.create(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": ENABLED}}
    )
    server = mcpserver(ns, issuer.issuer, issuer.jwks_uri)
    api.create(server)
    api.create(policy("bot", rule("read", tools=["read_*"]), namespace=ns))
    api.create(admin_grant("g", expires_at=datetime.now(UTC) + timedelta(days=1), namespace=ns))
    wait_for(lambda: api.get("v1", "ConfigMap", ns, "remit-bundle-key"), timeout=30)
    pod = api.create(app_pod(ns, port=server["spec"]["upstream"]["port"]))
    kubelet.run(ns, pod["metadata"]["name"])
    wait_for(lambda: api.list(NETPOL, "NetworkPolicy", ns), timeout=30)
    found = api.get(API, "MCPServer", ns, "files")
    assert found is not None
    assert not found["metadata"].get("finalizers"), found["metadata"]  # nothing to wait for
    return ns, server


def _gone(api: Api, ns: str) -> bool:
    return api.get("v1", "Namespace", None, ns) is None


def test_deleting_an_mcpserver_and_a_namespace_completes_with_the_operator_running(
    control_plane: ControlPlane, operator: OperatorProcess, kubelet: Kubelet, issuer: Issuer
) -> None:
    api = control_plane.admin
    ns, _ = _populated(api, kubelet, issuer, "delete-running")
    api.delete(API, "MCPServer", ns, "files")
    wait_for(lambda: api.get(API, "MCPServer", ns, "files") is None, timeout=30)
    wait_for(lambda: not api.list(NETPOL, "NetworkPolicy", ns), timeout=COLLECTED_SECONDS)
    other, _ = _populated(api, kubelet, issuer, "delete-ns")
    api.delete("v1", "Namespace", None, other)  # its MCPServer, pod, policy and grant with it
    wait_for(lambda: _gone(api, other), timeout=60)
    api.delete("v1", "Namespace", None, ns)


def test_deletions_made_while_the_operator_is_stopped_complete_when_it_is_back(
    control_plane: ControlPlane, operator: OperatorProcess, kubelet: Kubelet, issuer: Issuer
) -> None:
    api = control_plane.admin
    ns, _ = _populated(api, kubelet, issuer, "delete-stopped")
    other, _ = _populated(api, kubelet, issuer, "delete-ns-stopped")
    operator.stop()
    try:
        api.delete(API, "MCPServer", ns, "files")
        api.delete("v1", "Namespace", None, other)
    finally:
        operator.start()
        operator.wait_ready()
    wait_for(lambda: api.get(API, "MCPServer", ns, "files") is None, timeout=60)
    wait_for(lambda: _gone(api, other), timeout=60)
    api.delete("v1", "Namespace", None, ns)


def test_deleting_an_mcpserver_completes_while_the_operator_is_stopped(
    control_plane: ControlPlane, operator: OperatorProcess, kubelet: Kubelet, issuer: Issuer
) -> None:
    api = control_plane.admin
    ns, _ = _populated(api, kubelet, issuer, "delete-down")
    operator.stop()
    try:
        api.delete(API, "MCPServer", ns, "files")
        wait_for(lambda: api.get(API, "MCPServer", ns, "files") is None, timeout=10)
        wait_for(lambda: not api.list(NETPOL, "NetworkPolicy", ns), timeout=COLLECTED_SECONDS)
    finally:
        operator.start()
        operator.wait_ready()
        api.delete("v1", "Namespace", None, ns)


def test_deleting_a_namespace_completes_while_the_operator_is_stopped(
    control_plane: ControlPlane, operator: OperatorProcess, kubelet: Kubelet, issuer: Issuer
) -> None:
    api = control_plane.admin
    ns, _ = _populated(api, kubelet, issuer, "delete-ns-down")
    operator.stop()
    try:
        api.delete("v1", "Namespace", None, ns)  # its MCPServer, pod, policy and grant with it
        wait_for(lambda: _gone(api, ns), timeout=60)
    finally:
        operator.start()
        operator.wait_ready()


def test_the_finalizer_an_older_version_left_is_removed_when_the_operator_starts(
    control_plane: ControlPlane, operator: OperatorProcess, issuer: Issuer
) -> None:
    """An MCPServer made while an older version (with kopf daemons) ran carries its finalizer;
    once this version has started, deleting it no longer needs a running operator."""
    api = control_plane.admin
    ns = f"delete-old-{uuid.uuid4().hex[:6]}"
    api.create(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": ENABLED}}
    )
    operator.stop()
    try:
        old = mcpserver(ns, issuer.issuer, issuer.jwks_uri)
        old["metadata"]["finalizers"] = [FINALIZER]
        api.create(old)
        found = api.get(API, "MCPServer", ns, "files") or {}
        assert found["metadata"]["finalizers"] == [FINALIZER]
    finally:
        operator.start()
        operator.wait_ready()
    wait_for(
        lambda: not (api.get(API, "MCPServer", ns, "files") or {})["metadata"].get("finalizers"),
        timeout=30,
    )
    operator.stop()
    try:
        api.delete("v1", "Namespace", None, ns)
        wait_for(lambda: _gone(api, ns), timeout=60)
    finally:
        operator.start()
        operator.wait_ready()
