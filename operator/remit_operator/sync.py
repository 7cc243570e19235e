"""One MCPServer's sync pass: compile, sign, push to every sidecar, write status.

When a pass runs (a wake, an expiry, the periodic check, a retry) is ``syncloop.py``; what it
reads from sidecars is ``sidecarreads.py``; the digest key and consent link it hands them are
``sidecarkeys.py``. A sync whose inputs (the very indexed objects and the pins) are those of
the signed bundle compiles nothing (``bundling.py``).

Serials are wall-clock milliseconds, never lower than the last one used, than the MCPServer's
``status.bundleSerial``, or than a serial a sidecar reports in a 409: a restarted operator
therefore never produces a lower serial than sidecars hold. An unchanged digest keeps its
signed bundle and serial, so re-pushing it is idempotent, until the bundle is
``REMIT_BUNDLE_REFRESH_SECONDS`` old: then it is signed again with a new ``issuedAt`` and serial,
because sidecars refuse bundles older than their ``REMIT_MAX_BUNDLE_AGE_SECONDS``. A push a
sidecar refuses (wrong server, stale) is a ``BundleRefused`` Event and status reason. A bundle
that uses a field some sidecar does not know is still pushed, but status says ``SidecarsTooOld``
first, naming the fields and pods (``remit_operator.bundlefields``).

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
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from remit.api.mcpserver import MCPServer
from remit.errors import CompileError
from remit.policy.bundle import BUNDLE_WIRE, Bundle
from remit.policy.compiler import compile_bundle
from remit.policy.signing import sign
from remit_operator.anchors import AnchorKeeper
from remit_operator.bundlefields import BundleFields
from remit_operator.bundling import Inputs, Signed
from remit_operator.deltas import Deltas
from remit_operator.errors import KubeError
from remit_operator.index import Sidecar
from remit_operator.kube import object_path
from remit_operator.lastuse import LastUse
from remit_operator.netpol import network_policy
from remit_operator.push import PushResult
from remit_operator.runtime import Runtime
from remit_operator.sidecarkeys import SidecarKeys
from remit_operator.sidecarreads import SidecarReads
from remit_operator.status import ServerReport
from remit_operator.syncloop import SyncLoop
from remit_operator.trust import V1Seals, sort_sidecars
from remit_operator.writes import StatusWriter

log = logging.getLogger(__name__)
MAX_ROLLBACK_ROUNDS = 3
RETRY_FIRST_SECONDS = 1.0  # after a failed push; doubles up to REMIT_RESYNC_SECONDS


PROCESS_STARTED = datetime.now(UTC)  # the default v1-seal cutoff (REMIT_V1_SEALS_BEFORE)


class Syncer(SyncLoop, SidecarReads):
    """Keeps every sidecar of one MCPServer on the current bundle."""

    def __init__(self, server_ref: str, runtime: Runtime) -> None:
        self.ref = server_ref
        self.rt = runtime
        self.wake = asyncio.Event()
        self.signed: Signed | None = None
        self.serial_floor = 0
        self.held: dict[str, tuple[str, str | None]] = {}  # pod → (incarnation, digest)
        self.pins: dict[str, str] = {}
        self.last_use = LastUse()  # grants' last use as sidecars report it
        self.keys = SidecarKeys(server_ref, runtime)  # digest key and consent deliveries
        self._netpol: dict[str, Any] | None = None
        self.writes = StatusWriter(server_ref, runtime)
        self._started = False
        self._retry: float | None = None  # seconds until failed sidecars are tried again
        self._untrusted: set[str] = set()  # pods already reported as not injected by us
        self.legacy: frozenset[str] = frozenset()  # pods counted by a v1 seal (seal_v1.py)
        self._inputs: Inputs | None = None  # what ``signed`` was compiled from
        self.anchors = AnchorKeeper(runtime)
        self.deltas = Deltas()  # grant changes go to sidecars that take them as deltas
        self.fields = BundleFields()  # the later bundle fields each sidecar knows

    def touch(self) -> None:
        """Ask for a sync as soon as possible."""
        self.wake.set()

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
        resources = self.rt.index.resources_for(self.ref)
        inputs = Inputs(tuple(resources), tuple(sorted(self.pins.items())))
        if self.signed is not None and self._inputs is not None and self._inputs.same(inputs):
            bundle = self.signed.bundle
            age = (now - bundle.issued_at).total_seconds()
            fresh = age < self.rt.settings.sync.bundle_refresh_seconds
            if fresh and (bundle.next_expiry is None or now < bundle.next_expiry):
                return self.signed  # nothing it is compiled from changed, and nothing expired
        bundle = compile_bundle(
            resources,
            server.metadata.name,
            namespace=server.metadata.namespace,
            serial=0,
            now=now,
            tool_pins=self.pins,
        )
        self._inputs = inputs
        if self.signed is not None and self.signed.bundle.digest == bundle.digest:
            age = (now - self.signed.bundle.issued_at).total_seconds()
            if age < self.rt.settings.sync.bundle_refresh_seconds:
                return self.signed  # else re-signed: sidecars refuse bundles past a maximum age
        return self._sign(bundle)

    def _sign(self, bundle: Bundle) -> Signed:
        bundle = bundle.model_copy(update={"serial": self._serial()})
        keys = list(self.rt.keyring.candidates())
        self.deltas.remember(bundle)
        tokens = {str(k.kid): sign(bundle, k).encode() for k in keys}
        return Signed(bundle, tokens, BUNDLE_WIRE.used(bundle))

    def _tokens(self, sidecar: Sidecar) -> list[bytes]:
        assert self.signed is not None
        kids = [str(k.kid) for k in self.rt.keyring.candidates(sidecar.kid)]
        return [self.signed.tokens[kid] for kid in kids if kid in self.signed.tokens]

    def _delta_tokens(self, sidecar: Sidecar) -> list[bytes]:
        assert self.signed is not None
        keys = self.rt.keyring.candidates(sidecar.kid)
        return self.deltas.tokens(sidecar, self.signed.bundle, keys)

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
            await self.writes.server(server, report)
            return report
        sidecars = self._trusted(server, self.rt.index.sidecars(self.ref))
        live = {s.pod for s in sidecars}
        self.held = {pod: held for pod, held in self.held.items() if pod in live}
        self.rt.pusher.retain(self.ref, sidecars)
        self.deltas.retain(live)
        self.fields.retain(live)
        reachable = [s for s in sidecars if s.reachable]
        observed: dict[str, PushResult] = {}  # this pass's status reads, shared below
        if check_all and await self._observe(reachable, observed):
            self.signed = self._compile(server, now)  # new pins observed: they join the bundle
        compiled = time.perf_counter()
        # the digest key first: a sidecar refuses calls until it has it
        keyless = await self.keys.digest_key(server, reachable, self.legacy, check_all, observed)
        too_old, failed = await asyncio.gather(
            self._too_old(server, reachable), self._push(server, reachable)
        )
        failed_pods = {o.sidecar.pod for o in failed}
        log.debug(
            "%s: bundle %s compiled in %.1f ms, %d sidecar(s) pushed in %.1f ms",
            self.ref,
            self.signed.bundle.digest[:12],
            (compiled - began) * 1000,
            len(reachable),
            (time.perf_counter() - compiled) * 1000,
        )
        self.deltas.prune(self.signed.bundle)  # bases no sidecar holds any more
        pushed = [s for s in reachable if s.pod not in failed_pods]
        await self.keys.consent(server, pushed, check_all, observed)
        self._retry = self._next_retry(failed, keyless=keyless)
        report = replace(self._report(sidecars, failed), too_old=too_old)
        await self.writes.server(server, report)
        await self.writes.grants(now)
        await self.writes.last_use(self.last_use)
        self._measure(report, time.perf_counter() - began)
        return report

    def _trusted(self, server: MCPServer, sidecars: list[Sidecar]) -> list[Sidecar]:
        """The sidecars the webhook sealed for this server whose labels it still selects."""
        signing = self.rt.settings.signing
        v1 = (
            V1Seals(signing.public_key_configmap, signing.v1_cutoff(PROCESS_STARTED))
            if signing.accept_v1_seals
            else None
        )
        keys = list(self.rt.keyring.candidates())
        trusted, refused, self.legacy = sort_sidecars(server, sidecars, keys, v1=v1)
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

    def _next_retry(self, failed: list[PushResult], *, keyless: bool = False) -> float | None:
        """Backoff after failed pushes, or while a sidecar lacks its digest key (it refuses
        every call until it has it)."""
        if not failed and not keyless:
            return None
        resync = self.rt.settings.sync.resync_seconds
        return min(resync, RETRY_FIRST_SECONDS if self._retry is None else self._retry * 2)

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
            outcomes = await self.rt.pusher.push_all(
                targets, port, self._tokens, self._delta_tokens
            )
            failed, rollback = [], 0
            for outcome in outcomes:
                self.deltas.note(outcome)
                pod = outcome.sidecar.pod
                result = "ok" if outcome.ok else "failed"
                if outcome.rollback_serial is not None:
                    result = "rollback"
                self.rt.metrics.pushes.labels(self.ref, result).inc()
                kind = "delta" if outcome.by_delta else "full"
                self.rt.metrics.push_bytes.labels(self.ref, kind).inc(outcome.sent)
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
