"""The gateway assembled: the MCP-facing app, the admin app, and the state they share.

``Gateway`` builds the parts from ``GatewaySettings``. The MCP app's ASGI lifespan opens the
audit chain and the upstream client in the serving event loop (a file sink must be used from
its loop), serves RFC 9728 metadata, and hands everything else to the proxy with
``RemitGuard`` as its hooks. Until a bundle is installed every MCP request is answered 503.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from remit.audit import AuditChain, SinkHealth, open_chain
from remit.errors import SettingsError
from remit.gateway.admin import AdminApp
from remit.gateway.asgi import Receive, Scope, Send, reply_json, serve_lifespan
from remit.gateway.auditkey import AuditKeyInbox
from remit.gateway.authn import auth_settings_for
from remit.gateway.bounds import ResponseLimits, limits_for
from remit.gateway.consent import ConsentLinks
from remit.gateway.consentinbox import ConsentInbox
from remit.gateway.drain import Drain
from remit.gateway.guard import RemitGuard
from remit.gateway.metrics import BundleTimes, Metrics
from remit.gateway.proxy import McpProxy, ProxySettings
from remit.gateway.refusals import RefusalAggregator
from remit.gateway.reload import PolicyReloader
from remit.gateway.replies import no_bundle
from remit.gateway.resource_metadata import WELL_KNOWN, build_metadata, metadata_paths
from remit.gateway.settings import GatewaySettings
from remit.gateway.state import PolicyState
from remit.gateway.tracing import Tracing, start_tracing
from remit.gateway.upstream import Upstream, UpstreamSettings
from remit.policy.signing import load_key


class Gateway:
    """One gateway: state, metrics, and two ASGI apps (``mcp_app`` and ``admin_app``)."""

    def __init__(self, settings: GatewaySettings, state: PolicyState | None = None) -> None:
        """``state`` defaults to one trusting ``settings.bundle.public_key`` (sidecar mode)."""
        self.settings = settings
        if state is None:
            bundle = settings.bundle
            key = load_key(bundle.public_key) if bundle.public_key else None
            state = PolicyState(key, server=settings.instance.server, max_age=bundle.max_age)
        self.state = state
        self.metrics = Metrics()
        self.guard: RemitGuard | None = None
        self.inbox = _inbox(settings, state, self._links_delivered)
        self.key_inbox = _key_inbox(settings, state, self._key_delivered)
        self.chain: AuditChain | None = None
        self.proxy: McpProxy | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()  # connection refusals being recorded
        self.tracing: Tracing | None = None  # None: no span, no OpenTelemetry import
        self.drain = Drain()  # a stop's bounded drain (serve.run, drain.py)
        self.admin_app = AdminApp(
            self.state, self.metrics, self, self.inbox, self.key_inbox, self.drain
        )
        self.reloader: PolicyReloader | None = None  # standalone: the policy directory's

    def _links_delivered(self, links: ConsentLinks) -> None:
        if self.guard is not None:
            self.guard.consent = links

    def _key_delivered(self, key: bytes) -> None:
        if self.chain is not None:
            self.chain.digest_key = key

    def status(self) -> dict[str, Any]:
        """Extra fields for ``GET /v1/status`` (pins, audit head and sink, counters)."""
        consent = {"consent": self.inbox.status()} if self.inbox is not None else {}
        if self.key_inbox is not None:
            consent["auditKey"] = self.key_inbox.status()
        if self.guard is None:
            return {"pins": {}, "audit": None, **consent}
        status = self.guard.status() | consent
        health = self.audit_health()
        if health is not None and isinstance(status.get("audit"), dict):
            sink = {"state": health.state, "reason": health.reason, "queued": health.queued}
            sink |= {"lost": health.lost, "failures": health.failures}
            status["audit"] = {**status["audit"], "sink": sink}
        return status

    def audit_health(self) -> SinkHealth | None:
        """The audit sink's health, for ``/readyz`` (a failing sink also retries, see
        :meth:`AuditChain.health`)."""
        return self.chain.health() if self.chain is not None else None

    def connection_refusal(self, reason: str, message: str, client: Any) -> None:
        """Record a request the HTTP protocol refused before the app saw it (``connections``):
        aggregated per source like every refusal of a caller not yet identified."""
        if self.guard is None:
            return
        refusals, policy = self.guard.refusals, self.state.current
        task = asyncio.get_running_loop().create_task(
            refusals.connection(policy, reason, message, client)
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _bundle_times(self) -> BundleTimes | None:
        policy = self.state.current
        if policy is None:
            return None
        expiry = policy.bundle.next_expiry
        return BundleTimes(
            policy.bundle.issued_at.timestamp(),
            expiry.timestamp() if expiry is not None else None,
            time.time(),
        )

    def limits(self) -> ResponseLimits:
        """The response limits of the bundle in force (``spec.gateway.limits``)."""
        policy = self.state.current
        return limits_for(policy.bundle.server if policy is not None else None)

    async def start(self) -> None:
        """Open the audit chain and upstream client in the running loop."""
        settings = self.settings
        self.chain = await open_chain(
            settings.audit, server=settings.instance.server, pod=settings.instance.pod
        )
        self.metrics.watch_audit(self.chain.sink.health)
        self.metrics.watch_bundle(self._bundle_times)
        proxy_settings = ProxySettings(
            upstream=UpstreamSettings(url=settings.upstream.url),
            path=settings.upstream.mcp_path,
            max_body_bytes=settings.limits.max_body_bytes,
            max_batch=settings.limits.max_batch,
            stream_lifetime=settings.callers.stream_lifetime,
            notice_stream_timeout=settings.callers.notice_stream_timeout,
        )
        instance = settings.instance
        self.tracing = start_tracing(settings.tracing, server=instance.server, pod=instance.pod)
        guard_class: type[RemitGuard] = RemitGuard
        upstream = Upstream(proxy_settings.upstream)
        if self.tracing is not None:
            from remit.gateway.traced import TracedGuard, TracedUpstream  # noqa: PLC0415

            guard_class = TracedGuard
            upstream = TracedUpstream(proxy_settings.upstream, self.tracing)
        refusals = RefusalAggregator(
            settings.refusals.interval, max_windows=settings.refusals.windows
        )
        self.guard = guard_class(
            self.state,
            self.chain,
            self.metrics,
            pod=settings.instance.pod,
            upstream=upstream,
            refusals=refusals,
            consent=ConsentLinks.from_settings(settings)
            or (self.inbox.links if self.inbox is not None else None),
            callers=settings.callers,
        )
        if self.key_inbox is not None:  # records wait for the operator's key (auditkey.py)
            inbox = self.key_inbox
            self.chain.digest_key = inbox.key
            self.guard.audit_gate = lambda: inbox.pending
        if self.tracing is not None and isinstance(self.guard, TracedGuard):
            self.guard.trace_with(self.tracing)
        self.proxy = McpProxy(
            proxy_settings, self.guard, upstream, limits=self.limits, drain=self.drain
        )
        await upstream.start()
        guard = self.guard
        self._flusher = asyncio.create_task(guard.refusals.run(lambda: guard.state.current))

    async def stop(self) -> None:
        """Close the upstream client, the JWKS client and the audit chain."""
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        if self.proxy is not None:
            await self.proxy.upstream.close()
        if self.guard is not None:
            await self.guard.flush_refusals(final=True)  # every aggregated refusal is recorded
            await self.guard.close()
        if self.chain is not None:
            await self.chain.close()
        if self.tracing is not None:
            self.tracing.shutdown()  # flushes the spans still batched

    async def mcp_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI app for MCP clients: metadata, then the proxy."""
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send, self.start, self.stop)
            return
        if scope["type"] != "http":
            return
        if scope["path"].startswith(WELL_KNOWN):
            await self._metadata(scope, send)
            return
        if self.proxy is None:  # served without lifespan: start on first use
            await self.start()
        assert self.proxy is not None
        if self.tracing is None:
            await self.proxy(scope, receive, send)
        else:
            await self.tracing.serve(self.proxy, scope, receive, send)

    async def _metadata(self, scope: Scope, send: Send) -> None:
        policy = self.state.current
        if policy is None:
            refusal = no_bundle()
            await reply_json(send, refusal.status, refusal.body)
            return
        server = policy.bundle.server
        if scope["path"].rstrip("/") not in metadata_paths(server.audience):
            await reply_json(send, 404, {"error": "not found"})
            return
        body = build_metadata(
            auth_settings_for(server), resource_name=f"{server.namespace}/{server.name}"
        )
        await reply_json(send, 200, body)


def _inbox(
    settings: GatewaySettings, state: PolicyState, on_links: Callable[[ConsentLinks], None]
) -> ConsentInbox | None:
    """A sidecar (verifying pushed bundles, no consent URL of its own) takes the consent
    page's URL and key from the operator (``PUT /v1/consent``)."""
    key = state.public_key
    if settings.consent.url or settings.bundle.policy_dirs or key is None or not state.server:
        return None
    return ConsentInbox(key, state.server, settings.consent.request_seconds, on_links)


def _key_inbox(
    settings: GatewaySettings, state: PolicyState, on_key: Callable[[bytes], None]
) -> AuditKeyInbox | None:
    """A sidecar told that the operator delivers its digest key takes it on the admin port
    (``PUT /v1/audit-key``) and refuses calls until it has it."""
    if not settings.audit.key_delivered:
        return None
    if state.public_key is None or not state.server:
        raise SettingsError(
            "REMIT_AUDIT_DIGEST_KEY_DELIVERED needs REMIT_BUNDLE_PUBLIC_KEY and REMIT_SERVER "
            "(the delivery is signed with the bundle key and names the server)"
        )
    return AuditKeyInbox(state.public_key, state.server, on_key)
