"""A stand-in for the kubelet: runs an admitted pod's containers as processes on their own IP.

For each pod it is asked to run, it reads the pod *as the API server stored it* (so whatever
the webhook injected), gives the pod its own loopback address (127.0.N.M: the pod IP), and
starts:

- the injected gateway container with its real command (the image's ``remit`` entrypoint and
  the container's args) and environment: ``valueFrom`` fields resolved, ConfigMap volumes
  written to a folder (the mount), addresses that mean "this pod" (``0.0.0.0``, ``127.0.0.1``)
  mapped to the pod IP;
- the application containers through a table image → command (the demo MCP files server).

Then it writes the pod's status as a kubelet does (phase, podIP, container statuses, the Ready
condition from the gateway's ``/readyz`` and each application container's ``tcpSocket``
readiness probe) and keeps it current from a background thread. Pods
deleted through the API (or with their namespace) have their processes stopped.
"""

from __future__ import annotations

import base64
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tests.kube.controlplane import Api, ApiError

REMIT = str(Path(sys.executable).parent / "remit")
GATEWAY = "remit-gateway"
App = Callable[[str, dict[str, Any]], list[str]]


def files_app(ip: str, container: dict[str, Any]) -> list[str]:
    """The demo MCP files server, listening where the container would."""
    port = container["ports"][0]["containerPort"]
    return [sys.executable, "-m", "remit.demo.files_server", "--host", ip, "--port", str(port)]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class RunningPod:
    """One pod's processes and what the kubelet reports about them."""

    namespace: str
    name: str
    uid: str
    ip: str
    folder: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    admin_port: int = 0
    port: int = 0
    ready: bool = False  # the gateway's /readyz
    apps_ready: dict[str, bool] = field(default_factory=dict)  # readiness probes of the others
    native: bool = False  # the gateway is a native sidecar (an init container)
    restarts: int = 0
    started: str = field(default_factory=_now)

    @property
    def url(self) -> str:
        """The MCP endpoint of the pod's gateway."""
        return f"http://{self.ip}:{self.port}/mcp"

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.procs.clear()


