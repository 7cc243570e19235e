"""The admin API on its own port: bundle push, status, health, readiness and metrics.

Only the operator (and Prometheus) reach this port; a NetworkPolicy keeps MCP clients out, and
a bundle is accepted only if it verifies with the trusted public key and names this gateway's
server, so even a reachable admin port cannot change policy without the signing key, nor
with another server's bundle. Every refused push is answered with its reason, counted in
``remit_bundle_refusals_total{reason}``, shown in ``/v1/status`` and logged.

    PUT  /v1/consent  the consent page's URL and key, signed and encrypted to this process
                      (consentinbox.py) → 200 {"holds"} | 400 {"reason": "consent_delivery"}
    PUT  /v1/audit-key the argument digest key, signed and encrypted to this process
                      (auditkey.py) → 200 {"holds"} | 400 {"reason": "audit_key_delivery"}
    PUT  /v1/bundle   signed bundle (compact JWS) → 200 {"digest", "serial", "changed", "delta"}
                      refused → {"error", "reason"}: 400 signature | malformed,
                      409 rollback, 413 too_large, 422 wrong_server | stale | unsupported
                      (a field or value this sidecar does not know: ``remit.policy.wire``)
    PATCH /v1/bundle  signed bundle delta (``remit.policy.delta``) against the bundle in force
                      → the same answers, and 409 delta_base (not the base it names),
                      422 delta_digest (the result is not the bundle that was signed)
    GET  /v1/status   digest, serial, pins, audit chain head, counters, bundle refusals,
                      ``"bundleDelta": true`` (this sidecar accepts PATCH deltas) and
                      ``"bundleFields"``: the bundle fields added after format 1 it knows
    GET  /healthz     the process is alive
    GET  /readyz      200 only with a valid bundle in force, an audit sink that can write and,
                      in a sidecar, its digest key, and not shutting down (503 otherwise,
                      with the reasons)
    GET  /metrics     Prometheus text format
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any, Protocol

from remit.audit.health import SinkHealth
from remit.errors import (
    BundleError,
    DeltaBaseError,
    DeltaDigestError,
    RollbackError,
    SignatureError,
    StaleBundleError,
    UnsupportedBundleError,
    WrongServerError,
)
from remit.gateway.asgi import (
    Receive,
    Scope,
    Send,
    read_body,
    reply,
    reply_json,
    serve_lifespan,
)
from remit.gateway.auditkey import AuditKeyInbox
from remit.gateway.consentinbox import ConsentInbox
from remit.gateway.drain import Drain
from remit.gateway.metrics import Metrics
from remit.gateway.state import PolicyState
from remit.policy.bundle import BUNDLE_WIRE
from remit.policy.delta import DELTA_WIRE
from remit.policy.ended import is_active
from remit.policy.wire import later_fields
from remit.times import utc_text

log = logging.getLogger(__name__)

MAX_BUNDLE_BYTES = 64 * 1024 * 1024

# How each refusal is answered: the first matching class wins (subclasses first).
_REFUSALS: tuple[tuple[type[BundleError], int, str], ...] = (
    (RollbackError, 409, "rollback"),
    (DeltaBaseError, 409, "delta_base"),
    (DeltaDigestError, 422, "delta_digest"),
    (WrongServerError, 422, "wrong_server"),
    (StaleBundleError, 422, "stale"),
    (UnsupportedBundleError, 422, "unsupported"),
    (SignatureError, 400, "signature"),
    (BundleError, 400, "malformed"),
)


class StatusSource(Protocol):
    """What ``/v1/status`` reports beyond the bundle (pins, audit head, counters)."""

    def status(self) -> dict[str, Any]:
        """A JSON-ready mapping."""
        ...

    def audit_health(self) -> SinkHealth | None:
        """The audit sink's health (``None`` before the sink is open)."""
        ...


