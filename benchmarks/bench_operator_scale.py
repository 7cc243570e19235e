"""The operator at scale on a real API server: memory, API load at rest, push bytes, revocation.

Starts the real-API-server tier's control plane (tests/kube: etcd, kube-apiserver with the
audit log, kube-controller-manager), applies the chart and runs ``remit operator`` as the
chart's Deployment runs it (tests/kube/operator.py). Then, through the API:

- 1,000 MCPServers (``--small``: 50) in namespaces of 100, one AgentPolicy per namespace;
- 10,000 ConsentGrants (``--small``: 500), ten per server;
- 2,000 pods (``--small``: 200), created through the API so the real webhook injects and seals
  them. One server has 100 pods (``--small``: 20): a few are real gateways run by the kubelet
  stand-in (tests/kube/kubelet.py), the rest, like every other server's pods, are lightweight
  stand-ins: one aiohttp process-thread answering the sidecar admin API (``PUT /v1/bundle``,
  ``GET /v1/status``) on each pod's own loopback address (127.3.X.Y), whose status (podIP,
  gateway started and ready) this script writes as a kubelet would.

It prints the operator's RSS (now and peak), its API requests per minute at rest (from the API
server's audit log, which records the operator's service account), the bytes pushed per grant
change, the time from revoking a grant to the last sidecar of the 100-pod server enforcing it
(p50/p99 over ``--revocations``; a stand-in enforces when it receives a bundle that no longer
grants it (absent, or kept as ended with a past ``expiresAt``), a real gateway when its
``/v1/status`` holds one fewer active grant), and whether any request listed or watched every
pod in the cluster. It exits 1 when a target is missed and stops by
itself after ``--timeout`` seconds.

    .venv/bin/python benchmarks/bench_operator_scale.py [--small]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.kube.cluster import wait_for
from tests.kube.controlplane import ADMIN_USER, ApiError, ControlPlane, binaries, free_port
from tests.kube.kubelet import Kubelet, RunningPod
from tests.kube.operator import OperatorProcess, install, publish_endpoints
from tests.kube.world import API, AUDIENCE, ENABLED
from tests.support.policies import grant, policy, rule

from remit.demo.issuer import Issuer
from remit.policy.consentdelivery import Recipient

MiB = 1024 * 1024
GATEWAY = "remit-gateway"
RSS_TARGET = 256 * MiB
REVOCATION_TARGET = 2.0
PER_NAMESPACE = 100


@dataclass
class Sizes:
    servers: int
    grants: int
    pods: int
    big: int  # pods of the server whose grants are revoked
    real: int  # of which real gateways
    rest_seconds: float
    revocations: int


FULL = Sizes(1000, 10_000, 2000, 100, 3, 60.0, 10)
SMALL = Sizes(50, 500, 200, 20, 2, 20.0, 3)


@dataclass
class Held:
    digest: str | None = None
    serial: int = -1
    grants: int = 0


@dataclass
class StandIns:
    """Sidecar admin APIs on many loopback addresses, served from one event loop."""

    admin_port: int
    held: dict[str, Held] = field(default_factory=dict)
    received: int = 0  # bundle bytes received, all stand-ins
    puts: int = 0
    watch_id: str | None = None
    watch_ips: frozenset[str] = frozenset()
    enforced: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        app = web.Application()
        app.router.add_put("/v1/bundle", self._put)
        app.router.add_get("/v1/status", self._status)
        app.router.add_put("/v1/audit-key", self._audit_key)  # taken as a real sidecar would
        self.recipient = Recipient().public()  # where the operator seals the digest key to
        self.runner = web.AppRunner(app, access_log=None)
        self._call(self.runner.setup())

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def serve(self, ip: str) -> None:
        self.held[ip] = Held()
        self._call(web.TCPSite(self.runner, ip, self.admin_port, backlog=64).start())

    def watch(self, grant_id: str, ips: list[str]) -> None:
        self.enforced = {}
        self.watch_ips = frozenset(ips)
        self.watch_id = grant_id

    async def _put(self, request: web.Request) -> web.Response:
        ip = request.transport.get_extra_info("sockname")[0] if request.transport else ""
        body = await request.read()
        self.received += len(body)
        self.puts += 1
        payload = orjson.loads(base64.urlsafe_b64decode(body.split(b".")[1] + b"=="))
        held = self.held.setdefault(ip, Held())
        serial = int(payload["serial"])
        if serial < held.serial:
            return web.json_response({"error": "rollback"}, status=409)
        changed = payload["digest"] != held.digest
        held.digest, held.serial, held.grants = payload["digest"], serial, len(payload["grants"])
        watched = self.watch_id and ip in self.watch_ips and ip not in self.enforced
        if watched and _grants_nothing(payload["grants"], self.watch_id):
            self.enforced[ip] = time.monotonic()
        return web.json_response({"digest": held.digest, "serial": serial, "changed": changed})

    async def _status(self, request: web.Request) -> web.Response:
        ip = request.transport.get_extra_info("sockname")[0] if request.transport else ""
        held = self.held.get(ip) or Held()
        bundle = {"digest": held.digest, "serial": held.serial} if held.digest else None
        audit_key = {"recipient": self.recipient, "holds": None}
        return web.json_response(
            {"ready": bundle is not None, "bundle": bundle, "pins": {}, "auditKey": audit_key}
        )

    async def _audit_key(self, request: web.Request) -> web.Response:
        await request.read()  # the operator sealed and signed it; a stand-in only takes it
        return web.json_response({"holds": "stand-in"})

    def close(self) -> None:
        self._call(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def _address(n: int) -> str:
    return f"127.3.{n // 250 + 1}.{n % 250 + 2}"


def _rss(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, in bytes."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) * 1024
    return found["VmRSS"], found["VmHWM"]


def _pod(ns: str, server: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": f"{server}-", "namespace": ns, "labels": {"app": server}},
        "spec": {
            "containers": [
                {"name": "files", "image": "files:1", "ports": [{"containerPort": 8080}]}
            ]
        },
    }


def _mcpserver(ns: str, name: str, admin_port: int, issuer: Issuer) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "MCPServer",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "upstream": {"port": 8080, "path": "/mcp"},
            "gateway": {"port": 8443, "adminPort": admin_port},
            "authentication": {
                "issuer": issuer.issuer,
                "audience": AUDIENCE,
                "jwksUri": issuer.jwks_uri,
            },
        },
    }


def _status(pod: dict[str, Any], ip: str) -> dict[str, Any]:
    """What a kubelet reports for a running pod whose gateway started and is ready."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    spec = pod["spec"]

    def entry(c: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": c["name"],
            "ready": True,
            "started": True,
            "restartCount": 0,
            "image": c["image"],
            "imageID": "",
            "containerID": f"bench://{ip}/{c['name']}",
            "state": {"running": {"startedAt": now}},
        }

    status: dict[str, Any] = {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "hostIP": "127.0.0.1",
        "startTime": now,
        "conditions": [
            {"type": t, "status": "True", "lastTransitionTime": now}
            for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
        ],
        "containerStatuses": [entry(c) for c in spec["containers"]],
    }
    init = [entry(c) for c in spec.get("initContainers") or [] if c["name"] == GATEWAY]
    if init:
        status["initContainerStatuses"] = init
    return status