class Kubelet:
    """Runs pods for the tests; see the module docstring."""

    def __init__(self, api: Api, folder: Path, apps: dict[str, App] | None = None) -> None:
        self.api = api
        self.folder = folder
        self.apps = apps or {"files:1": files_app}
        self.pods: dict[tuple[str, str], RunningPod] = {}
        self._used: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kubelet", daemon=True)
        self._thread.start()

    def _address(self) -> str:
        while True:
            ip = f"127.0.{random.randint(61, 120)}.{random.randint(2, 254)}"
            if ip not in self._used:
                self._used.add(ip)
                return ip

    def run(self, namespace: str, name: str) -> RunningPod:
        """Start the pod's containers and report it running; returns once its gateway listens."""
        pod = self.api.get("v1", "Pod", namespace, name)
        assert pod is not None, f"no pod {namespace}/{name}"
        ip = self._address()
        running = RunningPod(namespace, name, pod["metadata"]["uid"], ip, self.folder / name)
        running.folder.mkdir(parents=True, exist_ok=True)
        spec = pod["spec"]
        every = [*(spec.get("initContainers") or []), *spec["containers"]]
        gateway = next((c for c in every if c["name"] == GATEWAY), None)
        assert gateway is not None, f"pod {name} has no gateway: the webhook did not inject it"
        running.native = any(c["name"] == GATEWAY for c in spec.get("initContainers") or [])
        for container in spec["containers"]:
            if container["name"] == GATEWAY:
                continue
            argv = self.apps[container["image"]](ip, container)
            running.procs[container["name"]] = self._spawn(running, container["name"], argv, None)
        env = self._environment(pod, gateway, running)
        running.admin_port = int(env["REMIT_ADMIN_LISTEN"].rsplit(":", 1)[1])
        running.port = int(env["REMIT_LISTEN"].rsplit(":", 1)[1])
        argv = [*(gateway.get("command") or [REMIT]), *(gateway.get("args") or [])]
        if argv[0] == "remit":
            argv[0] = REMIT
        running.procs[GATEWAY] = self._spawn(running, GATEWAY, argv, env)
        with self._lock:
            self.pods[(namespace, name)] = running
        self._report(running)
        return running

    def _spawn(
        self, pod: RunningPod, name: str, argv: list[str], env: dict[str, str] | None
    ) -> subprocess.Popen[bytes]:
        log = open(pod.folder / f"{name}.log", "ab")  # noqa: SIM115 - owned by the process
        return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)

    def _environment(
        self, pod: dict[str, Any], container: dict[str, Any], running: RunningPod
    ) -> dict[str, str]:
        fields = {
            "metadata.name": pod["metadata"]["name"],
            "metadata.namespace": pod["metadata"]["namespace"],
            "metadata.uid": pod["metadata"]["uid"],
            "status.podIP": running.ip,
        }
        mounts = self._mounts(pod, container, running)
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV")}
        for item in container.get("env") or []:
            if "value" in item:
                value = str(item["value"])
            else:
                value = fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
            for mount, local in mounts.items():
                value = value.replace(mount, local)
            for here in ("0.0.0.0", "127.0.0.1", "localhost"):
                value = value.replace(here, running.ip)
            for name, known in env.items():  # $(VAR): a variable defined before this one
                value = value.replace(f"$({name})", known)
            env[item["name"]] = value
        return env

    def _mounts(
        self, pod: dict[str, Any], container: dict[str, Any], running: RunningPod
    ) -> dict[str, str]:
        volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
        mounts: dict[str, str] = {}
        for mount in container.get("volumeMounts") or []:
            volume = volumes[mount["name"]]
            local = running.folder / "volumes" / mount["name"]
            local.mkdir(parents=True, exist_ok=True)
            if "configMap" in volume:
                name = volume["configMap"]["name"]
                found = self.api.get("v1", "ConfigMap", pod["metadata"]["namespace"], name)
                optional = volume["configMap"].get("optional", False)
                assert found is not None or optional, f"ConfigMap {name} missing: no start"
                for key, text in ((found or {}).get("data") or {}).items():
                    (local / key).write_text(text)
            elif "secret" in volume:  # a kubelet waits for a required Secret: so do we
                self._secret(pod, volume["secret"], local)
            mounts[mount["mountPath"]] = str(local)
        return mounts

    def _secret(self, pod: dict[str, Any], source: dict[str, Any], local: Path) -> None:
        name, namespace = source["secretName"], pod["metadata"]["namespace"]
        deadline = time.monotonic() + 30
        while True:
            found = self.api.get("v1", "Secret", namespace, name)
            data = (found or {}).get("data") or {}
            items = source.get("items") or [{"key": k, "path": k} for k in data]
            if all(item["key"] in data for item in items) and (found or source.get("optional")):
                break
            assert time.monotonic() < deadline, f"Secret {name} (keys {items}) never appeared"
            time.sleep(0.2)
        for item in items:
            (local / item["path"]).write_bytes(base64.b64decode(data[item["key"]]))

    # --- status -----------------------------------------------------------------------------

    def _probe(self, pod: RunningPod) -> bool:
        try:
            url = f"http://{pod.ip}:{pod.admin_port}/readyz"
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    @staticmethod
    def _probe_app(pod: RunningPod, container: dict[str, Any]) -> bool:
        """A container's ``tcpSocket`` readiness probe, as the kubelet runs it (none: ready)."""
        probe = (container.get("readinessProbe") or {}).get("tcpSocket")
        if probe is None:
            return True
        try:
            with socket.create_connection((pod.ip, int(probe["port"])), timeout=1):
                return True
        except OSError:
            return False

    def _report(self, pod: RunningPod) -> None:
        def state(name: str) -> dict[str, Any]:
            proc = pod.procs.get(name)
            if proc is not None and proc.poll() is None:
                return {"running": {"startedAt": pod.started}}
            return {"terminated": {"exitCode": proc.poll() if proc else 0, "reason": "Error"}}

        statuses = [
            {
                "name": name,
                "ready": pod.ready
                if name == GATEWAY
                else proc.poll() is None and pod.apps_ready.get(name, False),
                "started": proc.poll() is None,
                "restartCount": pod.restarts,
                "image": name,
                "imageID": "",
                "containerID": f"test://{pod.ip}/{name}/{pod.restarts}",
                "state": state(name),
            }
            for name, proc in pod.procs.items()
        ]
        ready = "True" if pod.ready and all(s["ready"] for s in statuses) else "False"
        conditions = [
            {"type": t, "status": s, "lastTransitionTime": _now()}
            for t, s in (
                ("PodScheduled", "True"),
                ("Initialized", "True"),
                ("ContainersReady", ready),
                ("Ready", ready),
            )
        ]
        gateway = [s for s in statuses if s["name"] == GATEWAY]
        apps = [s for s in statuses if s["name"] != GATEWAY]
        status: dict[str, Any] = {
            "phase": "Running",
            "podIP": pod.ip,
            "podIPs": [{"ip": pod.ip}],
            "hostIP": "127.0.0.1",
            "startTime": pod.started,
            "conditions": conditions,
            "containerStatuses": apps if pod.native else statuses,
        }
        if pod.native:
            status["initContainerStatuses"] = gateway
        try:
            self.api.patch("v1", "Pod", pod.namespace, pod.name, {"status": status}, sub="status")
        except ApiError as exc:
            if exc.status != 404:
                raise

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                pods = list(self.pods.values())
            for pod in pods:
                try:
                    self._sync(pod)
                except (ApiError, httpx.HTTPError, OSError):
                    continue

    def _sync(self, pod: RunningPod) -> None:
        current = self.api.get("v1", "Pod", pod.namespace, pod.name)
        if current is None or current["metadata"]["uid"] != pod.uid:
            self.forget(pod)
            return
        ready = self._probe(pod)
        apps = {
            c["name"]: self._probe_app(pod, c)
            for c in current["spec"]["containers"]
            if c["name"] != GATEWAY
        }
        if ready != pod.ready or apps != pod.apps_ready:
            pod.ready = ready
            pod.apps_ready = apps
            self._report(pod)

    def forget(self, pod: RunningPod) -> None:
        """Stop a pod's processes (its object is gone)."""
        pod.stop()
        with self._lock:
            self.pods.pop((pod.namespace, pod.name), None)

    def wait_ready(self, pod: RunningPod, timeout: float = 45) -> None:
        """Wait until the pod is Ready: its gateway and every application container."""
        deadline = time.monotonic() + timeout
        while not (pod.ready and pod.apps_ready and all(pod.apps_ready.values())):
            if time.monotonic() > deadline:
                logs = (pod.folder / f"{GATEWAY}.log").read_text(errors="replace")[-3000:]
                raise AssertionError(f"pod {pod.name} not ready in {timeout}s:\n{logs}")
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        with self._lock:
            pods = list(self.pods.values())
            self.pods.clear()
        for pod in pods:
            pod.stop()