class AdminApp:
    """Pure ASGI admin application."""

    def __init__(
        self,
        state: PolicyState,
        metrics: Metrics,
        source: StatusSource,
        inbox: ConsentInbox | None = None,
        key_inbox: AuditKeyInbox | None = None,
        drain: Drain | None = None,
    ) -> None:
        self.state = state
        self.drain = drain  # a stopping gateway is not ready (drain.py)
        self.key_inbox = key_inbox  # PUT /v1/audit-key (auditkey.py), in sidecar mode
        self.inbox = inbox  # PUT /v1/consent (consentinbox.py), in sidecar mode
        self.metrics = metrics
        self.source = source
        self.refusals: dict[str, int] = {}
        self.last_refusal: dict[str, Any] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if path == "/v1/bundle":
            if method not in ("PUT", "PATCH"):
                allow = [(b"allow", b"PUT, PATCH")]
                await reply_json(send, 405, {"error": "use PUT or PATCH"}, allow)
                return
            await self._put_bundle(receive, send, delta=method == "PATCH")
        elif path == "/v1/consent" and self.inbox is not None:
            if method != "PUT":
                await reply_json(send, 405, {"error": "use PUT"}, [(b"allow", b"PUT")])
                return
            await self.inbox.put(receive, send)
        elif path == "/v1/audit-key" and self.key_inbox is not None:
            if method != "PUT":
                await reply_json(send, 405, {"error": "use PUT"}, [(b"allow", b"PUT")])
                return
            await self.key_inbox.put(receive, send)
        elif method not in ("GET", "HEAD"):
            await reply_json(send, 405, {"error": "use GET"}, [(b"allow", b"GET")])
        elif path == "/v1/status":
            await reply_json(send, 200, self._status())
        elif path == "/healthz":
            await reply_json(send, 200, {"status": "ok"})
        elif path == "/readyz":
            reasons = [] if self.state.ready else ["no policy bundle in force"]
            if self.drain is not None and self.drain.draining:
                reasons.append("shutting down")
            audit = self.source.audit_health()
            if audit is not None and not audit.ok:
                reasons.append(f"audit: {audit.reason}")
            if self.key_inbox is not None and self.key_inbox.pending:
                reasons.append(f"audit: {self.key_inbox.pending}")
            ready = not reasons
            await reply_json(send, 200 if ready else 503, {"ready": ready, "reasons": reasons})
        elif path == "/metrics":
            await reply(send, 200, self.metrics.render(), content_type=b"text/plain; version=0.0.4")
        else:
            await reply_json(send, 404, {"error": f"no such endpoint {path}"})

    async def _put_bundle(self, receive: Receive, send: Send, *, delta: bool) -> None:
        body = await read_body(receive, MAX_BUNDLE_BYTES)
        if body is None:
            error = f"bundle larger than {MAX_BUNDLE_BYTES} bytes"
            await self._refuse(send, 413, "too_large", error)
            return
        try:
            install = self.state.install_delta if delta else self.state.install_signed
            bundle, changed = install(body)
        except BundleError as exc:
            status, reason = next((s, r) for kind, s, r in _REFUSALS if isinstance(exc, kind))
            await self._refuse(send, status, reason, str(exc))
            return
        self.metrics.bundle_installs.labels("installed" if changed else "unchanged").inc()
        self.metrics.bundle_serial.set(bundle.serial)
        answer = {"digest": bundle.digest, "serial": bundle.serial, "changed": changed}
        await reply_json(send, 200, {**answer, "delta": True})

    async def _refuse(self, send: Send, status: int, reason: str, error: str) -> None:
        """Answer, count, remember and log a refused push; the bundle in force stays."""
        self.metrics.bundle_installs.labels("rejected").inc()
        self.metrics.bundle_refusals.labels(reason).inc()
        now = time.time()
        self.metrics.bundle_last_refusal.set(now)
        self.refusals[reason] = self.refusals.get(reason, 0) + 1
        stamp = utc_text(datetime.fromtimestamp(now, UTC), "seconds")
        self.last_refusal = {"reason": reason, "error": error, "at": stamp}
        in_force = self.state.current
        held = in_force.bundle.serial if in_force is not None else None
        log.warning("bundle refused (%s): %s; bundle in force: serial %s", reason, error, held)
        await reply_json(send, status, {"error": error, "reason": reason})

    def _status(self) -> dict[str, Any]:
        policy = self.state.current
        bundle = None
        if policy is not None:
            b = policy.bundle
            active = sum(is_active(g, datetime.now(UTC)) for g in b.grants)
            bundle = {
                "digest": b.digest,
                "serial": b.serial,
                "issuedAt": utc_text(b.issued_at),
                "nextExpiry": utc_text(b.next_expiry) if b.next_expiry else None,
                "server": f"{b.server.namespace}/{b.server.name}",
                "policies": len(b.policies),
                "grants": active,  # active grants only; ended ones grant nothing
                "endedGrants": len(b.grants) - active,
            }
        refusals = {"counts": dict(sorted(self.refusals.items())), "last": self.last_refusal}
        return {
            "ready": policy is not None,
            "bundle": bundle,
            "server": self.state.server,
            "bundleRefusals": refusals,
            "bundleDelta": True,
            "bundleFields": later_fields((BUNDLE_WIRE, DELTA_WIRE)),
            **self.source.status(),
        }
