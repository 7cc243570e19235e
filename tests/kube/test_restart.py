"""Item 5: restart without a gap. After an operator restart no sidecar receives a bundle
compiled before every AgentPolicy and ConsentGrant was listed: the Deny policy that existed
before the restart is in every bundle pushed after it.

The witness is the sidecar itself: its ``/v1/status`` is read every 10 ms from before the
operator stops until the restarted operator has synced and pushed, and every bundle it ever
reports must hold both of the server's policies (a partial bundle would be held at least until
the next sync replaced it). The restarted operator does push (the same content re-signed with a
new serial), so the sidecar is exercised. Hundreds of other policies and grants make the
initial listing longer.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from remit.demo.issuer import Issuer
from tests.kube.cluster import namespace, wait_for
from tests.kube.controlplane import ControlPlane
from tests.kube.kubelet import Kubelet, RunningPod
from tests.kube.operator import OperatorProcess
from tests.kube.world import AUDIENCE, ENABLED, admin_grant, app_pod, call, mcpserver, server_status
from tests.support.policies import policy, rule

FILLERS = 150
SECRET = ("read_file", {"path": "/data/secrets/key.txt"})


class Watcher:
    """Reads a sidecar's bundle digest and serial every 10 ms in a thread."""

    def __init__(self, pod: RunningPod) -> None:
        self.url = f"http://{pod.ip}:{pod.admin_port}/v1/status"
        self.seen: list[tuple[str | None, int | None, int | None, int | None]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=2) as http:
            while not self.stop.wait(0.01):
                try:
                    bundle = http.get(self.url).json().get("bundle") or {}
                except (httpx.HTTPError, ValueError):
                    continue
                entry = (
                    bundle.get("digest"),
                    bundle.get("serial"),
                    bundle.get("policies"),
                    bundle.get("grants"),
                )
                if not self.seen or self.seen[-1] != entry:
                    self.seen.append(entry)

    def __enter__(self) -> Watcher:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(5)


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
            api.create(
                admin_grant(f"filler-{n:03d}", server="other", expires_at=later, namespace=ns)
            )
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
    _, pod = guarded
    token = issuer.mint("alice@example.com", agent="support-bot", audience=AUDIENCE)
    assert call(pod.url, token, *SECRET) == "denied"
    with Watcher(pod) as watcher:
        wait_for(lambda: watcher.seen, timeout=10)
        serial = watcher.seen[0][1]
        operator.stop()
        operator.start()
        operator.wait_ready()
        # The restarted operator re-signs the same content with a new serial and pushes it.
        wait_for(lambda: watcher.seen[-1][1] != serial, timeout=60)
    # Every bundle the sidecar held had both of the server's policies (the Deny among them).
    assert {policies for _, _, policies, _ in watcher.seen} == {2}, watcher.seen
    assert len(watcher.seen) >= 2  # before and after the restart
    assert call(pod.url, token, *SECRET) == "denied"
