"""kopf handlers: thin wiring from watch events and admission requests to the Runtime.

``register`` puts every handler on a given ``kopf.OperatorRegistry`` bound to one ``Runtime``;
nothing is registered at import time except by ``remit_operator.entry`` for ``kopf run``.

- MCPServer / AgentPolicy / ConsentGrant: kopf index handlers fill the index (kopf starts no
  other handler before every kind is listed: no bundle from a partial view); event handlers
  validate, write status, forget deleted objects, wake the syncers of the servers affected.
- Pod events (pods the webhook labelled; the API server filters the watch, in pages): index
  the sidecar, wake its server's syncer.
- One sync loop per MCPServer (compile, sign, push, expiry, resync): an asyncio task owned by
  ``Syncers``, started by those handlers, stopped when the server goes or this replica stops
  leading (``leader``). No handler here needs a finalizer (no daemon, timer or on.delete), so
  deleting an MCPServer or its namespace never waits for the operator; kopf removes the
  finalizer older versions left (``remit.dev/operator``) the next time it sees the object.
- ``on.mutate`` for pods: inject the gateway (``webhook.inject``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from typing import Any, cast

import kopf

from remit.api.common import API_VERSION
from remit.api.consentgrant import ConsentGrant
from remit.api.loader import parse
from remit.api.mcpserver import MCPServer
from remit.errors import RemitError, ResourceError
from remit_operator.errors import InjectionError, KubeError
from remit_operator.gatewayspec import native_sidecars
from remit_operator.index import SERVER_ANNOTATION, SERVER_LABEL, ref, sidecar_from_pod
from remit_operator.intake import document, parsed
from remit_operator.kube import object_path
from remit_operator.leader import Leadership
from remit_operator.lint_status import recheck, warn
from remit_operator.resync import refresh_index
from remit_operator.runtime import Runtime
from remit_operator.selectors import matching_server
from remit_operator.status import grant_status, policy_status, rejection, unchanged
from remit_operator.syncers import Syncers
from remit_operator.webhook import inject

log = logging.getLogger(__name__)
GROUP, VERSION = API_VERSION.split("/")
POD_RESOURCE = ("", "v1", "pods")
WATCH_CHUNK = 500  # list pods (and everything else) in pages, never in one answer
VERSION_TTL_SECONDS = 600.0
KEY_WAIT_SECONDS = 5.0  # well inside the webhook's timeoutSeconds
PLURALS = {
    "MCPServer": "mcpservers",
    "AgentPolicy": "agentpolicies",
    "ConsentGrant": "consentgrants",
}


async def _patch_status(rt: Runtime, kind: str, body: kopf.Body, status: dict[str, Any]) -> bool:
    """Write a status unless the object has it already; False when the write failed."""
    if unchanged(body, status):
        return True
    meta = body.get("metadata") or {}
    path = object_path(
        API_VERSION, PLURALS[kind], meta.get("namespace"), meta.get("name"), "status"
    )
    try:
        await rt.kube.patch(path, {"status": status})
    except KubeError as exc:
        log.warning("cannot write status of %s %s: %s", kind, meta.get("name"), exc)
        return False
    return True


async def index_resource(rt: Runtime, syncers: Syncers, kind: str, body: kopf.Body) -> None:
    """kopf's index handler: put a valid resource in the index and wake the servers it affects.

    kopf calls index handlers while it lists each kind and starts no other handler before every
    indexed kind is listed; sync loops start only from those (``Syncers.listed``), so no bundle
    is ever compiled from a partial view (after a restart, a Deny policy is never missing).
    Invalid resources are reported by ``on_resource``; deletions are handled there too (kopf
    does not call index handlers then), and so are terminating objects (skipped here).
    """
    meta = body.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return
    key = ref(meta.get("namespace"), meta.get("name", ""))
    try:
        resource = parsed(rt.index, kind, body, key)
    except ResourceError:
        return
    affected = rt.index.upsert(resource)
    if isinstance(resource, MCPServer):
        syncers.get(resource.ref)  # its loop starts from the event handler, once all is listed
    syncers.touch(affected)


async def on_resource(
    rt: Runtime, syncers: Syncers, kind: str, event_type: str | None, body: kopf.Body
) -> None:
    """Index a resource change and wake the syncers of the servers it affects."""
    syncers.listed()  # kopf calls event handlers only once every indexed kind is listed
    meta = body.get("metadata") or {}
    key = ref(meta.get("namespace"), meta.get("name", ""))
    if event_type == "DELETED" or meta.get("deletionTimestamp"):  # gone, or going
        if kind == "ConsentGrant":
            rt.grant_phases.pop(key, None)
            rt.grant_writes.pop(key, None)
        gone = rt.index.servers.get(key) if kind == "MCPServer" else None
        if kind == "MCPServer":
            syncers.forget(key)  # a re-created server starts afresh
            with contextlib.suppress(RemitError):  # not started yet: nothing kept
                rt.pusher.forget(key)
        syncers.touch(rt.index.remove(kind, key))
        if gone is not None:
            await recheck(
                rt,
                gone,
                lambda k, b: on_resource(
                    rt, syncers, k, "MODIFIED", kopf.Body(cast("kopf.RawBody", b))
                ),
            )
        return
    try:
        resource = parsed(rt.index, kind, body, key)
    except ResourceError as exc:
        await _rejected(rt, kind, body, exc)
        return
    affected = rt.index.upsert(resource)
    log.debug("%s %s %s affects %s", event_type, kind, key, sorted(affected))
    if isinstance(resource, MCPServer):
        syncers.ensure(resource.ref)  # its loop runs (if this replica leads); syncs at once
        if event_type == "ADDED":  # created (not listed): what names it may have warned
            await recheck(
                rt,
                resource,
                lambda k, b: on_resource(
                    rt, syncers, k, "MODIFIED", kopf.Body(cast("kopf.RawBody", b))
                ),
            )
    syncers.touch(affected)
    now = rt.clock()
    if kind == "AgentPolicy":
        accepted = (body.get("status") or {}).get("conditions") or []
        if not any(c.get("type") == "Accepted" and c.get("status") == "True" for c in accepted):
            rt.event(dict(body), "Normal", "Accepted", "policy accepted")
        status = policy_status(body, now)
        warn(rt, body, resource, status, now)
        await _patch_status(rt, kind, body, status)
    elif isinstance(resource, ConsentGrant):
        status = grant_status(body, resource, now)
        warn(rt, body, resource, status, now)
        servers = rt.index.affected_by(resource)
        if unchanged(body, status):
            rt.grant_phases[key] = status["phase"]  # the API has it: nothing to write
        elif all(syncers.is_running(r) for r in servers):
            # Its server's syncer writes it: this handler, and the body kopf holds for it, do
            # not wait for the API (10,000 grants piled up in kopf's workers that way).
            rt.grant_writes[key] = status
            syncers.touch(servers)
        elif await _patch_status(rt, kind, body, status):  # else the syncer writes it later
            rt.grant_phases[key] = status["phase"]


async def _rejected(rt: Runtime, kind: str, body: kopf.Body, error: RemitError) -> None:
    """Report an invalid resource; the last valid version (if any) stays in force."""
    now = rt.clock()
    reason, message = rejection(error)
    if kind == "AgentPolicy":
        status = policy_status(body, now, error)
        if not unchanged(body, {"conditions": status["conditions"]}):  # not yet reported
            rt.event(dict(body), "Warning", "Rejected", message)
        await _patch_status(rt, kind, body, status)
    elif kind == "ConsentGrant":
        await _patch_status(rt, kind, body, grant_status(body, None, now, error))
    else:
        rt.event(dict(body), "Warning", reason, message)
        log.warning("invalid %s: %s", kind, message)


async def on_pod(rt: Runtime, syncers: Syncers, event_type: str | None, body: kopf.Body) -> None:
    """Index an injected pod's sidecar and wake its server's syncer."""
    syncers.listed()
    meta = body.get("metadata") or {}
    pod = ref(meta.get("namespace"), meta.get("name", ""))
    if event_type == "DELETED":
        syncers.touch(rt.index.remove_pod(pod))
        return
    sidecar = sidecar_from_pod(body)
    if sidecar is not None:
        syncers.touch(rt.index.upsert_pod(sidecar))


async def servers_in(rt: Runtime, namespace: str) -> list[MCPServer]:
    """Every valid MCPServer of a namespace, read live from the API (not the index)."""
    items = await rt.kube.list(object_path(API_VERSION, "mcpservers", namespace))
    servers = []
    for item in items:
        try:
            resource = parse(document(item, "MCPServer"), "MCPServer")
        except ResourceError:
            continue
        if isinstance(resource, MCPServer):
            servers.append(resource)
    return servers


class ServerVersion:
    """Whether the API server runs native sidecars, asked at most every ten minutes."""

    def __init__(self) -> None:
        self._native: bool | None = None
        self._asked = 0.0

    async def native(self, rt: Runtime) -> bool:
        """REMIT_GATEWAY_NATIVE_SIDECAR, with ``auto`` decided by the API server's ``/version``."""
        setting = rt.settings.gateway.native_sidecar
        if setting != "auto":
            return native_sidecars(setting, None)
        now = time.monotonic()
        if self._native is None or now - self._asked > VERSION_TTL_SECONDS:
            try:
                version = await rt.kube.get("/version")
            except KubeError as exc:
                log.warning("cannot read the API server version (%s): plain containers", exc)
                version = {}
            self._native, self._asked = native_sidecars("auto", version), now
        return self._native


