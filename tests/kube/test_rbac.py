"""Item 2, RBAC: the chart grants the operator exactly what it uses on a real API server.

The API server audits every request of the operator's ServiceAccount with its authorization
decision. After a whole lifecycle (a damaged webhook certificate renewed, a server with a
running pod, a policy, a grant, a port change, deletion, a finalizer an older version left),
no request was forbidden (nothing
missing) and every verb on every resource the chart grants was used (nothing superfluous).
OwnerReferencesPermissionEnforcement is on, so ``blockOwnerDeletion`` owner references need
``update`` on ``mcpservers/finalizers``.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from remit.audit.arguments import key_id
from remit.audit.keydelivery import server_key
from remit.demo.issuer import Issuer
from tests.kube.cluster import namespace, wait_for
from tests.kube.controlplane import Api, ControlPlane
from tests.kube.kubelet import Kubelet, RunningPod
from tests.kube.operator import NAMESPACE, Installation, OperatorProcess
from tests.kube.world import API, ENABLED, admin_grant, app_pod, mcpserver, server_status
from tests.support.policies import policy, rule

# Granted verbs that are not requests of their own, with the proof that they are needed.
EXPLAINED: dict[tuple[str, str, str], str] = {
    ("remit.dev", "mcpservers/finalizers", "update"): (
        "checked by OwnerReferencesPermissionEnforcement when the operator creates a "
        "NetworkPolicy owned (blockOwnerDeletion) by its MCPServer; _lifecycle waits for it"
    ),
}


def _operator_events(
    control_plane: ControlPlane, installation: Installation
) -> list[dict[str, Any]]:
    user = f"system:serviceaccount:{NAMESPACE}:{installation.service_account}"
    return [
        e
        for e in control_plane.audit()
        if e["user"]["username"] == user
        and (e.get("stage") == "ResponseComplete" or e.get("verb") == "watch")
    ]


def _granted(installation: Installation) -> set[tuple[str, str, str]]:
    """(apiGroup, resource[/subresource], verb) for every rule bound to the ServiceAccount."""
    account = {"kind": "ServiceAccount", "name": installation.service_account}
    bound = {
        (b["roleRef"]["kind"], b["roleRef"]["name"])
        for b in installation.objects
        if b["kind"] in ("ClusterRoleBinding", "RoleBinding")
        and any(account.items() <= s.items() for s in b.get("subjects") or [])
    }  # not the consent service's ClusterRole (consent.enabled), which its own tests cover
    grants = set()
    for obj in installation.objects:
        if (obj["kind"], obj["metadata"]["name"]) not in bound:
            continue
        for r in obj.get("rules") or []:
            for group in r.get("apiGroups") or [""]:
                for resource in r.get("resources") or []:
                    for verb in r.get("verbs") or []:
                        grants.add((group, resource, verb))
    return grants


def _used(event: dict[str, Any]) -> tuple[str, str, str] | None:
    ref = event.get("objectRef") or {}
    if not ref.get("resource"):
        return None
    resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
    return (ref.get("apiGroup") or "", resource, event["verb"])


def _renewal(control_plane: ControlPlane, operator: OperatorProcess) -> None:
    """A damaged webhook certificate: the restarted operator writes a new one into its Secret."""
    api = control_plane.admin
    garbage = base64.b64encode(b"not a certificate").decode()
    api.patch("v1", "Secret", NAMESPACE, "remit-webhook-tls", {"data": {"tls.crt": garbage}})
    operator.stop()
    operator.start()
    operator.wait_ready()
    secret = api.get("v1", "Secret", NAMESPACE, "remit-webhook-tls") or {}
    assert secret["data"]["tls.crt"] != garbage


def _lifecycle(control_plane: ControlPlane, kubelet: Kubelet, issuer: Issuer) -> None:
    """Everything the operator does for users, once."""
    api = control_plane.admin
    with namespace(api, "rbac", ENABLED) as ns:
        server = mcpserver(ns, issuer.issuer, issuer.jwks_uri)
        api.create(server)
        api.create(policy("bot", rule("read", tools=["read_*"]), namespace=ns))
        later = datetime.now(UTC) + timedelta(days=1)
        api.create(admin_grant("g", expires_at=later, namespace=ns))
        wait_for(lambda: api.get("v1", "ConfigMap", ns, "remit-bundle-key"), timeout=30)
        pod = api.create(app_pod(ns, port=server["spec"]["upstream"]["port"]))
        running = kubelet.run(ns, pod["metadata"]["name"])
        kubelet.wait_ready(running)  # ready only once it holds its digest key
        wait_for(lambda: server_status(api, ns).get("sidecarsInSync") == 1, timeout=30)
        _holds_its_digest_key(api, ns, running)
        netpols = wait_for(
            lambda: api.list("networking.k8s.io/v1", "NetworkPolicy", ns), timeout=30
        )
        owners = netpols[0]["metadata"]["ownerReferences"]
        assert [o["blockOwnerDeletion"] for o in owners] == [True]
        # A port change: the NetworkPolicy is patched.
        before = api.list("networking.k8s.io/v1", "NetworkPolicy", ns)[0]["spec"]
        admin_port = server["spec"]["gateway"]["adminPort"] + 1
        api.patch(API, "MCPServer", ns, "files", {"spec": {"gateway": {"adminPort": admin_port}}})
        wait_for(
            lambda: api.list("networking.k8s.io/v1", "NetworkPolicy", ns)[0]["spec"] != before,
            timeout=30,
        )
        api.delete(API, "MCPServer", ns, "files")
        wait_for(lambda: api.get(API, "MCPServer", ns, "files") is None, timeout=30)
        # An MCPServer an older version left with kopf's finalizer: the operator patches it off.
        old = mcpserver(ns, issuer.issuer, issuer.jwks_uri, name="old")
        old["metadata"]["finalizers"] = ["remit.dev/operator"]
        api.create(old)
        wait_for(
            lambda: not (api.get(API, "MCPServer", ns, "old") or {})["metadata"].get("finalizers"),
            timeout=30,
        )
    with namespace(api, "rbac-stale", ENABLED) as ns:
        # A stale public-key ConfigMap, as after a key rotation: the operator patches it.
        stale = {"public.jwk": "{}"}
        configmap = {"apiVersion": "v1", "kind": "ConfigMap", "data": stale}
        configmap["metadata"] = {"name": "remit-bundle-key", "namespace": ns}
        api.create(configmap)
        api.create(mcpserver(ns, issuer.issuer, issuer.jwks_uri))
        wait_for(
            lambda: (api.get("v1", "ConfigMap", ns, "remit-bundle-key") or {}).get("data") != stale,
            timeout=30,
        )


def _holds_its_digest_key(api: Api, ns: str, running: RunningPod) -> None:
    """The operator delivered the server's digest key, derived from the root Secret in its own
    namespace, over the admin port; nothing in the server's namespace holds a key."""
    secret = api.get("v1", "Secret", NAMESPACE, "remit-audit-key")
    assert secret is not None, "the operator made no root key"
    root = base64.b64decode(secret["data"]["key"]).strip()
    url = f"http://{running.ip}:{running.admin_port}/v1/status"
    held = httpx.get(url, timeout=5).json()["auditKey"]["holds"]
    assert held == key_id(server_key(root, f"{ns}/files"))
    assert api.get("v1", "Secret", ns, "remit-audit-key") is None


def test_no_request_of_the_operator_is_forbidden_and_every_granted_verb_is_used(
    control_plane: ControlPlane,
    installation: Installation,
    operator: OperatorProcess,
    kubelet: Kubelet,
    issuer: Issuer,
) -> None:
    _renewal(control_plane, operator)
    _lifecycle(control_plane, kubelet, issuer)
    events = _operator_events(control_plane, installation)
    assert events, "the audit log recorded nothing from the operator"
    forbidden = sorted(
        {
            f"{e['verb']} {e['requestURI']}"
            for e in events
            # Only RBAC's refusals: a 403 for writing into a terminating namespace is no
            # missing permission.
            if e.get("annotations", {}).get("authorization.k8s.io/decision") == "forbid"
        }
    )
    assert forbidden == [], "missing RBAC:\n" + "\n".join(forbidden)
    used = {u for e in events if (u := _used(e)) is not None}
    unused = sorted(g for g in _granted(installation) - used if g not in EXPLAINED)
    assert unused == [], f"granted but never used: {unused}"
