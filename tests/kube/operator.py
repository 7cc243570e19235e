"""The chart on the real API server, and `remit operator` run the way its Deployment runs it.

``install`` renders helm/remit with helm-python-sdk (as tests/helm does) and applies every
object except the operator Deployment (and its PodDisruptionBudget): there is no kubelet to run
it. ``OperatorProcess`` runs ``remit operator`` as its own process with the Deployment's args and
environment (``valueFrom`` resolved as the kubelet would), authenticated as the chart's
ServiceAccount through a kubeconfig holding a TokenRequest token, so its permissions are exactly
the chart's. What differs from a pod, and why: the webhook binds a loopback address and random
ports (tests run side by side), the webhook certificate is read from a folder rather than the
Secret volume, and the harness writes the webhook Service's EndpointSlice (no endpoint
controller runs).
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.helm.chart import manifests
from tests.kube.cluster import wait_for
from tests.kube.controlplane import Api, ApiError, ControlPlane, pod_ip, random_host
from tests.support.ports import free_port

REMIT = str(Path(sys.executable).parent / "remit")
NAMESPACE = "remit-system"
SKIPPED_KINDS = frozenset({"Deployment", "PodDisruptionBudget"})


@dataclass
class Installation:
    """The chart as applied: its objects, the Deployment it would run, the webhook's TLS."""

    plane: ControlPlane
    values: dict[str, Any]
    objects: list[dict[str, Any]]

    def find(self, kind: str, name: str | None = None) -> dict[str, Any]:
        hits = [
            o for o in self.objects if o["kind"] == kind and name in (None, o["metadata"]["name"])
        ]
        assert len(hits) == 1, (kind, name, len(hits))
        return hits[0]

    @property
    def deployment(self) -> dict[str, Any]:
        """The operator's Deployment (not the consent service's, when consent is enabled)."""
        hits = [
            o
            for o in self.objects
            if o["kind"] == "Deployment"
            and o["metadata"]["labels"].get("app.kubernetes.io/component") != "consent"
        ]
        assert len(hits) == 1, len(hits)
        return hits[0]

    @property
    def container(self) -> dict[str, Any]:
        containers: list[dict[str, Any]] = self.deployment["spec"]["template"]["spec"]["containers"]
        return next(c for c in containers if c["name"] == "operator")

    @property
    def service_account(self) -> str:
        name: str = self.deployment["spec"]["template"]["spec"]["serviceAccountName"]
        return name

    @property
    def rendered_tls(self) -> dict[str, bytes] | None:
        """The webhook certificate the chart rendered (None: the operator keeps it)."""
        hits = [
            o
            for o in self.objects
            if o["kind"] == "Secret" and o["metadata"]["name"] == "remit-webhook-tls"
        ]
        if not hits:
            return None
        return {k: base64.b64decode(v) for k, v in hits[0]["data"].items()}

    @property
    def webhook_tls(self) -> dict[str, bytes]:
        """The webhook certificate as it is in the cluster now (rendered or operator-kept)."""
        secret = self.plane.admin.get("v1", "Secret", NAMESPACE, "remit-webhook-tls")
        assert secret is not None, "no webhook certificate Secret"
        return {k: base64.b64decode(v) for k, v in secret["data"].items()}

    @property
    def webhook_service(self) -> dict[str, Any]:
        return self.find("Service", "remit-webhook")


def install(plane: ControlPlane, values: dict[str, Any] | None = None) -> Installation:
    """Render the chart and apply all of it but the Deployment, in a working order."""
    api = plane.admin
    objects = manifests(values or {})
    api.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    # The chart's CRDs (Remit's and kopf's peering CRD) first, each served before the objects
    # of its kind are applied (the ClusterKopfPeering needs its CRD, as Helm's hook ordering
    # ensures in a real install).
    order = ["CustomResourceDefinition"]
    for obj in sorted(objects, key=lambda o: o["kind"] not in order):
        if obj["kind"] in SKIPPED_KINDS:
            continue
        if obj["kind"] == "CustomResourceDefinition":
            api.apply(obj)
            name = obj["metadata"]["name"]
            wait_for(lambda n=name: _established(api, n), timeout=30)
            spec = obj["spec"]
            version = f"{spec['group']}/{spec['versions'][0]['name']}"
            kind = spec["names"]["kind"]
            wait_for(lambda v=version, k=kind: _serves(api, v, k), timeout=30)
            continue
        api.apply(obj, NAMESPACE)
    return Installation(plane, dict(values or {}), objects)


def _established(api: Api, name: str) -> bool:
    crd = api.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, name) or {}
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


def _serves(api: Api, api_version: str, kind: str) -> bool:
    api._resources.clear()
    try:
        api.resource(api_version, kind)
    except (KeyError, ApiError):
        return False
    return True


def service_account_token(
    api: Api, namespace: str, name: str, *, seconds: int = 3600, bound_secret: str | None = None
) -> str:
    """A token from the TokenRequest API, as the kubelet gets one for a pod's projected volume.

    ``bound_secret`` binds it to a Secret: deleting the Secret revokes the token at once (how
    tests expire a token without waiting the 10-minute minimum lifetime).
    """
    spec: dict[str, Any] = {"expirationSeconds": seconds}
    if bound_secret:
        secret = api.get("v1", "Secret", namespace, bound_secret)
        assert secret is not None
        spec["boundObjectRef"] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "name": bound_secret,
            "uid": secret["metadata"]["uid"],
        }
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"
    token: str = api.request("POST", path, request)["status"]["token"]
    return token


