"""What the operator knows about the cluster, in memory: resources, and sidecars per MCPServer.

kopf's watch events feed it; every change answers which MCPServers it affects, so only their
bundles are recompiled. A change that leaves a resource's ``spec`` as it was (a status write,
a label) affects nothing. An AgentPolicy that later turns invalid keeps its last valid version
in force (its status says so), as an invalid manifest is never applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from remit.api.agentpolicy import AgentPolicy
from remit.api.common import Resource
from remit.api.consentgrant import ConsentGrant
from remit.api.mcpserver import MCPServer
from remit.policy.compiler import applies_to, grant_for
from remit_operator.compact import Shapes
from remit_operator.podshape import GATEWAY_CONTAINER, exposure
from remit_operator.seal import container_digest
from remit_operator.seal_v1 import Sources, container_digest_v1, volume_sources

SERVER_ANNOTATION = "remit.dev/mcpserver"
SERVER_LABEL = "remit.dev/mcpserver"  # the API server filters the pod watch by it
KEY_ANNOTATION = "remit.dev/bundle-key-id"
SEAL_ANNOTATION = "remit.dev/injection-seal"


def ref(namespace: str | None, name: str) -> str:
    """``namespace/name``."""
    return f"{namespace or 'default'}/{name}"


@dataclass(frozen=True, slots=True)
class Sidecar:
    """One injected pod's gateway, as the operator can reach it.

    Nothing here is trusted yet: ``seal`` and ``spec_digest`` let the syncer check that the
    webhook injected this very gateway for this very MCPServer (``remit_operator.seal``), and
    ``labels`` that the server's selector still matches the pod.
    """

    pod: str  # namespace/name of the pod
    server: str  # namespace/name of its MCPServer (from the annotation: a claim, not a fact)
    ip: str | None
    reachable: bool  # its gateway listens (started), with an IP, not terminating
    ready: bool  # the kubelet reports the gateway container Ready
    kid: str | None  # the signing key id it was started with (annotation)
    incarnation: str  # changes when the gateway process may have lost its bundle
    labels: tuple[tuple[str, str], ...] = ()
    seal: str | None = None  # the webhook's seal (annotation)
    spec_digest: str | None = None  # digest of the gateway container the pod really runs
    starting: bool = False  # created, gateway not listening yet: not a failure to report
    v1_digest: str | None = None  # what a previous release's seal covers (seal_v1.py)
    volumes: Sources = ()  # each volume the gateway mounts, with its source
    exposed: str | None = None  # why something else could pose as its gateway (podshape.py)
    created: str | None = None  # metadata.creationTimestamp (set by the API server)

    @property
    def admin_host(self) -> str:
        """Where its admin API listens (the pod IP)."""
        return self.ip or ""


def gateway_spec(spec: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The injected gateway container of a pod spec: a native sidecar or a plain container."""
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            if isinstance(container, Mapping) and container.get("name") == GATEWAY_CONTAINER:
                return container
    return None


def _gateway_status(status: Mapping[str, Any]) -> Mapping[str, Any]:
    for key in ("initContainerStatuses", "containerStatuses"):
        for entry in status.get(key) or []:
            if isinstance(entry, Mapping) and entry.get("name") == GATEWAY_CONTAINER:
                return entry
    return {}


