"""Sidecar injection: real AdmissionReview v1 requests over HTTPS to the operator's webhook."""

from __future__ import annotations

from pathlib import Path

import kmock

from remit_operator.settings import Settings
from tests.operator.support import (
    NAMESPACE,
    RunningOperator,
    admission_review,
    app_pod,
    apply,
    operator_settings,
    patched,
    running_operator,
    send_review,
)
from tests.support.policies import server


def _gateway(pod: dict) -> dict:  # type: ignore[type-arg]
    return next(c for c in pod["spec"]["containers"] if c["name"] == "remit-gateway")


async def test_matching_pod_gets_the_gateway(
    k8s: kmock.KubernetesEmulator, operator: RunningOperator
) -> None:
    await apply(
        k8s,
        server(
            "files",
            upstream={"port": 8080, "path": "/mcp"},
            gateway={"port": 9000, "adminPort": 9901},
        ),
    )
    pod = app_pod("files-1")
    answer = await send_review(operator.settings, admission_review(pod))
    assert answer["allowed"] is True
    injected = patched(pod, answer)
    gateway = _gateway(injected)
    settings: Settings = operator.settings
    assert gateway["image"] == settings.gateway.image
    assert gateway["args"] == ["gateway"]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in gateway["env"]}
    assert env["REMIT_SERVER"] == f"{NAMESPACE}/files"
    assert env["REMIT_LISTEN"] == "0.0.0.0:9000"
    assert env["REMIT_ADMIN_LISTEN"] == "0.0.0.0:9901"
    assert env["REMIT_UPSTREAM"] == "http://127.0.0.1:8080/mcp"
    assert env["REMIT_BUNDLE_PUBLIC_KEY"] == "/etc/remit/bundle-key/public.jwk"
    assert env["REMIT_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["REMIT_AUDIT_SINK"] == "stdout"
    assert [p["containerPort"] for p in gateway["ports"]] == [9000, 9901]
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 9901}
    assert gateway["resources"]["requests"]["cpu"] == settings.gateway.cpu_request
    security = gateway["securityContext"]
    assert security["runAsNonRoot"]
    assert not security["allowPrivilegeEscalation"]
    assert security["capabilities"] == {"drop": ["ALL"]}
    volume = next(v for v in injected["spec"]["volumes"] if v["name"] == "remit-bundle-key")
    assert volume["configMap"]["name"] == settings.signing.public_key_configmap
    annotations = injected["metadata"]["annotations"]
    assert annotations["remit.dev/mcpserver"] == "files"
    assert annotations["remit.dev/bundle-key-id"] == operator.runtime.keyring.kid
    assert injected["spec"]["containers"][0] == pod["spec"]["containers"][0]


async def test_injection_is_idempotent(
    k8s: kmock.KubernetesEmulator, operator: RunningOperator
) -> None:
    await apply(k8s, server("files"))
    pod = app_pod("files-1")
    once = patched(pod, await send_review(operator.settings, admission_review(pod)))
    answer = await send_review(operator.settings, admission_review(once))
    assert answer["allowed"] is True
    assert "patch" not in answer
    assert patched(once, answer) == once
    # A pod carrying a gateway this webhook did not seal (copied, then edited) is refused.
    copied = patched(pod, await send_review(operator.settings, admission_review(pod)))
    copied["metadata"]["name"] = "files-2"
    _gateway(copied)["lifecycle"] = {"postStart": {"exec": {"command": ["sh", "-c", "x"]}}}
    answer = await send_review(operator.settings, admission_review(copied))
    assert answer["allowed"] is False
    assert "seal does not verify" in answer["status"]["message"]


async def test_pod_matching_no_server_is_left_alone(
    k8s: kmock.KubernetesEmulator, operator: RunningOperator
) -> None:
    await apply(k8s, server("files"))
    pod = app_pod("web-1", {"app": "web", "remit.dev/inject": "true"})
    answer = await send_review(operator.settings, admission_review(pod))
    assert answer["allowed"] is True
    assert "patch" not in answer


async def test_system_namespaces_are_never_touched(
    k8s: kmock.KubernetesEmulator, operator: RunningOperator
) -> None:
    await apply(k8s, server("files", namespace="kube-system"))
    pod = app_pod("files-1")
    pod["metadata"]["namespace"] = "kube-system"
    answer = await send_review(operator.settings, admission_review(pod))
    assert answer["allowed"] is True
    assert "patch" not in answer


async def test_pod_matching_two_servers_is_refused(
    k8s: kmock.KubernetesEmulator, operator: RunningOperator
) -> None:
    await apply(k8s, server("files"))
    await apply(k8s, server("files-too", selector={"matchLabels": {"app": "files-mcp"}}))
    answer = await send_review(operator.settings, admission_review(app_pod("files-1")))
    assert answer["allowed"] is False
    assert "several MCPServers" in answer["status"]["message"]


async def test_port_clash_is_refused_not_admitted_ungoverned(
    k8s: kmock.KubernetesEmulator, operator: RunningOperator
) -> None:
    await apply(k8s, server("files", gateway={"port": 8080, "adminPort": 9901}))
    answer = await send_review(operator.settings, admission_review(app_pod("files-1")))
    assert answer["allowed"] is False
    assert "8080" in answer["status"]["message"]


async def test_namespace_comes_from_the_request_when_the_pod_has_none(
    k8s: kmock.KubernetesEmulator, operator: RunningOperator
) -> None:
    await apply(k8s, server("files"))
    pod = app_pod("files-1")
    review = admission_review(pod)
    del review["request"]["object"]["metadata"]["namespace"]  # as controllers' pods arrive
    answer = await send_review(operator.settings, review)
    assert answer["allowed"] is True
    injected = patched(review["request"]["object"], answer)
    assert _gateway(injected)["name"] == "remit-gateway"
    assert "namespace" not in injected["metadata"]  # the patch adds only the injection


async def test_injected_pod_is_labelled_sealed_and_can_pull_the_sidecar_image(
    k8s: kmock.KubernetesEmulator, tmp_path: Path
) -> None:
    settings = operator_settings(tmp_path, {"REMIT_GATEWAY_IMAGE_PULL_SECRETS": "regcred,mirror"})
    async with running_operator(k8s, settings) as operator:
        await apply(k8s, server("files"))
        pod = app_pod("files-1")
        pod["spec"]["imagePullSecrets"] = [{"name": "mirror"}]  # the app's own, kept once
        injected = patched(pod, await send_review(operator.settings, admission_review(pod)))
    assert injected["spec"]["imagePullSecrets"] == [{"name": "mirror"}, {"name": "regcred"}]
    assert injected["metadata"]["labels"]["remit.dev/mcpserver"] == "files"
    assert injected["metadata"]["annotations"]["remit.dev/injection-seal"]
    gateway = _gateway(injected)
    assert gateway["startupProbe"]["httpGet"] == {"path": "/healthz", "port": 9901}
    assert "restartPolicy" not in gateway  # kmock reports no version: a plain container


async def test_pod_without_pull_secrets_gets_none_unless_configured(
    k8s: kmock.KubernetesEmulator, operator: RunningOperator
) -> None:
    await apply(k8s, server("files"))
    pod = app_pod("files-1")
    injected = patched(pod, await send_review(operator.settings, admission_review(pod)))
    assert "imagePullSecrets" not in injected["spec"]
