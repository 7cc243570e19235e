"""The operator starting against the emulator: signing key, public key, NetworkPolicy, status."""

from __future__ import annotations

import json
from pathlib import Path

import kmock

from remit.policy.signing import load_key
from remit_operator.keys import keyring_from_secret
from tests.operator.support import (
    NAMESPACE,
    RunningOperator,
    apply,
    events,
    eventually,
    operator_settings,
    running_operator,
    status_of,
    stored,
)
from tests.support.policies import server


async def test_creates_a_signing_key_and_publishes_its_public_half(
    k8s: kmock.KubernetesEmulator, operator: RunningOperator
) -> None:
    settings = operator.settings
    secret = stored(k8s, "v1/secrets", settings.kube.namespace, settings.signing.secret)
    assert secret is not None
    keyring = keyring_from_secret(secret)
    await apply(k8s, server("files"))
    configmap = await eventually(
        lambda: stored(k8s, "v1/configmaps", NAMESPACE, settings.signing.public_key_configmap)
    )
    published = load_key(configmap["data"]["public.jwk"].encode())
    assert published.kid == keyring.kid
    assert "d" not in json.loads(configmap["data"]["public.jwk"])


async def test_network_policy_admits_only_gateway_and_operator(
    k8s: kmock.KubernetesEmulator, operator: RunningOperator
) -> None:
    await apply(k8s, server("files", gateway={"port": 9000, "adminPort": 9901}))
    policy = await eventually(
        lambda: stored(k8s, "networking.k8s.io/v1/networkpolicies", NAMESPACE, "remit-files")
    )
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": {"app": "files-mcp"}}
    ports = [rule["ports"][0]["port"] for rule in spec["ingress"]]
    assert ports == [9000, 9901]
    assert "from" not in spec["ingress"][0]
    assert spec["ingress"][1]["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": operator.settings.kube.namespace
    }


async def test_server_without_sidecars_reports_its_bundle(
    k8s: kmock.KubernetesEmulator, operator: RunningOperator
) -> None:
    await apply(k8s, server("files"))
    await eventually(lambda: status_of(k8s, "MCPServer", "files").get("bundleDigest"))
    status = status_of(k8s, "MCPServer", "files")
    assert status["sidecarsDesired"] == 0
    assert status["conditions"][0]["type"] == "Ready"
    assert status["bundleSerial"] > 0


async def test_empty_selector_is_refused_and_gets_no_network_policy(
    k8s: kmock.KubernetesEmulator, operator: RunningOperator
) -> None:
    """An empty selector would make the NetworkPolicy govern every pod of the namespace while
    injection matched none: the operator refuses the MCPServer instead of applying either."""
    await apply(k8s, server("everything", selector={}))
    await apply(k8s, server("files"))
    await eventually(
        lambda: stored(k8s, "networking.k8s.io/v1/networkpolicies", NAMESPACE, "remit-files")
    )
    refused = await eventually(lambda: events(k8s, "InvalidSpec"))
    assert "empty selector" in refused[0]["message"]
    assert (
        stored(k8s, "networking.k8s.io/v1/networkpolicies", NAMESPACE, "remit-everything") is None
    )
    assert status_of(k8s, "MCPServer", "everything") == {}


async def test_network_policy_admits_the_configured_metrics_scraper(
    k8s: kmock.KubernetesEmulator, tmp_path: Path
) -> None:
    """Prometheus scrapes /metrics on the sidecars' admin port: the scraper named by
    REMIT_METRICS_SCRAPER is let in there, and nowhere else."""
    scraper = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }
    settings = operator_settings(tmp_path, {"REMIT_METRICS_SCRAPER": json.dumps(scraper)})
    async with running_operator(k8s, settings):
        await apply(k8s, server("files", gateway={"port": 9000, "adminPort": 9901}))
        policy = await eventually(
            lambda: stored(k8s, "networking.k8s.io/v1/networkpolicies", NAMESPACE, "remit-files")
        )
    rules = policy["spec"]["ingress"]
    assert len(rules) == 3
    assert rules[2] == {"from": [scraper], "ports": [{"protocol": "TCP", "port": 9901}]}