def sidecar_from_pod(body: Mapping[str, Any]) -> Sidecar | None:
    """The sidecar of an injected pod, or None for a pod without one."""
    metadata = body.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    server = annotations.get(SERVER_ANNOTATION)
    if not server or not isinstance(server, str):
        return None
    namespace = metadata.get("namespace") or "default"
    status = body.get("status") or {}
    ip = status.get("podIP") or None
    gateway = _gateway_status(status)
    running = "running" in (gateway.get("state") or {})
    # ``started`` turns true when the gateway's startupProbe (/healthz on the admin port)
    # passed: only then does a push have something to reach.
    started = running and gateway.get("started") is True
    alive = not metadata.get("deletionTimestamp") and status.get("phase") not in (
        "Succeeded",
        "Failed",
    )
    reachable = bool(ip and started and alive)
    incarnation = "/".join(
        str(x)
        for x in (metadata.get("uid"), ip, gateway.get("restartCount"), gateway.get("containerID"))
    )
    spec = body.get("spec") or {}
    container = gateway_spec(spec)
    labels = metadata.get("labels") or {}
    seal = annotations.get(SEAL_ANNOTATION)
    return Sidecar(
        pod=ref(namespace, metadata.get("name", "")),
        server=ref(namespace, server),
        ip=ip,
        reachable=reachable,
        ready=bool(gateway.get("ready")),
        kid=annotations.get(KEY_ANNOTATION),
        incarnation=incarnation,
        labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())),
        seal=seal if isinstance(seal, str) else None,
        spec_digest=container_digest(container, spec) if container else None,
        starting=bool(alive and not reachable),
        v1_digest=container_digest_v1(container, spec) if container else None,
        volumes=volume_sources(container, spec) if container else (),
        exposed=exposure(spec),
        created=str(metadata.get("creationTimestamp") or "") or None,
    )


