"""One MCPServer's sync loop: compile, sign, push to every sidecar, write status; wake on time.

An asyncio task owned by ``remit_operator.syncers.Syncers`` runs ``Syncer.run`` for each
MCPServer (not a kopf daemon: those put a finalizer on the object). It wakes when a resource
that takes part in the bundle changes (``touch``), at the bundle's ``nextExpiry`` (so an
expired grant leaves the bundle on time even if nothing is written), and every
``REMIT_RESYNC_SECONDS`` to read every sidecar's digest and push again to any that differ (a
restarted sidecar, a drift).

Serials are wall-clock milliseconds, never lower than the last one used, than the MCPServer's
``status.bundleSerial``, or than a serial a sidecar reports in a 409: a restarted operator
therefore never produces a lower serial than sidecars hold. An unchanged digest keeps its
signed bundle and serial, so re-pushing it is idempotent, until the bundle is
``REMIT_BUNDLE_REFRESH_SECONDS`` old: then it is signed again with a new ``issuedAt`` and serial,
because sidecars refuse bundles older than their ``REMIT_MAX_BUNDLE_AGE_SECONDS``. A push a
sidecar refuses (wrong server, stale) is a ``BundleRefused`` Event and status reason.

Only sidecars the webhook sealed for this server, and that its selector still matches, count
(``remit_operator.seal``): only their pins join the bundle and only their serials raise the
floor, and a reported serial more than ten minutes past the clock is ignored
(``remit_operator.trust``). A pod whose gateway does not listen yet (not "started") is waited
for, not pushed to or reported as failed; a sidecar that failed is tried again after a short
backoff (1 s, doubling), not only at the resync.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from remit.api.common import Resource
from remit.api.mcpserver import MCPServer
from remit.errors import CompileError, RemitError
from remit.policy.bundle import Bundle
from remit.policy.compiler import compile_bundle
from remit.policy.signing import sign
from remit_operator.errors import KubeError
from remit_operator.index import Sidecar
from remit_operator.kube import object_path
from remit_operator.netpol import network_policy
from remit_operator.push import MAX_PINS, PushResult
from remit_operator.runtime import Runtime
from remit_operator.status import ServerReport, grant_status, server_status
from remit_operator.trust import plausible_serial, sort_sidecars

log = logging.getLogger(__name__)
EXPIRY_SLACK_SECONDS = 0.05
MAX_ROLLBACK_ROUNDS = 3
RETRY_FIRST_SECONDS = 1.0  # after a failed push; doubles up to REMIT_RESYNC_SECONDS


@dataclass
class Signed:
    """A bundle and its compact JWS per signing key id."""

    bundle: Bundle
    tokens: dict[str, bytes] = field(default_factory=dict)  # encoded once, shared by all pushes


def next_wake(now: datetime, next_expiry: datetime | None, next_check: datetime) -> float:
    """Seconds until the syncer must run again on its own: an expiry or the periodic check."""
    deadline = next_check
    if next_expiry is not None and next_expiry < deadline:
        deadline = next_expiry
    return max(0.0, (deadline - now).total_seconds() + EXPIRY_SLACK_SECONDS)


class Syncer:
    """Keeps every sidecar of one MCPServer on the current bundle."""

    def __init__(self, server_ref: str, runtime: Runtime) -> None:
        self.ref = server_ref
        self.rt = runtime
        self.wake = asyncio.Event()
        self.signed: Signed | None = None
        self.serial_floor = 0
        self.held: dict[str, tuple[str, str | None]] = {}  # pod → (incarnation, digest)
        self.pins: dict[str, str] = {}
        self._netpol: dict[str, Any] | None = None
        self._status_written: dict[str, Any] | None = None
        self._started = False
        self._retry: float | None = None  # seconds until failed sidecars are tried again
        self._untrusted: set[str] = set()  # pods already reported as not injected by us

    def touch(self) -> None:
        """Ask for a sync as soon as possible."""
        self.wake.set()

    async def run(self, stopped: Any) -> None:
        """The task body: sync now, then on every wake, expiry and periodic check, until stopped."""
        await self.rt.ready()  # nothing is signed before the signing key is loaded
        next_check = self.rt.clock()
        while not stopped:
            now = self.rt.clock()
            full = now >= next_check
            self.wake.clear()
            try:
                await self.sync(check_all=full)
            except (RemitError, OSError) as exc:
                log.exception("sync of %s failed: %s", self.ref, exc)
            if full:
                next_check = self.rt.clock() + timedelta(
                    seconds=self.rt.settings.sync.resync_seconds
                )
            expiry = self.signed.bundle.next_expiry if self.signed else None
            timeout = next_wake(self.rt.clock(), expiry, next_check)
            if self._retry is not None:
                timeout = min(timeout, self._retry)
            await _wait_any(self.wake, stopped, timeout)

    def _start(self, server: MCPServer) -> None:
        if self._started:
            return
        self._started = True
        status = server.status
        if status is not None:
            self.serial_floor = max(self.serial_floor, status.bundle_serial or 0)
            self.pins.update(status.tool_pins)

    def _serial(self) -> int:
        serial = max(int(self.rt.clock().timestamp() * 1000), self.serial_floor + 1)
        self.serial_floor = serial
        return serial

    def _compile(self, server: MCPServer, now: datetime) -> Signed:
        bundle = compile_bundle(
            self.rt.index.resources_for(self.ref),
            server.metadata.name,
            namespace=server.metadata.namespace,
            serial=0,
            now=now,
            tool_pins=self.pins,
        )
        if self.signed is not None and self.signed.bundle.digest == bundle.digest:
            age = (now - self.signed.bundle.issued_at).total_seconds()
            if age < self.rt.settings.sync.bundle_refresh_seconds:
                return self.signed  # else re-signed: sidecars refuse bundles past a maximum age
        return self._sign(bundle)

    def _sign(self, bundle: Bundle) -> Signed:
        bundle = bundle.model_copy(update={"serial": self._serial()})
        keys = list(self.rt.keyring.candidates())
        return Signed(bundle, {str(k.kid): sign(bundle, k).encode() for k in keys})

    def _tokens(self, sidecar: Sidecar) -> list[bytes]:
        assert self.signed is not None
        kids = [str(k.kid) for k in self.rt.keyring.candidates(sidecar.kid)]
        return [self.signed.tokens[kid] for kid in kids if kid in self.signed.tokens]

    async def _prepare(self, server: MCPServer) -> None:
        """Publish the public key in the namespace and apply the NetworkPolicy (when changed)."""
        namespace = server.metadata.namespace
        await self.rt.publisher.publish(self.rt.keyring, namespace)
        policy = network_policy(server, self.rt.settings)
        if policy != self._netpol:
            collection = object_path("networking.k8s.io/v1", "networkpolicies", namespace)
            await self.rt.kube.ensure(collection, policy, ("spec",))
            self._netpol = policy

    async def sync(self, *, check_all: bool = False) -> ServerReport | None:
        """One pass: compile, sign if changed, push where needed, write status."""
        began = time.perf_counter()
        server = self.rt.index.servers.get(self.ref)
        if server is None:
            return None
        self._start(server)
        try:
            await self._prepare(server)
        except KubeError as exc:
            log.warning("%s: cannot publish key or NetworkPolicy: %s", self.ref, exc)
        now = self.rt.clock()
        try:
            self.signed = self._compile(server, now)
        except CompileError as exc:
            self.rt.metrics.syncs.labels(self.ref, "compile_error").inc()
            report = ServerReport(None, None, 0, 0, 0, self.pins, error=str(exc))
            await self._write_status(server, report)
            return report
        sidecars = self._trusted(server, self.rt.index.sidecars(self.ref))
        live = {s.pod for s in sidecars}
        self.held = {pod: held for pod, held in self.held.items() if pod in live}
        self.rt.pusher.retain(self.ref, sidecars)
        reachable = [s for s in sidecars if s.reachable]
        if check_all and await self._observe(reachable):
            self.signed = self._compile(server, now)  # new pins observed: they join the bundle
        compiled = time.perf_counter()
        failed = await self._push(server, reachable)
        log.debug(
            "%s: bundle %s compiled in %.1f ms, %d sidecar(s) pushed in %.1f ms",
            self.ref,
            self.signed.bundle.digest[:12],
            (compiled - began) * 1000,
            len(reachable),
            (time.perf_counter() - compiled) * 1000,
        )
        self._retry = self._next_retry(failed)
        report = self._report(sidecars, failed)
        await self._write_status(server, report)
        await self._write_grants(now)
        self._measure(report, time.perf_counter() - began)
        return report

    def _trusted(self, server: MCPServer, sidecars: list[Sidecar]) -> list[Sidecar]:
        """The sidecars the webhook sealed for this server whose labels it still selects."""
        trusted, refused = sort_sidecars(server, sidecars, list(self.rt.keyring.candidates()))
        self._untrusted &= {s.pod for s, _ in refused}  # report again if it comes back
        for sidecar, why in refused:
            if sidecar.pod not in self._untrusted:
                self._untrusted.add(sidecar.pod)
                log.warning(
                    "%s: pod %s is not counted as a sidecar: %s", self.ref, sidecar.pod, why
                )
                self.rt.event(
                    server, "Warning", "UntrustedSidecar", f"{sidecar.pod}: {why}; ignored"
                )
        return trusted

    def _next_retry(self, failed: list[PushResult]) -> float | None:
        if not failed:
            return None
        resync = self.rt.settings.sync.resync_seconds
        return min(resync, RETRY_FIRST_SECONDS if self._retry is None else self._retry * 2)

    def _plausible(self, serial: int | None) -> int:
        """A serial a sidecar reports, if it can be one this operator signed; else 0."""
        if serial is not None and not plausible_serial(serial, self.rt.clock(), self.serial_floor):
            log.warning("%s: ignoring implausible serial %d from a sidecar", self.ref, serial)
            return 0
        return serial or 0

    def _measure(self, report: ServerReport, seconds: float) -> None:
        metrics = self.rt.metrics
        metrics.syncs.labels(self.ref, "ok").inc()
        metrics.sync_seconds.observe(seconds)
        for state, count in (
            ("desired", report.desired),
            ("ready", report.ready),
            ("in_sync", report.in_sync),
        ):
            metrics.sidecars.labels(self.ref, state).set(count)

    async def _observe(self, sidecars: list[Sidecar]) -> bool:
        """Read every sidecar's digest and pins; return whether new pins were learned."""
        server = self.rt.index.servers[self.ref]
        outcomes = await self.rt.pusher.status_all(sidecars, server.spec.gateway.admin_port)
        learned = False
        for outcome in outcomes:
            if outcome.error is None:
                self.held[outcome.sidecar.pod] = (outcome.sidecar.incarnation, outcome.digest)
                self.serial_floor = max(self.serial_floor, self._plausible(outcome.serial))
            for tool, digest in (outcome.pins or {}).items():
                if tool not in self.pins and len(self.pins) < MAX_PINS:
                    self.pins[tool] = digest
                    learned = True
        return learned

    async def _push(self, server: MCPServer, sidecars: list[Sidecar]) -> list[PushResult]:
        """Push to every sidecar not known to hold the current digest; return the failures."""
        assert self.signed is not None
        port = server.spec.gateway.admin_port
        failed: list[PushResult] = []
        for _ in range(MAX_ROLLBACK_ROUNDS):
            digest = self.signed.bundle.digest
            targets = [s for s in sidecars if self.held.get(s.pod) != (s.incarnation, digest)]
            if not targets:
                break
            outcomes = await self.rt.pusher.push_all(targets, port, self._tokens)
            failed, rollback = [], 0
            for outcome in outcomes:
                pod = outcome.sidecar.pod
                result = "ok" if outcome.ok else "failed"
                if outcome.rollback_serial is not None:
                    result = "rollback"
                self.rt.metrics.pushes.labels(self.ref, result).inc()
                if outcome.ok:
                    self.held[pod] = (outcome.sidecar.incarnation, outcome.digest)
                elif outcome.rollback_serial is not None and self._plausible(
                    outcome.rollback_serial
                ):
                    rollback = max(rollback, outcome.rollback_serial)
                else:
                    self.held.pop(pod, None)
                    failed.append(outcome)
            if not rollback:
                break
            self.serial_floor = max(self.serial_floor, rollback)
            self.signed = self._sign(self.signed.bundle)  # same content, a serial above theirs
        for outcome in failed:
            reason = "BundleRefused" if outcome.refused else "PushFailed"
            self.rt.event(server, "Warning", reason, f"{outcome.sidecar.pod}: {outcome.error}")
        return failed

    def _report(self, sidecars: list[Sidecar], failed: list[PushResult]) -> ServerReport:
        assert self.signed is not None
        digest = self.signed.bundle.digest
        live = [s for s in sidecars if self.held.get(s.pod, ("", None))[0] == s.incarnation]
        return ServerReport(
            digest=digest,
            serial=self.signed.bundle.serial,
            desired=len(sidecars),
            ready=sum(1 for s in live if self.held[s.pod][1] is not None),
            in_sync=sum(1 for s in live if self.held[s.pod][1] == digest),
            pins=dict(sorted(self.pins.items())),
            failed=tuple(f"{o.sidecar.pod}: {o.error}" for o in failed),
            refused=any(o.refused for o in failed),
        )

    async def _write_status(self, server: MCPServer, report: ServerReport) -> None:
        body = {
            "metadata": {"generation": server.metadata.generation or None},
            "status": self._status_written or {},
        }
        wanted = server_status(body, report, self.rt.clock())
        if wanted == self._status_written:
            return
        if await self._patch_status(server, "mcpservers", wanted):
            self._status_written = wanted

    async def _write_grants(self, now: datetime) -> None:
        """Move grants of this server to Expired when their time has come."""
        for grant in self.rt.index.grants_for(self.ref):
            phase = grant.phase(now)
            if self.rt.grant_phases.get(grant.ref) == phase:
                continue
            status = grant_status(
                {"metadata": {"generation": grant.metadata.generation or None}}, grant, now
            )
            if await self._patch_status(grant, "consentgrants", status):
                self.rt.grant_phases[grant.ref] = phase

    async def _patch_status(self, resource: Resource, plural: str, status: Any) -> bool:
        """Patch one object's status subresource; a failure is logged and returned as False."""
        meta = resource.metadata
        path = object_path(resource.api_version, plural, meta.namespace, meta.name, "status")
        try:
            await self.rt.kube.patch(path, {"status": status})
        except KubeError as exc:
            log.warning("%s: cannot write status: %s", resource.ref, exc)
            return False
        return True


async def _wait_any(event: asyncio.Event, stopped: Any, timeout: float) -> None:
    """Wait until ``event`` is set, the loop is stopped, or ``timeout`` seconds pass."""

    async def until_stopped() -> None:
        await stopped.wait()

    waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(event.wait())}
    if hasattr(stopped, "wait"):
        waiters.add(asyncio.ensure_future(until_stopped()))
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