async def mutate_pod(
    rt: Runtime,
    body: kopf.Body,
    patch: kopf.Patch,
    warnings: list[str],
    version: ServerVersion | None = None,
) -> None:
    """Inject the gateway into a pod that matches an MCPServer; refuse it if that fails."""
    pod = copy.deepcopy(dict(body))
    namespace = (pod.get("metadata") or {}).get("namespace")
    if not namespace:
        raise kopf.AdmissionError("remit: the pod under review names no namespace", code=400)
    if namespace in rt.settings.kube.protected_namespaces:
        return
    try:
        server = matching_server(pod, await servers_in(rt, namespace))
        if server is None:
            return
        if not await rt.ready(KEY_WAIT_SECONDS):
            raise kopf.AdmissionError("remit: the signing key is not loaded yet", code=503)
        native = await (version or ServerVersion()).native(rt)
        injected = inject(
            pod,
            server,
            rt.settings,
            rt.keyring.active,
            native=native,
            keys=list(rt.keyring.candidates()),
        )
    except (InjectionError, KubeError) as exc:
        raise kopf.AdmissionError(f"remit: cannot inject the gateway: {exc}", code=403) from exc

    def replace(raw: Any) -> None:
        raw.clear()
        raw.update(copy.deepcopy(injected))

    patch.fns.append(replace)
    warnings.append(f"remit: gateway injected for MCPServer {server.ref}")