@dataclass
class OperatorProcess:
    """One replica of the operator: ``remit operator`` with the Deployment's args and env."""

    install: Installation
    folder: Path
    pod_name: str = "remit-operator-0"
    host: str = field(default_factory=random_host)
    proc: subprocess.Popen[bytes] | None = None
    ports: dict[str, int] = field(default_factory=dict)
    token: str | None = None

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for name in ("webhook", "metrics", "health"):
            self.ports[name] = free_port(self.host)
        tls = self.folder / "webhook"  # the Secret volume, when the chart mounts one
        tls.mkdir(exist_ok=True)
        for key, value in (self.install.rendered_tls or {}).items():
            (tls / key).write_bytes(value)

    @property
    def kubeconfig(self) -> Path:
        return self.folder / "kubeconfig"

    @property
    def log_file(self) -> Path:
        return self.folder / "operator.log"

    def login(self, token: str | None = None) -> None:
        """Write the kubeconfig with a fresh (or the given) service-account token."""
        api = self.install.plane.admin
        self.token = token or service_account_token(api, NAMESPACE, self.install.service_account)
        self.install.plane.kubeconfig(self.kubeconfig, token=self.token)

    def environment(self) -> dict[str, str]:
        """The container's env as the kubelet would set it, then the harness's differences."""
        fields = {"metadata.name": self.pod_name, "metadata.namespace": NAMESPACE}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REMIT_", "KUBE"))}
        for item in self.install.container.get("env", []):
            if "value" in item:
                env[item["name"]] = str(item["value"])
            else:
                env[item["name"]] = fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
        mount = "/etc/remit/webhook"
        for name in ("REMIT_WEBHOOK_CERT_FILE", "REMIT_WEBHOOK_KEY_FILE"):
            if name in env:
                env[name] = env[name].replace(mount, str(self.folder / "webhook"))
        env.update(
            REMIT_WEBHOOK_HOST=self.host,
            REMIT_WEBHOOK_PORT=str(self.ports["webhook"]),
            REMIT_METRICS_PORT=str(self.ports["metrics"]),
            REMIT_HEALTH_PORT=str(self.ports["health"]),
            KUBECONFIG=str(self.kubeconfig),
        )
        return env

    def start(self) -> None:
        if self.token is None:
            self.login()
        args = self.install.container.get("args") or []
        log = open(self.log_file, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [REMIT, *args], env=self.environment(), stdout=log, stderr=subprocess.STDOUT
        )

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (as the kubelet does on pod deletion) or SIGKILL (a crashed node)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def logs(self, lines: int = 60) -> str:
        text = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    # --- what a kubelet would probe ---------------------------------------------------------

    def healthy(self) -> bool:
        """kopf's liveness endpoint answers 200 (the startupProbe and livenessProbe)."""
        try:
            url = f"http://127.0.0.1:{self.ports['health']}/healthz"
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def webhook_listening(self) -> bool:
        """The readinessProbe: the webhook port accepts TCP connections."""
        try:
            with socket.create_connection((self.host, self.ports["webhook"]), 0.5):
                return True
        except OSError:
            return False

    def ready(self) -> bool:
        return self.healthy() and self.webhook_listening()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc is None or self.proc.poll() is not None:
                raise AssertionError(f"operator exited:\n{self.logs()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"operator not ready in {timeout}s:\n{self.logs()}")
            time.sleep(0.1)

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.ports['metrics']}/metrics", timeout=5).text

    def webhook_tls_context(self) -> ssl.SSLContext:
        """A client context trusting the chart's caBundle (what the API server trusts)."""
        context = ssl.create_default_context(cadata=self.install.webhook_tls["ca.crt"].decode())
        return context


def publish_endpoints(install: Installation, replicas: list[OperatorProcess]) -> None:
    """The webhook Service's EndpointSlice, as the endpoint-slice controller would write it."""
    service = install.webhook_service
    port = service["spec"]["ports"][0]
    slices = []
    for replica in replicas:
        slices.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"remit-webhook-{replica.pod_name}",
                    "namespace": NAMESPACE,
                    "labels": {
                        "kubernetes.io/service-name": service["metadata"]["name"],
                        "endpointslice.kubernetes.io/managed-by": "remit-tests",
                    },
                },
                "addressType": "IPv4",
                "endpoints": [
                    {
                        "addresses": [pod_ip(replica.host)],
                        "conditions": {"ready": True},
                        "targetRef": {
                            "kind": "Pod",
                            "name": replica.pod_name,
                            "namespace": NAMESPACE,
                        },
                    }
                ],
                "ports": [
                    {"name": port["name"], "port": replica.ports["webhook"], "protocol": "TCP"}
                ],
            }
        )
    api = install.plane.admin
    wanted = {s["metadata"]["name"] for s in slices}
    for existing in api.list("discovery.k8s.io/v1", "EndpointSlice", NAMESPACE):
        name = existing["metadata"]["name"]
        if name.startswith("remit-webhook-") and name not in wanted:
            api.delete("discovery.k8s.io/v1", "EndpointSlice", NAMESPACE, name)
    for obj in slices:
        api.apply(obj)
