"""Item 4: pods without a kubelet. The kubelet stand-in runs each injected pod's gateway (its real
command and environment) on its own loopback IP and reports the pod's status; the operator,
running as the chart runs it, pushes to them. Real MCP calls, real JWTs, real API writes."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from remit.demo.issuer import Issuer
from remit.policy.consentdelivery import holding
from remit.policy.consentrequest import ConsentSealer, new_key
from tests.kube.cluster import namespace, wait_for
from tests.kube.consent import ConsentProcess, approve
from tests.kube.controlplane import Api, ControlPlane
from tests.kube.kubelet import Kubelet, RunningPod
from tests.kube.operator import NAMESPACE, OperatorProcess
from tests.kube.world import (
    API,
    AUDIENCE,
    ENABLED,
    admin_grant,
    app_pod,
    call,
    mcpserver,
    server_status,
)
from tests.support import mcp_wire
from tests.support.policies import policy, rule

READ = ("read_file", {"path": "/data/readme.txt"})
WRITE = ("write_file", {"path": "/data/alice/notes.txt", "content": "hi"})
PODS = 2


@dataclass
class Fleet:
    """One MCPServer in its own namespace, with ``PODS`` injected pods running."""

    api: Api
    namespace: str
    pods: list[RunningPod]
    token: str

    def status(self) -> dict:  # type: ignore[type-arg]
        return server_status(self.api, self.namespace)

    def in_sync(self, previous: str | None = None, timeout: float = 20) -> str:
        """Wait for Ready with every pod in sync on a digest other than ``previous``."""

        def check() -> str | None:
            status = self.status()
            ready = any(
                c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", [])
            )
            digest = status.get("bundleDigest")
            if ready and digest != previous and status.get("sidecarsInSync") == len(self.pods):
                return str(digest)
            return None

        return wait_for(check, timeout=timeout)

    def decide_all(self, tool: str, arguments: dict) -> set[str]:  # type: ignore[type-arg]
        return {call(p.url, self.token, tool, arguments) for p in self.pods}


@pytest.fixture(scope="module")
def fleet(
    control_plane: ControlPlane, operator: OperatorProcess, kubelet: Kubelet, issuer: Issuer
) -> Iterator[Fleet]:
    api = control_plane.admin
    with namespace(api, "pods", ENABLED) as ns:
        server = mcpserver(ns, issuer.issuer, issuer.jwks_uri)
        api.create(server)
        consent = policy(
            "support-bot",
            rule("read", tools=["read_*", "list_*"]),
            rule("write", tools=["write_file"], consent=True),
            namespace=ns,
        )
        api.create(consent)
        wait_for(lambda: api.get("v1", "ConfigMap", ns, "remit-bundle-key"), timeout=30)
        port = server["spec"]["upstream"]["port"]
        running = []
        for _ in range(PODS):
            pod = api.create(app_pod(ns, port=port))
            running.append(kubelet.run(ns, pod["metadata"]["name"]))
        token = issuer.mint("alice@example.com", agent="support-bot", audience=AUDIENCE)
        fleet = Fleet(api, ns, running, token)
        for pod in running:
            kubelet.wait_ready(pod)
        fleet.in_sync()
        yield fleet


def test_the_server_becomes_ready_with_every_pod_in_sync(fleet: Fleet) -> None:
    digest = fleet.in_sync()
    status = fleet.status()
    assert status["sidecarsDesired"] == PODS
    assert status["sidecarsInSync"] == PODS
    assert status["bundleDigest"] == digest


def test_a_real_mcp_call_through_the_sidecar_is_decided_by_the_policy(fleet: Fleet) -> None:
    assert fleet.decide_all(*READ) == {"allowed"}
    assert fleet.decide_all(*WRITE) == {"denied"}  # needs consent: there is no grant


def test_revoking_a_grant_denies_the_next_call_within_two_seconds(fleet: Fleet) -> None:
    api, ns = fleet.api, fleet.namespace
    later = datetime.now(UTC) + timedelta(days=1)
    digest = fleet.status().get("bundleDigest")
    api.create(admin_grant("alice-write", expires_at=later, namespace=ns))
    fleet.in_sync(previous=digest)
    assert fleet.decide_all(*WRITE) == {"allowed"}
    began = time.monotonic()
    api.patch(API, "ConsentGrant", ns, "alice-write", {"spec": {"revoked": True}})
    wait_for(lambda: fleet.decide_all(*WRITE) == {"denied"}, timeout=5, interval=0)
    elapsed = time.monotonic() - began
    assert elapsed <= 2.0, f"revocation took {elapsed:.2f}s"
    api.delete(API, "ConsentGrant", ns, "alice-write")


def test_an_expiring_grant_stops_working_with_no_write(fleet: Fleet) -> None:
    api, ns = fleet.api, fleet.namespace
    # Long enough that the push and the first decision land before expiry on a loaded machine
    # (4 s was not); the wait costs nothing as this tier runs beside the longer unit half.
    expires = datetime.now(UTC) + timedelta(seconds=10)
    digest = fleet.status().get("bundleDigest")
    api.create(admin_grant("alice-brief", expires_at=expires, namespace=ns))
    fleet.in_sync(previous=digest)
    assert fleet.decide_all(*WRITE) == {"allowed"}
    # From here on nothing is written through the API: expiry alone takes the grant away.
    wait_for(lambda: datetime.now(UTC) > expires, timeout=15)
    assert fleet.decide_all(*WRITE) == {"denied"}
    api.delete(API, "ConsentGrant", ns, "alice-brief")


def _status(pod: RunningPod) -> dict[str, Any]:
    url = f"http://{pod.ip}:{pod.admin_port}/v1/status"
    status: dict[str, Any] = httpx.get(url, timeout=5).json()
    return status


def test_alice_approves_the_link_a_sidecar_issued_on_the_chart_run_consent_service(
    fleet: Fleet, consent_service: ConsentProcess, issuer: Issuer
) -> None:
    """The operator (consent.enabled) PUTs the link key to each sidecar's /v1/consent; the
    link a sidecar issues opens on ``remit consent`` run as its Deployment, where Alice logs
    in at the issuer and approves: the grant is created through the API server with her login
    as evidence, and her agent's retry is allowed."""
    api, ns = fleet.api, fleet.namespace
    secret = api.get("v1", "Secret", NAMESPACE, "remit-consent-key")
    assert secret is not None  # made by the operator
    key = _raw(base64.b64decode(secret["data"]["key"]))
    want = holding(consent_service.public_url, key)  # chart's consent.publicUrl, Secret's key
    for pod in fleet.pods:
        wait_for(lambda p=pod: _status(p).get("consent", {}).get("holds") == want, timeout=20)
        assert _status(pod)["consent"]["refused"] == 0
    answer = mcp_wire.tool_call(fleet.pods[0].url, *WRITE, token=fleet.token)
    facts = answer.json()["result"]["_meta"]["dev.remit/decision"]
    assert facts["reason"] == "consent_required"
    link = facts["consentUrl"]
    assert link.startswith(f"{consent_service.public_url}/consent?r=")
    digest = fleet.status().get("bundleDigest")
    done = approve(link, "alice@example.com", consent_service.public_url)
    assert done.status_code == 200, done.text[:2000]
    name = f"consent-{facts['decisionId']}".lower()
    stored = api.get(API, "ConsentGrant", ns, name)
    assert stored is not None, consent_service.logs()
    spec = stored["spec"]
    assert spec["grantedBy"] == "alice@example.com"  # the login's, not the ServiceAccount's
    assert spec["evidence"]["issuer"] == issuer.issuer
    assert spec["evidence"]["subject"] == "alice@example.com"
    assert spec["evidence"]["request"] == facts["decisionId"]
    assert stored["metadata"]["managedFields"][0]["manager"] != "kubectl"
    fleet.in_sync(previous=digest)
    assert fleet.decide_all(*WRITE) == {"allowed"}
    api.delete(API, "ConsentGrant", ns, name)