def watch_settings(kopf_settings: kopf.OperatorSettings) -> None:
    """Let the API server filter the pod watch: only pods the webhook labelled, in pages."""
    kopf_settings.watching.label_selectors[POD_RESOURCE] = SERVER_LABEL
    kopf_settings.watching.chunk_size = WATCH_CHUNK


def register(registry: kopf.OperatorRegistry, rt: Runtime) -> None:
    """Put every handler of the operator on ``registry``, bound to ``rt``."""
    syncers = Syncers(rt)

    async def refresh() -> None:
        forgotten = await refresh_index(rt.kube, rt.index, PLURALS, WATCH_CHUNK)
        if forgotten:
            log.info(
                "peering: forgot what was deleted while standing by (%d servers)", len(forgotten)
            )

    leadership = Leadership(lambda: rt.kube, rt.identity, syncers.lead, rt.clock, refresh)
    following: list[asyncio.Task[None]] = []

    @kopf.on.login(registry=registry)
    async def login(logger: Any, **kwargs: Any) -> kopf.ConnectionInfo | None:
        info = await asyncio.to_thread(rt.login, logger=logger, **kwargs)
        if info is not None:
            rt.connected()
        return info

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        await rt.start()  # touches no API: kopf logs in only after every startup handler

        async def follow() -> None:
            await rt.ready()  # logged in; kopf's peering settings are final by now
            await leadership.run(settings)

        following.append(asyncio.create_task(follow(), name="remit peering"))

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        for task in following:
            task.cancel()
        await syncers.close()
        await rt.stop()

    for kind, plural in PLURALS.items():

        @kopf.index(GROUP, VERSION, plural, registry=registry, id=f"index-{plural}", param=kind)
        async def index(body: kopf.Body, param: Any = None, **_: Any) -> None:
            await index_resource(rt, syncers, param, body)

        @kopf.on.event(GROUP, VERSION, plural, registry=registry, id=f"watch-{plural}", param=kind)
        async def watch(type: str | None, body: kopf.Body, param: Any = None, **_: Any) -> None:
            await on_resource(rt, syncers, param, type, body)

    @kopf.on.event(
        "",
        "v1",
        "pods",
        labels={SERVER_LABEL: kopf.PRESENT},
        annotations={SERVER_ANNOTATION: kopf.PRESENT},
        registry=registry,
        id="watch-pods",
    )
    async def watch_pods(type: str | None, body: kopf.Body, **_: Any) -> None:
        await on_pod(rt, syncers, type, body)

    version = ServerVersion()

    @kopf.on.mutate("", "v1", "pods", operations=["CREATE"], registry=registry, id="inject")
    async def mutate(body: kopf.Body, patch: kopf.Patch, warnings: list[str], **_: Any) -> None:
        await mutate_pod(rt, body, patch, warnings, version)
