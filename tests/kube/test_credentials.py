"""Item 7: the operator's own API client follows service-account token rotation.

The kubelet rewrites a pod's projected token before it expires; tokens bound to an object die
with it. Here the operator starts with a token bound to a Secret; the harness writes a new
token into its kubeconfig (the rotation) and deletes the Secret, which invalidates the old token
at once. The operator's next own writes (status, ConfigMaps, NetworkPolicies) must succeed with
the new token, as kopf's watches do.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from remit.demo.issuer import Issuer
from tests.kube.cluster import namespace, wait_for
from tests.kube.controlplane import ApiError, ControlPlane
from tests.kube.operator import NAMESPACE, Installation, OperatorProcess, service_account_token
from tests.kube.world import API, ENABLED, mcpserver
from tests.support.policies import policy, rule


def _binding(control_plane: ControlPlane, name: str) -> str:
    control_plane.admin.apply(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NAMESPACE}}
    )
    return name


@pytest.fixture
def bound(
    control_plane: ControlPlane, installation: Installation, operator: OperatorProcess
) -> Iterator[OperatorProcess]:
    """The session operator restarted with a token bound to a Secret."""
    api = control_plane.admin
    operator.stop()
    first = _binding(control_plane, "token-binding-1")
    token = service_account_token(api, NAMESPACE, installation.service_account, bound_secret=first)
    operator.login(token)
    operator.start()
    operator.wait_ready()
    try:
        yield operator
    finally:
        operator.stop()
        operator.login()
        operator.start()
        operator.wait_ready()
        api.delete("v1", "Secret", NAMESPACE, "token-binding-2")


def _accepted(control_plane: ControlPlane, ns: str, name: str) -> bool:
    found = control_plane.admin.get(API, "AgentPolicy", ns, name) or {}
    conditions = (found.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Accepted" and c["status"] == "True" for c in conditions)


def test_the_operator_follows_a_rotated_token(
    control_plane: ControlPlane, installation: Installation, bound: OperatorProcess, issuer: Issuer
) -> None:
    api = control_plane.admin
    with namespace(api, "rotation", ENABLED) as ns:
        api.create(policy("before", rule("read", tools=["read_*"]), namespace=ns))
        wait_for(lambda: _accepted(control_plane, ns, "before"), timeout=30)

        # Rotate: a new token in the kubeconfig, the old one revoked.
        second = _binding(control_plane, "token-binding-2")
        old = bound.token
        assert old is not None
        new = service_account_token(
            api, NAMESPACE, installation.service_account, bound_secret=second
        )
        control_plane.kubeconfig(bound.kubeconfig, token=new)
        api.delete("v1", "Secret", NAMESPACE, "token-binding-1")
        wait_for(lambda: _rejects(control_plane, old), timeout=30)

        # The operator's own client writes with the new token: status, then a server's objects.
        api.create(policy("after", rule("read", tools=["list_*"]), namespace=ns))
        wait_for(lambda: _accepted(control_plane, ns, "after"), timeout=30)
        api.create(mcpserver(ns, issuer.issuer, issuer.jwks_uri))
        wait_for(lambda: api.get("v1", "ConfigMap", ns, "remit-bundle-key"), timeout=30)
        assert bound.proc is not None
        assert bound.proc.poll() is None


def _rejects(control_plane: ControlPlane, token: str) -> bool:
    try:
        control_plane.as_token(token).request("GET", "/api/v1/namespaces/default/pods")
    except ApiError as exc:
        return exc.status == 401
    return False