def test_a_link_issued_before_a_key_rotation_still_opens_on_the_consent_service(
    fleet: Fleet, consent_service: ConsentProcess
) -> None:
    """The link key Secret is rotated as docs/consent.md says (new ``key``, the old one as
    ``previous``) and projected as the kubelet would: the running consent service opens a link
    sealed before it and one sealed after, and refuses one from an unknown key."""
    api = fleet.api
    answer = mcp_wire.tool_call(fleet.pods[0].url, *WRITE, token=fleet.token)
    before = answer.json()["result"]["_meta"]["dev.remit/decision"]["consentUrl"]
    secret = api.get("v1", "Secret", NAMESPACE, "remit-consent-key")
    assert secret is not None
    old = _raw(base64.b64decode(secret["data"]["key"]))
    new = new_key()
    data = {"key": base64.b64encode(new).decode(), "previous": base64.b64encode(old).decode()}
    api.patch("v1", "Secret", NAMESPACE, "remit-consent-key", {"data": {
        k: base64.b64encode(v.encode()).decode() for k, v in data.items()
    }})  # fmt: skip
    consent_service.project_secrets()
    token = parse_qs(urlsplit(before).query)["r"][0]
    request = ConsentSealer(old).open(token, time.time())
    after = ConsentSealer(new).seal(request)
    stranger = ConsentSealer(new_key()).seal(request)
    page = consent_service.public_url + "/consent?r="

    def opens(link: str) -> bool:  # opened: the human is sent to log in
        response = httpx.get(link, timeout=5)
        return (response.status_code, response.headers.get("location")) == (303, "/login")

    assert opens(before)
    # A link naming a key it does not hold makes it re-read the files (at most once a second).
    wait_for(lambda: opens(page + after), timeout=10, interval=0.2)
    assert opens(before)
    refused = httpx.get(page + stranger, timeout=5)
    assert refused.status_code == 400
    assert "unknown or retired" in refused.text


def _raw(secret_value: bytes) -> bytes:
    """The 32-byte key from a Secret's ``key`` (stored as base64 text of the key)."""
    return secret_value if len(secret_value) == 32 else base64.b64decode(secret_value)
