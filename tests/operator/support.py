"""Real things for operator tests: kopf against kmock, gateway sidecars on 127.0.0.N, MCP calls.

- ``declare_resources``: every resource kopf lists or watches, so it watches what it should.
- ``running_operator``: the real kopf runtime (``KopfRunner``) with Remit's registry, in a thread.
- ``Sidecar``: a real ``remit gateway`` process on its own loopback address (the "pod IP").
- ``admission_review`` / ``send_review``: AdmissionReview v1 over HTTPS to the webhook.
- ``decide``: one real MCP tool call through a sidecar, with a real JWT.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import jsonpatch
import kmock
import kopf
from kopf.testing import KopfRunner
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from remit.api.loader import KINDS
from remit.gateway.ports import wait_for_port
from remit_operator.certs import write_self_signed
from remit_operator.entry import build
from remit_operator.index import gateway_spec
from remit_operator.runtime import Runtime
from remit_operator.settings import Settings
from tests.support.ports import free_port

NAMESPACE = "agents"
OPERATOR_NAMESPACE = "remit-system"
GATEWAY_BIN = str(Path(sys.executable).parent / "remit")
API = "remit.dev/v1alpha1"
PLURAL = {kind: model.PLURAL for kind, model in KINDS.items()}


def declare_resources(k8s: kmock.KubernetesEmulator) -> None:
    """Declare every resource the operator (and kopf) lists, watches or writes."""
    for kind, model in KINDS.items():
        k8s.resources[f"{API}/{model.PLURAL}"] = {
            "kind": kind,
            "singular": kind.lower(),
            "namespaced": True,
            "verbs": {"list", "watch", "get", "patch", "create", "delete"},
            "subresources": {"status"},
        }
    builtin = {
        "v1/pods": ("Pod", True),
        "v1/namespaces": ("Namespace", False),
        "v1/secrets": ("Secret", True),
        "v1/configmaps": ("ConfigMap", True),
        "v1/events": ("Event", True),
        "networking.k8s.io/v1/networkpolicies": ("NetworkPolicy", True),
        "apiextensions.k8s.io/v1/customresourcedefinitions": ("CustomResourceDefinition", False),
    }
    for resource, (kind, namespaced) in builtin.items():
        k8s.resources[resource] = {
            "kind": kind,
            "singular": kind.lower(),
            "namespaced": namespaced,
            "verbs": {"list", "watch", "get", "patch", "create", "delete"},
        }
    for namespace in (NAMESPACE, OPERATOR_NAMESPACE):
        k8s.objects["v1/namespaces", None, namespace] = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace},
        }


def operator_settings(tmp: Path, env: Mapping[str, str] | None = None) -> Settings:
    """Operator settings for tests, read from ``REMIT_*`` variables as the operator reads them
    (``env`` adds or overrides): loopback webhook, quick pushes, no periodic resync."""
    cert, key = write_self_signed(tmp, ["127.0.0.1", "localhost"])
    values = {
        "REMIT_NAMESPACE": OPERATOR_NAMESPACE,
        "REMIT_WEBHOOK_HOST": "127.0.0.1",
        "REMIT_WEBHOOK_CERT_FILE": str(cert),
        "REMIT_WEBHOOK_KEY_FILE": str(key),
        "REMIT_WEBHOOK_PORT": str(free_port()),
        "REMIT_METRICS_PORT": str(free_port()),
        "REMIT_PUSH_TIMEOUT_SECONDS": "2.0",
        "REMIT_PUSH_RETRIES": "2",
        "REMIT_PUSH_BACKOFF_SECONDS": "0.05",
        "REMIT_RESYNC_SECONDS": "3600",
        "REMIT_LOG_LEVEL": "INFO",
    }
    return Settings.from_env(values | dict(env or {}))


@dataclass
class RunningOperator:
    """The operator under test."""

    settings: Settings
    runtime: Runtime
    runner: KopfRunner
    stopped: bool = False

    async def stop(self) -> None:
        """Stop the operator (as if its pod went away); sidecars keep what they hold."""
        if not self.stopped:
            self.stopped = True
            await asyncio.to_thread(self.runner.__exit__, None, None, None)


@asynccontextmanager
async def running_operator(
    k8s: kmock.KubernetesEmulator, settings: Settings
) -> AsyncIterator[RunningOperator]:
    """Run the real kopf runtime with Remit's handlers against the emulator."""
    registry, kopf_settings, runtime = build(
        settings, connection=kopf.ConnectionInfo(server=str(k8s.url).rstrip("/"))
    )
    runner = KopfRunner(
        ["run", "-A", "--standalone"], registry=registry, settings=kopf_settings, timeout=30
    )
    await asyncio.to_thread(runner.__enter__)
    try:
        await eventually(lambda: _has_secret(k8s, settings), timeout=15)
        await eventually(lambda: _webhook_up(settings), timeout=15)
        running = RunningOperator(settings, runtime, runner)
        yield running
    finally:
        await running.stop() if "running" in locals() else await asyncio.to_thread(
            runner.__exit__, None, None, None
        )