class Index:
    """Valid resources by kind and ``namespace/name``, and sidecars by pod.

    Grants and sidecars are also kept by the server they name, and policies by namespace, so
    compiling one server's bundle reads only what takes part in it: with 10,000 grants, a scan
    of every grant per sync (one sync per grant created) kept the event loop, and with it the
    admission webhook, busy for minutes.
    """

    def __init__(self) -> None:
        self.servers: dict[str, MCPServer] = {}
        self.policies: dict[str, AgentPolicy] = {}
        self.grants: dict[str, ConsentGrant] = {}
        self.pods: dict[str, Sidecar] = {}
        self._grants_by_server: dict[str, dict[str, ConsentGrant]] = {}
        self._policies_by_namespace: dict[str, dict[str, AgentPolicy]] = {}
        self._pods_by_server: dict[str, dict[str, Sidecar]] = {}
        self._prints: dict[tuple[str, str], bytes] = {}  # (kind, key) → digest of its spec
        self.shapes = Shapes()  # what indexed models share (remit_operator.compact)

    def _store(self, kind: str) -> dict[str, Any]:
        stores: dict[str, dict[str, Any]] = {
            "MCPServer": self.servers,
            "AgentPolicy": self.policies,
            "ConsentGrant": self.grants,
        }
        return stores[kind]

    def print(self, kind: str, key: str, fingerprint: bytes | None) -> None:
        """Remember the digest of the spec ``kind`` ``key`` was last parsed from."""
        if fingerprint is None:
            self._prints.pop((kind, key), None)
        else:
            self._prints[(kind, key)] = fingerprint

    def printed(self, kind: str, key: str) -> bytes | None:
        """The digest ``print`` remembered, if the resource is still indexed."""
        return self._prints.get((kind, key))

    def get(self, kind: str, key: str) -> Resource | None:
        """The indexed ``kind`` resource named ``key`` (``namespace/name``), if any."""
        found: Resource | None = self._store(kind).get(key)
        return found

    def _group(self, resource: Resource) -> tuple[dict[str, dict[str, Any]], str] | None:
        """The secondary index a resource belongs to, and its key there."""
        if isinstance(resource, ConsentGrant):
            return self._grants_by_server, _grant_server(resource)
        if isinstance(resource, AgentPolicy):
            return self._policies_by_namespace, resource.metadata.namespace or "default"
        return None

    def _file(self, resource: Resource | None, *, add: bool) -> None:
        group = self._group(resource) if resource is not None else None
        if resource is None or group is None:
            return
        groups, key = group
        if add:
            groups.setdefault(key, {})[resource.ref] = resource
            return
        members = groups.get(key, {})
        members.pop(resource.ref, None)
        if not members:
            groups.pop(key, None)

    def affected_by(self, resource: Resource | None) -> set[str]:
        """The MCPServers (``namespace/name``) whose bundle ``resource`` takes part in."""
        if resource is None:
            return set()
        if isinstance(resource, MCPServer):
            return {resource.ref}
        if isinstance(resource, ConsentGrant):
            return {_grant_server(resource)}
        if isinstance(resource, AgentPolicy):
            return {r for r, server in self.servers.items() if applies_to(resource, server)}
        return set()

    def upsert(self, resource: Resource) -> set[str]:
        """Add or replace a resource; return the servers affected (before and after)."""
        store = self._store(resource.KIND)
        old = store.get(resource.ref)
        if old is not None and _same_spec(old, resource):
            return set()
        affected = self.affected_by(old)
        self._file(old, add=False)
        store[resource.ref] = resource
        self._file(resource, add=True)
        return affected | self.affected_by(resource)

    def remove(self, kind: str, key: str) -> set[str]:
        """Forget a deleted resource; return the servers it affected."""
        old = self._store(kind).pop(key, None)
        self._prints.pop((kind, key), None)
        self._file(old, add=False)
        affected = self.affected_by(old)
        if isinstance(old, MCPServer):
            affected.add(old.ref)
        return affected

    def prune(self, kind: str, listed: set[str], listed_at: int) -> set[str]:
        """Forget every ``kind`` resource a fresh listing (at collection resourceVersion
        ``listed_at``) no longer has; return the servers affected.

        A replica's watches are paused while another replica leads, and the listing kopf makes
        on resuming reports no deletions: what was deleted meanwhile (a revoked grant) would
        stay. A resource newer than the listing (its resourceVersion above ``listed_at``) is
        kept: it arrived from the watch after the list was taken.
        """
        affected: set[str] = set()
        for key, resource in list(self._store(kind).items()):
            if key in listed:
                continue
            try:
                newer = int(resource.metadata.resource_version) > listed_at
            except ValueError:
                newer = False  # opaque: the listing is the fresher view
            if not newer:
                affected |= self.remove(kind, key)
        return affected

    def resources_for(self, server_ref: str) -> list[Resource]:
        """The server and every policy and grant that takes part in its bundle."""
        server = self.servers.get(server_ref)
        if server is None:
            return []
        namespace = self._policies_by_namespace.get(server.metadata.namespace or "default", {})
        policies = [p for p in namespace.values() if applies_to(p, server)]
        grants = [g for g in self.grants_for(server_ref) if grant_for(g, server)]
        return [server, *policies, *grants]

    def grants_for(self, server_ref: str) -> list[ConsentGrant]:
        """Every grant naming this server."""
        return list(self._grants_by_server.get(server_ref, {}).values())

    def upsert_pod(self, sidecar: Sidecar) -> set[str]:
        """Record a sidecar; return its server if anything a push depends on changed."""
        old = self.pods.get(sidecar.pod)
        self.pods[sidecar.pod] = sidecar
        if old is not None:
            self._unfile_pod(old)
        self._pods_by_server.setdefault(sidecar.server, {})[sidecar.pod] = sidecar
        if old == sidecar:
            return set()
        return {sidecar.server} | ({old.server} if old is not None else set())

    def _unfile_pod(self, sidecar: Sidecar) -> None:
        members = self._pods_by_server.get(sidecar.server, {})
        members.pop(sidecar.pod, None)
        if not members:
            self._pods_by_server.pop(sidecar.server, None)

    def remove_pod(self, pod: str) -> set[str]:
        """Forget a deleted pod; return its server."""
        old = self.pods.pop(pod, None)
        if old is None:
            return set()
        self._unfile_pod(old)
        return {old.server}

    def sidecars(self, server_ref: str) -> list[Sidecar]:
        """Every known sidecar of one server, in a stable order."""
        members = self._pods_by_server.get(server_ref, {})
        return sorted(members.values(), key=lambda s: s.pod)


def _grant_server(grant: ConsentGrant) -> str:
    return ref(grant.metadata.namespace, grant.spec.server)


def _same_spec(old: Resource, new: Resource) -> bool:
    return bool(getattr(old, "spec", None) == getattr(new, "spec", None))
