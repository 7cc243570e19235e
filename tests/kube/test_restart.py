"""Item 5: restart without a gap. After an operator restart no sidecar receives a bundle
compiled before every AgentPolicy and ConsentGrant was listed: the Deny policy that existed
before the restart is in every bundle pushed after it.

The sidecar's own counter of installed bundles is the witness: a partial bundle pushed after
the restart would be installed (a new digest) and then replaced by the full one, two installs;
a gap-free restart installs nothing new (the sidecar already holds the full bundle's digest).
Hundreds of other policies and grants make the operator's initial listing take a while.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from remit.demo.issuer import Issuer
from tests.kube.cluster import namespace, wait_for
from tests.kube.controlplane import ControlPlane
from tests.kube.kubelet import Kubelet, RunningPod
from tests.kube.operator import OperatorProcess
from tests.kube.world import AUDIENCE, ENABLED, app_pod, call, mcpserver, server_status
from tests.support.policies import grant, policy, rule

FILLERS = 150
SECRET = ("read_file", {"path": "/data/secrets/key.txt"})


def _installs(pod: RunningPod) -> float:
    text = httpx.get(f"http://{pod.ip}:{pod.admin_port}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith('remit_bundle_installs_total{result="installed"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _syncs(operator: OperatorProcess, server: str) -> float:
    total = 0.0
    for line in operator.metrics().splitlines():
        if line.startswith("remit_operator_syncs_total{") and f'server="{server}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture
def guarded(
    control_plane: ControlPlane, operator: OperatorProcess, kubelet: Kubelet, issuer: Issuer
) -> Iterator[tuple[str, RunningPod]]:
    api = control_plane.admin
    with namespace(api, "restart", ENABLED) as ns:
        server = mcpserver(ns, issuer.issuer, issuer.jwks_uri)
        api.create(server)
        later = datetime.now(UTC) + timedelta(days=1)
        for n in range(FILLERS):
            api.create(
                policy(f"filler-{n:03d}", rule("r", tools=["x"]), servers=["other"], namespace=ns)
            )
            api.create(grant(f"filler-{n:03d}", server="other", expires_at=later, namespace=ns))
        api.create(policy("allow-read", rule("read", tools=["read_*"]), namespace=ns))
        api.create(
            policy(
                "zz-deny-secrets",
                rule(
                    "no-secrets",
                    "Deny",
                    tools=["read_*"],
                    when='args.path.startsWith("/data/secrets/")',
                ),
                namespace=ns,
            )
        )
        wait_for(lambda: api.get("v1", "ConfigMap", ns, "remit-bundle-key"), timeout=30)
        created = api.create(app_pod(ns, port=server["spec"]["upstream"]["port"]))
        pod = kubelet.run(ns, created["metadata"]["name"])
        kubelet.wait_ready(pod)
        wait_for(lambda: server_status(api, ns).get("sidecarsInSync") == 1, timeout=60)
        yield ns, pod


def test_no_bundle_without_the_deny_policy_is_pushed_after_a_restart(
    control_plane: ControlPlane,
    operator: OperatorProcess,
    guarded: tuple[str, RunningPod],
    issuer: Issuer,
) -> None:
    ns, pod = guarded
    token = issuer.mint("alice@example.com", agent="support-bot", audience=AUDIENCE)
    assert call(pod.url, token, *SECRET) == "denied"
    digest = server_status(control_plane.admin, ns)["bundleDigest"]
    installs = _installs(pod)
    operator.stop()
    operator.start()
    operator.wait_ready()
    wait_for(
        lambda: _syncs(operator, f"{ns}/files") >= 1, timeout=60
    )  # the new process synced this server
    wait_for(lambda: server_status(control_plane.admin, ns).get("sidecarsInSync") == 1, timeout=30)
    assert _installs(pod) == installs, "a different bundle was installed after the restart"
    assert server_status(control_plane.admin, ns)["bundleDigest"] == digest
    assert call(pod.url, token, *SECRET) == "denied"