def _audit_lists_every_pod(event: dict[str, Any]) -> bool:
    ref = event.get("objectRef") or {}
    uri = event.get("requestURI", "")
    return (
        ref.get("resource") == "pods"
        and not ref.get("namespace")
        and event.get("verb") in ("list", "watch")
        and "labelSelector=" not in uri
        and "fieldSelector=" not in uri
    )


def _completed(plane: ControlPlane) -> list[dict[str, Any]]:
    return [e for e in plane.audit() if e.get("stage") == "ResponseComplete"]


class Bench:
    def __init__(self, sizes: Sizes, folder: Path) -> None:
        self.sizes = sizes
        self.folder = folder
        found = binaries()
        if found is None:
            raise SystemExit("kube-apiserver/etcd not built: run `make control-plane`")
        self.plane = ControlPlane(found)
        self.operator: OperatorProcess | None = None
        self.kubelet: Kubelet | None = None
        self.stand_ins: StandIns | None = None
        self.issuer = Issuer()
        self.real: list[RunningPod] = []
        self.big_ips: list[str] = []
        self.servers: dict[str, list[str]] = {}  # namespace -> server names
        self.lock = threading.Lock()
        self.webhook_failures: list[str] = []

    def close(self) -> None:
        for part in (self.operator, self.kubelet, self.stand_ins):
            if part is None:
                continue
            try:
                part.stop() if isinstance(part, OperatorProcess) else part.close()
            except Exception as exc:  # noqa: BLE001 - best-effort teardown
                print(f"teardown: {exc!r}")
        self.issuer.__exit__(None, None, None)
        self.plane.stop()

    def start(self) -> None:
        began = time.monotonic()
        self.plane.start()
        self.issuer.__enter__()
        installation = install(self.plane, {"signingKey": {"create": False}})
        self.operator = OperatorProcess(installation, self.folder / "operator")
        self.operator.start()
        self.operator.wait_ready()
        publish_endpoints(installation, [self.operator])
        self.kubelet = Kubelet(self.plane.admin, self.folder / "kubelet")
        print(f"control plane and operator up in {time.monotonic() - began:.0f}s")

    def _namespaces(self) -> None:
        """Namespaces of ``PER_NAMESPACE`` servers, each with one AgentPolicy for all of them."""
        api = self.plane.admin
        names = [f"s{i}" for i in range(self.sizes.servers)]
        for start in range(0, self.sizes.servers, PER_NAMESPACE):
            ns = f"bench-{start // PER_NAMESPACE}"
            api.create(
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": ns, "labels": dict(ENABLED)},
                }
            )
            api.create(
                policy(
                    "bench",
                    rule("write", tools=["write_*"], consent=True),
                    servers=["*"],
                    namespace=ns,
                )
            )
            self.servers[ns] = names[start : start + PER_NAMESPACE]

    def populate(self) -> None:
        api = self.plane.admin
        s = self.sizes
        admin_port = free_port("127.0.0.1")
        self.stand_ins = StandIns(admin_port)
        began = time.monotonic()
        self._namespaces()
        expires = datetime.now(UTC) + timedelta(days=7)

        def server(job: tuple[str, str]) -> None:
            api.create(_mcpserver(*job, admin_port, self.issuer))

        def grants(job: tuple[str, str]) -> None:
            ns, name = job
            for k in range(s.grants // s.servers):
                who = f"user{k}@example.com"
                doc = grant(
                    f"{name}-g{k}", server=name, subject=who, namespace=ns, expires_at=expires
                )
                # The chart's admission policy holds every writer but the consent service to
                # grantedBy == their own user name, cluster admins included.
                doc["spec"]["grantedBy"] = ADMIN_USER
                api.create(doc)

        with ThreadPoolExecutor(6) as pool:
            jobs = [(ns, n) for ns, ns_names in self.servers.items() for n in ns_names]
            list(pool.map(server, jobs))
            print(f"{len(jobs)} MCPServers in {time.monotonic() - began:.0f}s")
            for ns in self.servers:
                self._wait_key(ns)
            t = time.monotonic()
            list(pool.map(grants, jobs))
            print(f"{s.grants} ConsentGrants in {time.monotonic() - t:.0f}s")
            self._settle()
            t = time.monotonic()
            plan = [("bench-0", "s0")] * s.big
            others = [(ns, n) for ns, n in jobs if n != "s0"]
            plan += [others[i % len(others)] for i in range(s.pods - s.big)]
            list(pool.map(self._pod, enumerate(plan)))
            print(
                f"{len(plan)} pods in {time.monotonic() - t:.0f}s ({len(self.real)} real); "
                f"webhook calls that failed and were retried: {len(self.webhook_failures)}"
            )
        for running in self.real:
            assert self.kubelet is not None
            self.kubelet.wait_ready(running, timeout=120)

    def _settle(self) -> None:
        """Wait until the operator has handled every grant (each has a status phase).

        Its sync count is no measure: every server resyncs every ``REMIT_RESYNC_SECONDS``.
        """
        api = self.plane.admin
        t = time.monotonic()
        while time.monotonic() - t < 900:
            pending = sum(
                1
                for ns in self.servers
                for g in api.list(API, "ConsentGrant", ns)
                if not (g.get("status") or {}).get("phase")
            )
            if not pending:
                break
            time.sleep(3)
        print(f"operator handled every grant after {time.monotonic() - t:.0f}s more")

    def _create_pod(self, ns: str, name: str) -> dict[str, Any]:
        """Create a pod; a webhook timeout is counted and retried (as a ReplicaSet would)."""
        api = self.plane.admin
        for _ in range(10):
            try:
                return api.create(_pod(ns, name))
            except ApiError as exc:
                if exc.status != 500 or "webhook" not in str(exc):
                    raise
                with self.lock:
                    self.webhook_failures.append(str(exc)[-160:])
        raise SystemExit(f"pod creation in {ns} refused 10 times: {self.webhook_failures[-1]}")

    def _wait_key(self, ns: str) -> None:
        """The operator wrote the public key ConfigMap real gateways mount."""
        api = self.plane.admin
        wait_for(lambda: api.get("v1", "ConfigMap", ns, "remit-bundle-key"), timeout=120)

    def _pod(self, job: tuple[int, tuple[str, str]]) -> None:
        """Create one pod through the API (the webhook injects it) and run it."""
        index, (ns, name) = job
        api = self.plane.admin
        created = self._create_pod(ns, name)
        podname = created["metadata"]["name"]
        assert GATEWAY in str(created["spec"]), "the webhook did not inject"
        if name == "s0" and index < self.sizes.real:
            assert self.kubelet is not None
            running = self.kubelet.run(ns, podname)
            with self.lock:
                self.real.append(running)
            return
        ip = _address(index)
        assert self.stand_ins is not None
        self.stand_ins.serve(ip)
        if name == "s0":
            with self.lock:
                self.big_ips.append(ip)
        api.patch("v1", "Pod", ns, podname, {"status": _status(created, ip)}, sub="status")

    def wait_in_sync(self, timeout: float) -> None:
        api = self.plane.admin
        want: dict[tuple[str, str], int] = {}
        for ns in self.servers:
            for pod in api.list("v1", "Pod", ns):
                key = (ns, pod["metadata"]["labels"]["app"])
                want[key] = want.get(key, 0) + 1
        began = time.monotonic()
        while True:
            behind = 0
            for ns in self.servers:
                for server in api.list(API, "MCPServer", ns):
                    name = server["metadata"]["name"]
                    status = server.get("status") or {}
                    if status.get("sidecarsInSync", 0) < want.get((ns, name), 0) or not status.get(
                        "bundleDigest"
                    ):
                        behind += 1
            if not behind:
                print(f"every server in sync after {time.monotonic() - began:.0f}s")
                return
            if time.monotonic() - began > timeout:
                raise SystemExit(f"{behind} servers not in sync after {timeout}s")
            time.sleep(3)

    def at_rest(self) -> float:
        """Operator API requests per minute over a quiet window."""
        time.sleep(10)
        before = {e["auditID"] for e in _completed(self.plane)}
        time.sleep(self.sizes.rest_seconds)
        window = [e for e in _completed(self.plane) if e["auditID"] not in before]
        by_verb: dict[str, int] = {}
        for event in window:
            key = f"{event.get('verb')} {(event.get('objectRef') or {}).get('resource')}"
            by_verb[key] = by_verb.get(key, 0) + 1
        total = len(_completed(self.plane))
        print(
            f"at rest, {self.sizes.rest_seconds:.0f}s: {by_verb or 'no requests'} "
            f"(the audit log holds {total} completed operator requests in all)"
        )
        return len(window) * 60 / self.sizes.rest_seconds

    def revoke(self, n: int) -> tuple[float, int]:
        """Revoke grant n of s0; (seconds until its last pod enforces, bytes pushed)."""
        api = self.plane.admin
        assert self.stand_ins is not None
        name = f"s0-g{n}"
        self.stand_ins.watch(f"bench-0/{name}", self.big_ips)
        counts = {p.ip: self._grants(p) for p in self.real}
        received = self.stand_ins.received
        began = time.monotonic()
        api.patch(API, "ConsentGrant", "bench-0", name, {"spec": {"revoked": True}})
        real_done: dict[str, float] = {}
        deadline = began + 60
        while True:
            for p in self.real:
                if p.ip not in real_done and self._grants(p) < counts[p.ip]:
                    real_done[p.ip] = time.monotonic()
            if len(real_done) == len(self.real) and len(self.stand_ins.enforced) == len(
                self.big_ips
            ):
                break
            if time.monotonic() > deadline:
                for p in self.real:
                    url = f"http://{p.ip}:{p.admin_port}/v1/status"
                    print(p.name, httpx.get(url, timeout=2).json())
                held = {(h.digest, h.serial, h.grants) for h in self.stand_ins.held.values()}
                print("stand-ins hold", sorted(held, key=str)[:5])
                raise SystemExit(
                    f"revocation {n}: {len(self.stand_ins.enforced)}/{len(self.big_ips)} "
                    f"stand-ins, {len(real_done)}/{len(self.real)} real enforce after 60s"
                )
            time.sleep(0.01)
        last = max([*self.stand_ins.enforced.values(), *real_done.values()])
        time.sleep(1)  # let the round finish: every byte of this change counts
        return last - began, self.stand_ins.received - received

    @staticmethod
    def _grants(pod: RunningPod) -> int:
        url = f"http://{pod.ip}:{pod.admin_port}/v1/status"
        bundle = httpx.get(url, timeout=2).json().get("bundle") or {}
        return int(bundle.get("grants", 0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="fewer objects, a quick check")
    parser.add_argument("--revocations", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=1800, help="stop after this many s")
    args = parser.parse_args()
    sizes = SMALL if args.small else FULL
    if args.revocations:
        sizes.revocations = args.revocations

    def expire(*_: Any) -> None:
        raise SystemExit(f"stopped: over --timeout {args.timeout:.0f}s")

    signal.signal(signal.SIGALRM, expire)
    signal.alarm(int(args.timeout))
    print(f"sizes: {sizes}; load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="remit-scale-") as tmp:
        bench = Bench(sizes, Path(tmp))
        try:
            bench.start()
            bench.populate()
            bench.wait_in_sync(timeout=900 if not args.small else 300)
            assert bench.operator is not None
            assert bench.operator.proc is not None
            pid = bench.operator.proc.pid
            per_minute = bench.at_rest()
            rss, _ = _rss(pid)
            times: list[float] = []
            pushed: list[int] = []
            for n in range(sizes.revocations):
                seconds, sent = bench.revoke(n)
                times.append(seconds)
                pushed.append(sent)
                print(f"revocation {n}: {seconds * 1000:.0f} ms, {sent} bytes to stand-ins")
            rss_after, peak = _rss(pid)
            everything = [e for e in _completed(bench.plane) if _audit_lists_every_pod(e)]
        finally:
            bench.close()
    return report(sizes, (rss, rss_after, peak), per_minute, times, pushed, everything)


def report(
    sizes: Sizes,
    memory: tuple[int, int, int],
    per_minute: float,
    times: list[float],
    pushed: list[int],
    everything: list[dict[str, Any]],
) -> int:
    """Print the figures; 1 when a target is missed."""
    rss, rss_after, peak = memory
    pods_big = sizes.big - sizes.real
    ordered = sorted(times)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    per_change = statistics.median(pushed)
    print()
    print(f"objects: {sizes.servers} MCPServers, {sizes.grants} ConsentGrants, {sizes.pods} pods")
    print(
        f"operator RSS: {rss / MiB:.0f} MiB at rest, {rss_after / MiB:.0f} MiB after "
        f"revocations, peak {peak / MiB:.0f} MiB (target <= 256 MiB)"
    )
    print(f"API requests per minute at rest: {per_minute:.1f}")
    print(
        f"bytes pushed per grant change: {per_change:.0f} to {pods_big} stand-in pods "
        f"({per_change / max(1, pods_big):.0f} per pod, one bundle each)"
    )
    print(
        f"revocation to last of {sizes.big} pods enforcing: p50 {p50 * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms over {len(times)} (target p99 <= 2000 ms)"
    )
    print(f"requests listing or watching every pod in the cluster: {len(everything)}")
    for event in everything[:5]:
        print(f"  {event.get('verb')} {event.get('requestURI')}")
    print(f"load average after: {os.getloadavg()}")
    missed = []
    if peak > RSS_TARGET:
        missed.append("RSS")
    if p99 > REVOCATION_TARGET:
        missed.append("revocation p99")
    if everything:
        missed.append("a request listed every pod")
    print("targets missed: " + (", ".join(missed) if missed else "none"))
    return 1 if missed else 0


def _grants_nothing(grants: list[dict[str, Any]], grant_id: str) -> bool:
    """The bundle no longer grants ``grant_id``: it is gone, or kept as ended (a past
    ``expiresAt``, as bundles keep recently revoked or expired grants to name them)."""
    for held in grants:
        if held["id"] == grant_id:
            ends = datetime.fromisoformat(str(held["expiresAt"]).replace("Z", "+00:00"))
            return ends <= datetime.now(UTC)
    return True


if __name__ == "__main__":
    raise SystemExit(main())
