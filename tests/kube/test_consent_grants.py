"""Evidence that cannot be forged, on the real API server: the chart's ValidatingAdmissionPolicy
lets a user create a ConsentGrant only with ``grantedBy`` equal to their own user name and
without ``evidence``; the consent service's ServiceAccount (with the chart's RBAC for it)
writes the human's grant with its evidence through ``KubeStore`` and revokes it, keeping it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client

from remit.api.consentgrant import ConsentGrant
from remit.consent.grants import Login, build_grant, document
from remit.consent.kube import KubeStore
from remit.policy.consentrequest import ConsentRequest
from tests.helm.chart import manifests
from tests.kube.cluster import namespace, wait_for
from tests.kube.controlplane import ADMIN_USER, ApiError, ControlPlane
from tests.kube.operator import NAMESPACE, Installation, service_account_token
from tests.support.policies import grant

CONSENT_VALUES = {
    "consent": {"enabled": True, "publicUrl": "https://c.example", "issuer": "https://i.example"}
}


def _user(plane: ControlPlane, ns: str, name: str) -> tuple[Any, str]:
    """A ServiceAccount allowed to create ConsentGrants in ``ns``: its API and user name."""
    admin = plane.admin
    admin.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}, ns)
    rules = [{"apiGroups": ["remit.dev"], "resources": ["consentgrants"], "verbs": ["create"]}]
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name}, "rules": rules}  # fmt: skip
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
    }
    admin.create(role, ns)
    admin.create(binding, ns)
    return plane.as_token(service_account_token(admin, ns, name)), (
        f"system:serviceaccount:{ns}:{name}"
    )


def _refused(api: Any, doc: dict[str, Any], ns: str) -> str:
    with pytest.raises(ApiError) as refused:
        api.create(doc, ns)
    return refused.value.message


def test_a_user_can_grant_only_on_their_own_behalf(
    control_plane: ControlPlane, installation: Installation
) -> None:
    with namespace(control_plane.admin, "consent-vap") as ns:
        api, username = _user(control_plane, ns, "alice")
        forged = grant("forged", namespace=ns, subject="bob@example.com")
        forged["spec"]["grantedBy"] = "bob@example.com"
        # The policy takes effect once the API server has loaded it: poll until refused.
        admin = control_plane.admin
        message = wait_for(lambda: _attempt(api, admin, forged, ns), timeout=30)
        assert "spec.grantedBy must be your own user name" in message
        assert username in message
        with_evidence = grant("evidence", namespace=ns)
        with_evidence["spec"]["grantedBy"] = username
        with_evidence["spec"]["evidence"] = {
            "issuer": "https://i.example",
            "subject": "bob@example.com",
            "consentedAt": "2026-01-01T00:00:00Z",
            "request": "r1",
            "scope": "tool",
        }
        assert "spec.evidence is written only by the consent service" in _refused(
            api, with_evidence, ns
        )
        honest = grant("honest", namespace=ns)
        honest["spec"]["grantedBy"] = username
        created = api.create(honest, ns)
        assert created["spec"]["grantedBy"] == username


def _attempt(api: Any, admin: Any, doc: dict[str, Any], ns: str) -> str | None:
    """The refusal's message; None (and the grant deleted again) while the API server has not
    loaded the new policy yet (wait_for fails the test if it never does)."""
    try:
        api.create(doc, ns)
    except ApiError as exc:
        return exc.message if exc.status in (403, 422) else None
    admin.delete("remit.dev/v1alpha1", "ConsentGrant", ns, doc["metadata"]["name"])
    return None


def _consent_service(control_plane: ControlPlane) -> tuple[KubeStore, str]:
    """A ``KubeStore`` authenticated as the chart's consent ServiceAccount (with its RBAC), and
    its token."""
    admin = control_plane.admin
    for obj in manifests(CONSENT_VALUES):
        if obj["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding") and obj[
            "metadata"
        ]["name"].endswith("-consent"):
            admin.apply(obj, NAMESPACE)
    name = next(
        o["metadata"]["name"]
        for o in manifests(CONSENT_VALUES)
        if o["kind"] == "ServiceAccount" and o["metadata"]["name"].endswith("-consent")
    )
    token = service_account_token(admin, NAMESPACE, name)
    configuration = client.Configuration()
    configuration.host = control_plane.server
    configuration.ssl_ca_cert = control_plane.ca_file
    configuration.api_key = {"authorization": f"Bearer {token}"}
    return KubeStore(client.ApiClient(configuration)), token


def _alices_grant(ns: str, now: datetime) -> ConsentGrant:
    request = ConsentRequest(
        id="01ABCDEF", server=f"{ns}/files", issuer="https://i.example",
        subject="alice@example.com", agent="support-bot", tool="write_file",
        tool_hash=None, rule=f"{ns}/p#r", rule_when=None, max_seconds=3600,
        issued_at=int(now.timestamp()), expires_at=int(now.timestamp()) + 600,
    )  # fmt: skip
    login = Login("https://i.example", "alice@example.com", int(now.timestamp()))
    return build_grant(request, login, "tool", [], 900, now)


def test_a_cluster_admin_cannot_record_consent_in_someone_elses_name(
    control_plane: ControlPlane, installation: Installation
) -> None:
    """system:masters is held to the rule (the chart exempts nobody by default); the consent
    service's ServiceAccount writes the very same grant."""
    admin = control_plane.admin
    store, _ = _consent_service(control_plane)
    with namespace(admin, "consent-admin") as ns:
        made = _alices_grant(ns, datetime.now(UTC))
        forged = document(made)
        forged["metadata"]["namespace"] = ns
        message = wait_for(lambda: _attempt(admin, admin, forged, ns), timeout=30)
        assert "spec.grantedBy must be your own user name" in message
        assert ADMIN_USER in message
        # Naming itself, the admin still cannot write the login's evidence.
        forged["spec"]["grantedBy"] = ADMIN_USER
        assert "spec.evidence is written only by the consent service" in _refused(admin, forged, ns)
        wait_for(lambda: _created(store, made), timeout=20)  # RBAC bindings take a moment
        stored = admin.get("remit.dev/v1alpha1", "ConsentGrant", ns, made.metadata.name)
        assert stored is not None
        assert stored["spec"]["grantedBy"] == "alice@example.com"
        assert stored["spec"]["evidence"]["subject"] == "alice@example.com"


