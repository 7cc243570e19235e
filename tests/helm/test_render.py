"""What the chart renders: the operator, its webhook, RBAC, keys and options behave as
documented in values.yaml."""

from __future__ import annotations

import base64
import re
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from remit.policy.signing import load_key
from tests.helm.chart import CHART, NAMESPACE, containers, find, kinds, manifests, render
from tests.helm.values import (
    CERT_MANAGER,
    CERT_MANAGER_ISSUER,
    CHART_TLS,
    HA,
    HA_OWN_CRDS,
    MONITORED,
    NO_CRDS,
    OPERATOR_KEY,
    PINNED,
    SIDECARS,
    SUPPLIED_KEY,
)


def _env(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (operator,) = containers(objects)
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in operator["env"]}


def test_default_render_has_every_part() -> None:
    assert kinds(manifests()) == sorted(
        ["CustomResourceDefinition"] * 3
        + ["ClusterRole"] * 8
        + ["ClusterRoleBinding"] * 8
        + ["Role", "RoleBinding", "ServiceAccount", "Deployment", "Service", "Service"]
        + ["Secret", "MutatingWebhookConfiguration"]
        + ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]
    )


def test_operator_runs_restricted_and_non_root() -> None:
    objects = manifests()
    deployment = find(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (operator,) = containers(objects)
    assert operator["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert operator["args"][0] == "operator"
    assert operator["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert operator["resources"]["requests"]
    assert operator["resources"]["limits"]["memory"]
    ports = {p["name"]: p["containerPort"] for p in operator["ports"]}
    assert ports == {"webhook": 9443, "metrics": 9090, "health": 8080}
    assert operator["args"] == ["operator"]
    assert deployment["spec"]["strategy"]["type"] == "Recreate"


def test_operator_settings_reach_the_operator_as_env() -> None:
    env = _env(manifests())
    assert env["REMIT_SIGNING_SECRET"] == "remit-signing-key"
    assert env["REMIT_PUBLIC_KEY_CONFIGMAP"] == "remit-bundle-key"
    assert env["REMIT_GATEWAY_IMAGE"] == "remit:0.1.0"
    assert env["REMIT_WEBHOOK_PORT"] == "9443"
    assert env["REMIT_WEBHOOK_TLS_SECRET"] == "remit-webhook-tls"
    assert env["REMIT_WEBHOOK_CONFIGURATION"] == f"remit-{NAMESPACE}"
    assert env["REMIT_GATEWAY_NATIVE_SIDECAR"] == "auto"
    assert "REMIT_WEBHOOK_CERT_FILE" not in env
    assert env["REMIT_PEERING"] == ""
    assert env["REMIT_LOG_LEVEL"] == "INFO"
    assert env["REMIT_HEALTH_PORT"] == "8080"
    assert env["REMIT_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert all(isinstance(v, str | dict) for v in env.values())


def test_webhook_selects_labelled_pods_or_enabled_namespaces_but_never_system_ones() -> None:
    config = find(manifests(), "MutatingWebhookConfiguration")
    labelled, namespaced = config["webhooks"]
    assert labelled["objectSelector"] == {"matchLabels": {"remit.dev/inject": "true"}}
    assert namespaced["namespaceSelector"]["matchLabels"] == {"remit.dev/injection": "enabled"}
    assert namespaced["objectSelector"]["matchExpressions"][0]["values"] == ["true", "false"]
    for webhook in (labelled, namespaced):
        excluded = webhook["namespaceSelector"]["matchExpressions"][0]
        assert excluded["operator"] == "NotIn"
        assert set(excluded["values"]) == {
            "kube-system", "kube-public", "kube-node-lease", NAMESPACE,
        }  # fmt: skip
        assert webhook["failurePolicy"] == "Fail"
        assert webhook["rules"][0]["operations"] == ["CREATE"]
        assert webhook["clientConfig"]["service"]["path"] == "/inject"


def test_default_webhook_tls_is_the_operators_and_every_render_is_the_same() -> None:
    """Argo CD and `helm template` render without a cluster: nothing may differ per render."""
    first, second = manifests(), manifests()
    assert first == second
    config = find(first, "MutatingWebhookConfiguration")
    assert config["metadata"]["name"] == f"remit-{NAMESPACE}"
    assert all("caBundle" not in hook["clientConfig"] for hook in config["webhooks"])
    assert "remit-webhook-tls" not in _secrets(first)
    deployment = find(first, "Deployment")
    assert all(
        v["name"] != "webhook-tls" for v in deployment["spec"]["template"]["spec"]["volumes"]
    )
    role = find(first, "ClusterRole", "remit-webhook-ca")
    assert role["rules"][0]["resourceNames"] == [config["metadata"]["name"]]
    assert role["rules"][0]["verbs"] == ["get", "patch"]
    secrets = find(first, "Role")["rules"][-1]
    assert secrets["resourceNames"] == ["remit-webhook-tls"]


def test_generated_webhook_certificate_is_signed_by_the_ca_bundle_for_the_service() -> None:
    objects = manifests(CHART_TLS)
    assert _env(objects)["REMIT_WEBHOOK_CERT_FILE"] == "/etc/remit/webhook/tls.crt"
    assert "remit-webhook-ca" not in {o["metadata"]["name"] for o in objects}
    secret = find(objects, "Secret", "remit-webhook-tls")
    config = find(objects, "MutatingWebhookConfiguration")
    ca_bundle = config["webhooks"][0]["clientConfig"]["caBundle"]
    assert ca_bundle == secret["data"]["ca.crt"]
    ca = x509.load_pem_x509_certificate(base64.b64decode(ca_bundle))
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    assert f"remit-webhook.{NAMESPACE}.svc" in names.value.get_values_for_type(x509.DNSName)
    service = find(objects, "Service", "remit-webhook")
    assert service["spec"]["ports"][0]["targetPort"] == "webhook"


def test_generated_signing_key_is_an_ed25519_key_remit_can_load_and_is_kept() -> None:
    secret = find(manifests(), "Secret", "remit-signing-key")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    key = load_key(base64.b64decode(secret["data"]["private.pem"]))
    assert key.as_dict(private=False)["crv"] == "Ed25519"


def _secrets(objects: list[dict[str, Any]]) -> set[str]:
    return {o["metadata"]["name"] for o in objects if o["kind"] == "Secret"}


def test_supplied_signing_key_is_used_and_not_created() -> None:
    objects = manifests(SUPPLIED_KEY)
    assert _secrets(objects) == set()
    assert _env(objects)["REMIT_SIGNING_SECRET"] == "my-signing-key"
    role = find(objects, "Role")
    assert role["rules"][1]["resourceNames"] == ["my-signing-key", "remit-audit-key"]
    assert _secrets(manifests(OPERATOR_KEY)) == set()


def test_rbac_is_one_clusterrole_per_concern_and_secrets_are_namespaced() -> None:
    objects = manifests()
    roles = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ClusterRole"}
    assert set(roles) == {
        f"remit-{c}"
        for c in (
            *("resources", "pods", "events", "public-key", "networkpolicies", "discovery"),
            "webhook-ca",
            "evidence",
        )
    }
    bound = {o["roleRef"]["name"] for o in objects if o["kind"] == "ClusterRoleBinding"}
    assert bound == set(roles)
    for name, role in roles.items():
        for rule in role["rules"]:
            assert "*" not in rule["verbs"]
            assert "*" not in rule["resources"]
            # No Secret in any governed namespace: the digest keys travel over the admin port.
            assert "secrets" not in rule["resources"], name
    assert roles["remit-pods"]["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]}
    ]
    role = find(objects, "Role")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"][1] == {
        "apiGroups": [""],
        "resources": ["secrets"],
        "resourceNames": ["remit-signing-key", "remit-audit-key"],
        "verbs": ["get"],
    }
    assert roles["remit-evidence"]["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["remit-anchors"],
            "verbs": ["get", "patch"],
        },
    ]


def test_every_rbac_rule_says_why() -> None:
    lines = (CHART / "templates" / "rbac.yaml").read_text(encoding="utf-8").splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("- apiGroups:")]
    assert len(rules) >= 10
    for i in rules:
        assert lines[i - 1].lstrip().startswith("#"), f"rbac.yaml:{i + 1}: rule without a why"


def test_more_than_one_replica_turns_peering_on() -> None:
    objects = manifests(HA)
    env = _env(objects)
    assert env["REMIT_PEERING"] == "remit"
    assert env["POD_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert find(objects, "Deployment")["spec"]["replicas"] == 3
    assert find(objects, "Deployment")["spec"]["strategy"]["type"] == "RollingUpdate"
    peering = find(objects, "ClusterRole", "remit-peering")
    assert peering["rules"][0]["resources"] == ["clusterkopfpeerings"]
    find(objects, "ClusterRoleBinding", "remit-peering")
    find(objects, "CustomResourceDefinition", "clusterkopfpeerings.kopf.dev")
    hook = find(objects, "ClusterKopfPeering", "remit")
    assert "post-install" in hook["metadata"]["annotations"]["helm.sh/hook"]
    assert find(objects, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    crd = find(objects, "CustomResourceDefinition", "clusterkopfpeerings.kopf.dev")
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert crd["metadata"]["labels"]["app.kubernetes.io/part-of"] == "remit"
    assert env["REMIT_PEERING_LIFETIME"] == "60"


def test_the_peering_crd_follows_the_crd_values_and_the_lifetime_is_set() -> None:
    objects = manifests(HA_OWN_CRDS)
    env = _env(objects)
    assert env["REMIT_PEERING"] == "remit"
    assert env["REMIT_PEERING_LIFETIME"] == "15"
    assert "CustomResourceDefinition" not in kinds(objects)  # crds.enabled: false
    find(objects, "ClusterKopfPeering", "remit")  # the object is the release's all the same
    kept = manifests({"operator": {"replicaCount": 2}, "crds": {"keep": False}})
    crd = find(kept, "CustomResourceDefinition", "clusterkopfpeerings.kopf.dev")
    assert "helm.sh/resource-policy" not in (crd["metadata"].get("annotations") or {})


def test_cert_manager_issues_the_certificate_and_injects_the_ca() -> None:
    objects = manifests(CERT_MANAGER)
    config = find(objects, "MutatingWebhookConfiguration")
    assert "caBundle" not in config["webhooks"][0]["clientConfig"]
    injected = config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    certificate = find(objects, "Certificate")
    assert injected == f"{NAMESPACE}/{certificate['metadata']['name']}"
    assert certificate["spec"]["secretName"] == "remit-webhook-tls"
    assert certificate["spec"]["issuerRef"]["name"] == find(objects, "Issuer")["metadata"]["name"]
    assert _secrets(objects) == {"remit-signing-key"}
    corp = manifests(CERT_MANAGER_ISSUER)
    assert "Issuer" not in kinds(corp)
    assert find(corp, "Certificate")["spec"]["issuerRef"] == {
        "kind": "ClusterIssuer", "name": "corp-ca", "group": "cert-manager.io",
    }  # fmt: skip


def test_crds_can_be_left_to_someone_else() -> None:
    objects = manifests(NO_CRDS)
    assert "CustomResourceDefinition" not in kinds(objects)
    assert "install the Remit CRDs yourself" in render(NO_CRDS)["remit/templates/NOTES.txt"]


def test_servicemonitor_scrapes_the_metrics_service() -> None:
    objects = manifests(MONITORED)
    monitor = find(objects, "ServiceMonitor")
    service = find(objects, "Service", "remit-metrics")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    for key, value in monitor["spec"]["selector"]["matchLabels"].items():
        assert service["metadata"]["labels"][key] == value
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]


def test_pinned_digest_and_overrides() -> None:
    objects = manifests(PINNED)
    (operator,) = containers(objects)
    assert operator["image"] == "registry.example/remit@sha256:" + "a" * 64
    env = _env(objects)
    assert env["REMIT_GATEWAY_IMAGE"] == "registry.example/remit:0.1.1"
    assert env["EXTRA"] == "1"
    assert env["REMIT_LOG_LEVEL"] == "DEBUG"
    config = find(objects, "MutatingWebhookConfiguration")
    assert config["webhooks"][0]["failurePolicy"] == "Ignore"
    assert "legacy" in config["webhooks"][0]["namespaceSelector"]["matchExpressions"][0]["values"]


def test_sidecar_options_reach_the_operator() -> None:
    env = _env(manifests(SIDECARS))
    assert env["REMIT_GATEWAY_NATIVE_SIDECAR"] == "false"
    assert env["REMIT_GATEWAY_IMAGE_PULL_SECRETS"] == "regcred,mirror"
    assert (env["REMIT_PUSH_CONCURRENCY"], env["REMIT_PUSH_CONCURRENCY_TOTAL"]) == ("8", "64")
    assert env["REMIT_PUSH_DEADLINE_SECONDS"] == "5"
    from remit_operator.settings import Settings  # noqa: PLC0415

    settings = Settings.from_env({k: v for k, v in env.items() if isinstance(v, str)})
    assert settings.metrics.scraper_peer == SIDECARS["gateway"]["metricsScraper"]
    assert settings.gateway.pull_secrets == ("regcred", "mirror")
    assert "REMIT_METRICS_SCRAPER" not in _env(manifests())


def test_notes_say_what_to_apply_next() -> None:
    notes = render()["remit/templates/NOTES.txt"]
    for step in ("rollout status", "remit.dev/inject", "kubectl apply", "get mcpservers"):
        assert step in notes
    assert not re.search(r"<no value>|\{\{", notes)


def test_chart_speaks_the_operators_contract() -> None:
    from remit.settings import variables  # noqa: PLC0415
    from remit_operator.settings import PREFIX, Settings  # noqa: PLC0415
    from remit_operator.webhookconfig import WEBHOOK_PATH  # noqa: PLC0415

    config = find(manifests(), "MutatingWebhookConfiguration")
    assert config["webhooks"][0]["clientConfig"]["service"]["path"] == WEBHOOK_PATH
    known = {variable.name for variable in variables(Settings)}
    chart = {name for name in _env(manifests()) if name.startswith(PREFIX)}
    assert chart <= known  # every setting the chart sends is one the operator reads
    assert {"REMIT_HEALTH_PORT", "REMIT_METRICS_PORT"} <= chart
    assert "REMIT_WEBHOOK_SERVICE" not in chart  # the chart, not the operator, owns the config


def test_operator_pods_carry_the_label_sidecar_network_policies_admit() -> None:
    from remit_operator.netpol import OPERATOR_POD_LABELS  # noqa: PLC0415

    for release in (manifests(), manifests(HA)):
        deployment = find(release, "Deployment")
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert OPERATOR_POD_LABELS.items() <= labels.items()


def test_notes_name_only_columns_kubectl_shows() -> None:
    import yaml  # noqa: PLC0415

    columns = {"NAME", "AGE"}
    for crd in (CHART / "files" / "crds").glob("*.yaml"):
        for version in yaml.safe_load(crd.read_text())["spec"]["versions"]:
            columns |= {c["name"].upper() for c in version.get("additionalPrinterColumns", [])}
    notes = render()["remit/templates/NOTES.txt"]
    named = set(re.findall(r"\b([A-Z][A-Z-]{3,})\b", notes)) - {"NOTE", "JSON"}
    assert named, notes
    assert named <= columns, named - columns