def _has_secret(k8s: kmock.KubernetesEmulator, settings: Settings) -> bool:
    return stored(k8s, "v1/secrets", settings.kube.namespace, settings.signing.secret) is not None


def stored(
    k8s: kmock.KubernetesEmulator, resource: str, namespace: str | None, name: str
) -> dict[str, Any] | None:
    """The object as the emulator stores it now, or None if absent or deleted."""
    key = (kmock.resource(resource), namespace, name)
    if key not in k8s.objects:
        return None
    obj = k8s.objects[key]
    if obj.deleted:
        return None
    raw: dict[str, Any] = obj.raw
    return raw


async def _webhook_up(settings: Settings) -> bool:
    try:
        with socket.create_connection((settings.webhook.host, settings.webhook.port), 0.2):
            return True
    except OSError:
        return False


async def eventually(
    check: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.02
) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {check}")
        await asyncio.sleep(interval)


# --- Kubernetes objects through the emulator's API ------------------------------------------


def path(kind: str, namespace: str, name: str | None = None, sub: str | None = None) -> str:
    """REST path of a Remit object (or collection)."""
    parts = [f"/apis/{API}/namespaces/{namespace}/{PLURAL[kind]}"]
    parts += [name] if name else []
    parts += [sub] if sub else []
    return "/".join(parts)


async def apply(k8s: kmock.KubernetesEmulator, doc: Mapping[str, Any]) -> None:
    """Create a Remit object through the API (a watch event for the operator).

    Like the API server, it gets a uid, a resourceVersion and a generation (kopf's finalizer
    patches test the resourceVersion).
    """
    body = dict(doc)
    body["metadata"] = {
        "uid": str(uuid.uuid4()),
        "resourceVersion": "1",
        "generation": 1,
        **doc["metadata"],
    }
    response = await k8s.post(path(doc["kind"], doc["metadata"]["namespace"]), json=body)
    assert response.status < 300, await response.text()


