"""The chart's consent service and the admission policy on ``grantedBy`` (docs/consent.md)."""

from __future__ import annotations

from tests.helm.chart import find, manifests
from tests.helm.values import CONSENT


def test_the_consent_service_runs_restricted_with_probes_and_its_settings() -> None:
    objects = manifests(CONSENT)
    deployment = find(objects, "Deployment", "remit-consent")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "remit-consent"
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["args"] == ["consent"]
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["REMIT_CONSENT_PUBLIC_URL"] == "https://consent.example"
    assert env["REMIT_CONSENT_ISSUER"] == "https://idp.example"
    assert env["REMIT_CONSENT_ADMINS"] == "auditor@example.com"
    assert env["REMIT_CONSENT_STORE"] == "kubernetes"
    service = find(objects, "Service", "remit-consent")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert labels["app.kubernetes.io/component"] == "consent"


def test_the_consent_service_may_only_create_and_patch_grants_and_read_the_rest() -> None:
    role = find(manifests(CONSENT), "ClusterRole", "remit-consent")
    verbs = {tuple(r["resources"]): set(r["verbs"]) for r in role["rules"]}
    assert verbs == {
        ("consentgrants",): {"create", "patch", "get", "list"},
        ("mcpservers", "agentpolicies"): {"list"},
    }


def test_the_admission_policy_exempts_only_the_consent_service_and_maps_user_names() -> None:
    policy = find(manifests(CONSENT), "ValidatingAdmissionPolicy")
    conditions = {c["name"]: c["expression"] for c in policy["spec"]["matchConditions"]}
    assert (
        "system:serviceaccount:remit-system:remit-consent" in conditions["not-the-consent-service"]
    )
    assert "not-exempt" not in conditions  # nobody else, cluster admins included
    (user,) = policy["spec"]["variables"]
    assert 'startsWith("oidc:")' in user["expression"]
    assert "substring(5)" in user["expression"]
    binding = find(manifests(CONSENT), "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["validationActions"] == ["Deny"]


def test_by_default_no_group_is_exempt_and_a_break_glass_group_is_explicit() -> None:
    default = find(manifests(), "ValidatingAdmissionPolicy")
    names = [c["name"] for c in default["spec"]["matchConditions"]]
    assert names == ["not-the-consent-service", "spec-changes-only"]  # not even system:masters
    glass = {"admission": {"grantedBy": {"exemptGroups": ["break-glass"]}}}
    policy = find(manifests(glass), "ValidatingAdmissionPolicy")
    conditions = {c["name"]: c["expression"] for c in policy["spec"]["matchConditions"]}
    assert conditions["not-exempt"] == '!request.userInfo.groups.exists(g, g in ["break-glass"])'


def test_the_consent_service_mounts_the_previous_link_key_for_rotations() -> None:
    deployment = find(manifests(CONSENT), "Deployment", "remit-consent")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert env["REMIT_CONSENT_KEY_FILE"] == mounts["consent-key"] + "/key"
    assert env["REMIT_CONSENT_PREVIOUS_KEY_FILE"] == mounts["consent-key"] + "/previous"


def test_the_consent_service_is_off_by_default() -> None:
    assert not [o for o in manifests() if o["metadata"]["name"] == "remit-consent"]


def test_the_operator_is_told_where_the_page_is_and_may_read_only_its_key_secret() -> None:
    objects = manifests(CONSENT)
    operator = find(objects, "Deployment", "remit")
    (container,) = operator["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["REMIT_CONSENT_PUBLIC_URL"] == "https://consent.example"
    assert env["REMIT_CONSENT_KEY_SECRET"] == "remit-consent-key"
    role = find(objects, "Role", "remit-signing-key")
    readable = {n for r in role["rules"] if "get" in r["verbs"] for n in r["resourceNames"]}
    assert "remit-consent-key" in readable
    default = find(manifests({}), "Deployment", "remit")
    (plain,) = default["spec"]["template"]["spec"]["containers"]
    assert "REMIT_CONSENT_PUBLIC_URL" not in {e["name"] for e in plain["env"]}