def test_the_consent_service_writes_and_revokes_the_humans_grant(
    control_plane: ControlPlane, installation: Installation
) -> None:
    admin = control_plane.admin
    store, token = _consent_service(control_plane)
    with namespace(admin, "consent-svc") as ns:
        now = datetime.now(UTC)
        made = _alices_grant(ns, now)
        wait_for(lambda: _created(store, made), timeout=20)  # RBAC bindings take a moment
        stored = admin.get("remit.dev/v1alpha1", "ConsentGrant", ns, made.metadata.name)
        assert stored is not None
        assert stored["spec"]["grantedBy"] == "alice@example.com"  # not the ServiceAccount
        assert stored["spec"]["evidence"]["request"] == "01ABCDEF"
        store.revoke(ns, made.metadata.name, "alice@example.com", now + timedelta(seconds=5))
        after = ConsentGrant.model_validate(
            admin.get("remit.dev/v1alpha1", "ConsentGrant", ns, made.metadata.name)
        )
        assert after.spec.revoked is True
        assert after.spec.evidence is not None
        assert after.spec.evidence.revoked_by == "alice@example.com"
        assert any(g.metadata.name == made.metadata.name for g in store.grants())
        # Least privilege: it cannot delete the evidence.
        consent_api = control_plane.as_token(token)
        with pytest.raises(ApiError) as refused:
            consent_api.delete("remit.dev/v1alpha1", "ConsentGrant", ns, made.metadata.name)
        assert refused.value.status == 403


def _created(store: KubeStore, made: ConsentGrant) -> bool:
    from remit.errors import GrantStoreError  # noqa: PLC0415

    try:
        store.create(made)
    except GrantStoreError as exc:
        return "already exists" in str(exc)  # created by an earlier attempt
    return True