async def patch(
    k8s: kmock.KubernetesEmulator, kind: str, name: str, body: Mapping[str, Any]
) -> None:
    """Merge-patch a Remit object through the API."""
    response = await k8s.patch(
        path(kind, NAMESPACE, name),
        json=dict(body),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert response.status < 300, await response.text()


async def delete(k8s: kmock.KubernetesEmulator, kind: str, name: str) -> None:
    """Delete a Remit object through the API."""
    response = await k8s.delete(path(kind, NAMESPACE, name))
    assert response.status < 300, await response.text()


def events(k8s: kmock.KubernetesEmulator, reason: str) -> list[dict[str, Any]]:
    """Every Event stored with this reason."""
    found = []
    for (resource, _, _), obj in list(k8s.objects.items()):
        if resource.plural == "events" and not obj.deleted and obj.get("reason") == reason:
            found.append(obj.raw)
    return found


def status_of(k8s: kmock.KubernetesEmulator, kind: str, name: str) -> dict[str, Any]:
    """The object's current status as stored ({} if none)."""
    obj = stored(k8s, f"{API}/{PLURAL[kind]}", NAMESPACE, name)
    return dict((obj or {}).get("status") or {})


# --- admission -------------------------------------------------------------------------------


def admission_review(pod: Mapping[str, Any], operation: str = "CREATE") -> dict[str, Any]:
    """An AdmissionReview v1 request for a pod, as the API server sends it."""
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": pod["metadata"].get("namespace"),
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": dict(pod),
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


async def send_review(settings: Settings, review: Mapping[str, Any]) -> dict[str, Any]:
    """POST an AdmissionReview over HTTPS to the webhook, verifying its certificate."""
    url = f"https://{settings.webhook.host}:{settings.webhook.port}/inject"
    assert settings.webhook.tls.cert_file is not None
    verify = ssl.create_default_context(cafile=settings.webhook.tls.cert_file)
    async with httpx.AsyncClient(verify=verify, timeout=10) as http:
        response = await http.post(url, json=dict(review))
    response.raise_for_status()
    answer: dict[str, Any] = response.json()["response"]
    return answer


def patched(pod: Mapping[str, Any], answer: Mapping[str, Any]) -> dict[str, Any]:
    """Apply the webhook's JSONPatch (if any) to the pod."""
    if "patch" not in answer:
        return dict(pod)
    assert answer["patchType"] == "JSONPatch"
    ops = jsonpatch.JsonPatch.from_string(base64.b64decode(answer["patch"]).decode())
    result: dict[str, Any] = ops.apply(dict(pod))
    return result


def app_pod(name: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """An MCP server pod as a Deployment would create it."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": dict(labels or {"app": "files-mcp", "remit.dev/inject": "true"}),
        },
        "spec": {
            "containers": [
                {"name": "files", "image": "files:1", "ports": [{"containerPort": 8080}]}
            ]
        },
    }


async def injected(settings: Settings, pod: Mapping[str, Any]) -> dict[str, Any]:
    """The pod as the webhook injects it (asserting it was admitted)."""
    answer = await send_review(settings, admission_review(pod))
    assert answer["allowed"], answer
    return patched(pod, answer)


def gateway_status(ip: str | None, *, started: bool, restarts: int = 0) -> dict[str, Any]:
    """A running pod's status as the kubelet writes it, the gateway started or not yet."""
    return {
        "phase": "Running",
        **({"podIP": ip} if ip else {}),
        "containerStatuses": [
            {
                "name": "remit-gateway",
                "ready": False,
                "started": started,
                "restartCount": restarts,
                "containerID": f"test://{ip}/{restarts}",
                "state": {"running": {}},
            }
        ],
    }


async def post_pod(
    k8s: kmock.KubernetesEmulator, pod: Mapping[str, Any], status: Mapping[str, Any]
) -> None:
    """Create the pod object (with a uid and a kubelet status) through the API."""
    body = dict(pod)
    body["metadata"] = {"uid": str(uuid.uuid4()), **pod["metadata"]}
    body["status"] = dict(status)
    response = await k8s.post(f"/api/v1/namespaces/{NAMESPACE}/pods", json=body)
    assert response.status < 300, await response.text()


async def set_pod_status(
    k8s: kmock.KubernetesEmulator, name: str, status: Mapping[str, Any]
) -> None:
    """Replace the kubelet-written status of a pod."""
    response = await k8s.patch(
        f"/api/v1/namespaces/{NAMESPACE}/pods/{name}/status",
        json={"status": dict(status)},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert response.status < 300


# --- sidecars --------------------------------------------------------------------------------


class Sidecar:
    """A real gateway process on ``ip`` standing in for one pod's sidecar."""

    def __init__(self, pod: Mapping[str, Any], ip: str, upstream: str, key_file: Path) -> None:
        self.pod = dict(pod)
        self.ip = ip
        container = gateway_spec(pod["spec"])
        assert container is not None, "the pod has no injected gateway"
        self.native = container.get("restartPolicy") == "Always"
        env = {e["name"]: e.get("value", "") for e in container["env"] if "value" in e}
        self.port = int(env["REMIT_LISTEN"].rsplit(":", 1)[1])
        self.admin_port = int(env["REMIT_ADMIN_LISTEN"].rsplit(":", 1)[1])
        self.env = {
            **os.environ,
            **env,
            "REMIT_LISTEN": f"{ip}:{self.port}",
            "REMIT_ADMIN_LISTEN": f"{ip}:{self.admin_port}",
            "REMIT_UPSTREAM": upstream,
            "REMIT_BUNDLE_PUBLIC_KEY": str(key_file),
            # The anchors ConfigMap a kubelet would mount (tests/kube mounts it); the digest
            # key comes from the operator (PUT /v1/audit-key), as in a cluster.
            "REMIT_AUDIT_ANCHOR_FILE": "",
            "REMIT_POD_NAME": pod["metadata"]["name"],
        }
        self.restarts = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The MCP endpoint clients use."""
        return f"http://{self.ip}:{self.port}/mcp"

    def start(self) -> None:
        """Start the gateway process (without waiting)."""
        self.proc = subprocess.Popen(
            [GATEWAY_BIN, "gateway"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait(self, timeout: float = 30) -> None:
        """Block until both ports accept connections."""
        wait_for_port(self.ip, self.admin_port, timeout)
        wait_for_port(self.ip, self.port, timeout)

    def stop(self) -> None:
        """Stop the process."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def restart(self) -> None:
        """Kill and start again: the new process holds no bundle."""
        self.stop()
        self.restarts += 1
        self.start()
        self.wait()

    def pod_object(self) -> dict[str, Any]:
        """The pod as the API server stores it once running (status as the kubelet reports)."""
        pod = dict(self.pod)
        pod["metadata"] = {**pod["metadata"], "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, self.ip))}
        pod["status"] = self.pod_status()
        return pod

    def pod_status(self) -> dict[str, Any]:
        """The kubelet's view: Running, this IP, the gateway container started."""
        app = {"name": "files", "ready": True, "restartCount": 0, "state": {"running": {}}}
        gateway = {
            "name": "remit-gateway",
            "ready": False,
            "started": True,  # its startupProbe (/healthz) passed: the gateway listens
            "restartCount": self.restarts,
            "containerID": f"test://{self.ip}/{self.restarts}",
            "state": {"running": {}},
        }
        if self.native:  # a native sidecar reports among the init containers
            return {
                "phase": "Running",
                "podIP": self.ip,
                "initContainerStatuses": [gateway],
                "containerStatuses": [app],
            }
        return {"phase": "Running", "podIP": self.ip, "containerStatuses": [app, gateway]}

    async def status(self, http: httpx.AsyncClient | None = None) -> dict[str, Any]:
        """The sidecar's ``GET /v1/status`` (through ``http`` if given)."""
        url = f"http://{self.ip}:{self.admin_port}/v1/status"
        if http is None:
            async with httpx.AsyncClient(timeout=5) as own:
                response = await own.get(url)
        else:
            response = await http.get(url)
        data: dict[str, Any] = response.json()
        return data

    async def digest(self, http: httpx.AsyncClient | None = None) -> str | None:
        """The digest of the bundle in force (None without one)."""
        try:
            bundle = (await self.status(http)).get("bundle")
        except httpx.HTTPError:
            return None
        return bundle.get("digest") if bundle else None


async def decide(url: str, token: str, tool: str, arguments: Mapping[str, Any]) -> str:
    """One real MCP ``tools/call`` through the gateway: "allowed", "denied" or "unavailable".

    The gateway answers a denied call as a JSON-RPC error naming its decision (a denied tool is
    indistinguishable from an unknown one), and everything with 503 while it has no bundle.
    """
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with httpx2.AsyncClient(headers=headers, timeout=10) as http:
            transport = streamable_http_client(url, http_client=http)
            async with Client(transport, mode="2026-07-28") as client:  # type: ignore[arg-type]
                result = await client.call_tool(tool, dict(arguments))
    except Exception as exc:  # noqa: BLE001 - classify whatever the SDK raised
        leaves = list(_leaves(exc))
        if any(type(e).__name__ == "MCPError" for e in leaves):
            return "denied"
        if any("503" in repr(e) for e in leaves):
            return "unavailable"
        return f"error: {leaves!r}"[:300]
    return "denied" if result.is_error else "allowed"


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


# --- a whole server: MCPServer, injected pods, real sidecars ---------------------------------

AUDIENCE = "http://127.0.0.1/files/mcp"


def server_doc(issuer_url: str, jwks_uri: str, port: int, admin_port: int) -> dict[str, Any]:
    """The MCPServer for the demo files server, authenticating with the test issuer."""
    return {
        "apiVersion": API,
        "kind": "MCPServer",
        "metadata": {"name": "files", "namespace": NAMESPACE},
        "spec": {
            "selector": {"matchLabels": {"app": "files-mcp"}},
            "gateway": {"port": port, "adminPort": admin_port},
            "authentication": {"issuer": issuer_url, "audience": AUDIENCE, "jwksUri": jwks_uri},
        },
    }


@dataclass
class Fleet:
    """One MCPServer's sidecars, running for real on 127.0.0.2, 127.0.0.3, …"""

    k8s: kmock.KubernetesEmulator
    operator: RunningOperator
    sidecars: list[Sidecar]

    async def digests(self) -> list[str | None]:
        """Every sidecar's digest, concurrently."""
        return list(await asyncio.gather(*(s.digest() for s in self.sidecars)))

    def server_digest(self) -> str | None:
        """The digest the MCPServer status reports."""
        digest: str | None = status_of(self.k8s, "MCPServer", "files").get("bundleDigest")
        return digest

    async def in_sync(self, previous: str | None = None, timeout: float = 15) -> str:
        """Wait until every sidecar runs the status digest (and it differs from ``previous``)."""

        async def check() -> str | None:
            digest = self.server_digest()
            if digest is None or digest == previous:
                return None
            return digest if all(d == digest for d in await self.digests()) else None

        result: str = await eventually(check, timeout=timeout)
        return result

    async def decide_all(self, token: str, tool: str, arguments: Mapping[str, Any]) -> set[str]:
        """The decision every sidecar gives for one call."""
        answers = await asyncio.gather(
            *(decide(s.url, token, tool, arguments) for s in self.sidecars)
        )
        return set(answers)

    async def update_pod(self, sidecar: Sidecar) -> None:
        """Report the sidecar's current container status on its pod, as the kubelet would."""
        name = sidecar.pod["metadata"]["name"]
        response = await self.k8s.patch(
            f"/api/v1/namespaces/{NAMESPACE}/pods/{name}/status",
            json={"status": sidecar.pod_status()},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert response.status < 300


@asynccontextmanager
async def fleet(
    k8s: kmock.KubernetesEmulator,
    operator: RunningOperator,
    issuer_url: str,
    jwks_uri: str,
    upstream: str,
    count: int,
    tmp: Path,
    *,
    first_ip: int = 2,
    public_key: str | None = None,
) -> AsyncIterator[Fleet]:
    """An MCPServer with ``count`` injected pods whose sidecars are real gateway processes."""
    ips = [f"127.0.0.{n}" for n in range(first_ip, first_ip + count)]
    port, admin_port = free_everywhere(ips), 0
    while admin_port in (0, port):
        admin_port = free_everywhere(ips)
    if stored(k8s, f"{API}/mcpservers", NAMESPACE, "files") is None:
        await apply(k8s, server_doc(issuer_url, jwks_uri, port, admin_port))
    else:  # another fleet of the same server: same ports
        spec = stored(k8s, f"{API}/mcpservers", NAMESPACE, "files")["spec"]  # type: ignore[index]
        port, admin_port = spec["gateway"]["port"], spec["gateway"]["adminPort"]
    settings = operator.settings
    configmap = await eventually(
        lambda: stored(k8s, "v1/configmaps", NAMESPACE, settings.signing.public_key_configmap)
    )
    key_file = tmp / f"public-{first_ip}.jwk"  # what the kubelet mounts from the ConfigMap
    key_file.write_text(public_key or configmap["data"]["public.jwk"])
    sidecars = []
    for n, ip in enumerate(ips):
        pod = app_pod(f"files-{first_ip + n}")
        answer = await send_review(settings, admission_review(pod))
        assert answer["allowed"], answer
        sidecars.append(Sidecar(patched(pod, answer), ip, upstream, key_file))
    try:
        for sidecar in sidecars:
            sidecar.start()
        await asyncio.gather(*(asyncio.to_thread(s.wait) for s in sidecars))
        for sidecar in sidecars:
            response = await k8s.post(
                f"/api/v1/namespaces/{NAMESPACE}/pods", json=sidecar.pod_object()
            )
            assert response.status < 300
        running = Fleet(k8s, operator, sidecars)
        await running.in_sync()
        yield running
    finally:
        for sidecar in sidecars:
            sidecar.stop()


def free_everywhere(ips: list[str]) -> int:
    """A port free on every one of ``ips`` (each sidecar binds the same ports on its IP)."""
    while True:
        port = free_port(ips[0])
        try:
            for ip in ips[1:]:
                with socket.socket() as sock:
                    sock.bind((ip, port))
        except OSError:
            continue
        return port
