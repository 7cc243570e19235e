"""Remit's answers to the proxy's questions: authenticate, decide, record, filter.

``RemitGuard`` implements the proxy's ``GatewayHooks`` with the policy in force: it verifies the
caller's token, binds sessions to identities, decides each request with the engine (plus tool
pins and rate limits), writes a decision record before anything is forwarded, filters list
results, and writes an outcome record when the call ends. Every failure denies and is recorded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from remit.audit import AuditChain, build_decision, build_outcome
from remit.audit.records import DecisionRecord, OutcomeRecord
from remit.audit.records import GrantRef as RecordedGrant
from remit.errors import AuditError, AuthenticationError
from remit.gateway.authn import Authenticator, AuthSettings, auth_settings_for
from remit.gateway.discovery import fetch_tools
from remit.gateway.hooks import ADMIT, Admit, Deny, HttpRequest, Outcome, Rejection
from remit.gateway.metrics import Metrics
from remit.gateway.pins import ToolCatalog
from remit.gateway.protocol import Message
from remit.gateway.ratelimit import RateLimiter
from remit.gateway.replies import denial, internal_error, unavailable
from remit.gateway.resource_metadata import metadata_url, status_for, www_authenticate
from remit.gateway.sessions import SessionBindings
from remit.gateway.state import Policy, PolicyState
from remit.gateway.upstream import Upstream
from remit.policy.bundle import ServerSettings
from remit.policy.decision import ALLOWED, CONSENT_REQUIRED, NO_BUNDLE, Decision
from remit.policy.methods import LISTS
from remit.policy.request import Identity, Request

log = logging.getLogger(__name__)

UNAUTHENTICATED = "unauthenticated"
SESSION_MISMATCH = "session_mismatch"
RATE_LIMITED = "rate_limited"
TOOL_PIN_MISMATCH = "tool_pin_mismatch"
AUDIT_UNAVAILABLE = "audit_unavailable"
_LIST_KEYS = {
    "tools/list": "tools",
    "resources/list": "resources",
    "resources/templates/list": "resourceTemplates",
    "prompts/list": "prompts",
}
DISCOVERY_INTERVAL = 5.0  # seconds between asking the upstream for unknown tools
_ANONYMOUS = Identity(subject="", agent="")
_HEADER_SAFE = "@:._-+/=~!$&'()*,;"


@dataclass(frozen=True, slots=True)
class Ticket:
    """What the guard remembers between admitting a call and its outcome."""

    record: DecisionRecord
    started: float


class RemitGuard:
    """The policy side of the gateway. One per gateway process, used from one event loop."""

    def __init__(
        self,
        state: PolicyState,
        chain: AuditChain,
        metrics: Metrics,
        *,
        pod: str = "",
        clock: Any = time.perf_counter,
    ) -> None:
        self.state = state
        self.chain = chain
        self.metrics = metrics
        self.pod = pod
        self.sessions = SessionBindings()
        self.limiter = RateLimiter()
        self.catalog = ToolCatalog()
        self._clock = clock
        self._http: aiohttp.ClientSession | None = None
        self._authenticators: dict[AuthSettings, Authenticator] = {}
        self._auth_server: ServerSettings | None = None
        self._auth: Authenticator | None = None
        self._pinned_digest = ""
        self.upstream: Upstream | None = None
        self._discovering = asyncio.Lock()
        self._discovered_at = -DISCOVERY_INTERVAL

    async def close(self) -> None:
        """Release the JWKS client (called from the app's lifespan shutdown)."""
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- authentication -------------------------------------------------------------------

    def _authenticator(self, server: ServerSettings) -> Authenticator:
        """The authenticator for the bundle's issuer; kept while the bundle's settings stay."""
        if server is self._auth_server and self._auth is not None:
            return self._auth
        settings = auth_settings_for(server)
        authenticator = self._authenticators.get(settings)
        if authenticator is None:
            if self._http is None:
                self._http = aiohttp.ClientSession()
            authenticator = Authenticator.create(settings, self._http)
            self._authenticators = {settings: authenticator}  # one issuer at a time
        self._auth_server, self._auth = server, authenticator
        return authenticator

    async def authenticate(self, request: HttpRequest) -> Identity | Rejection:
        """Verify the bearer token against the issuer in the bundle; 401/403 otherwise."""
        policy = self.state.current
        if policy is None:
            await self._record_refusal(None, NO_BUNDLE, "no policy bundle in force", request)
            return Rejection(503, unavailable("no policy bundle in force: denying everything"))
        server = policy.bundle.server
        try:
            return await self._authenticator(server).authenticate(
                request.header("authorization"), request.query_string
            )
        except AuthenticationError as exc:
            self.metrics.authentication_failures.labels(exc.reason).inc()
            await self._record_refusal(policy, UNAUTHENTICATED, str(exc), request)
            challenge = www_authenticate(exc, metadata_url(server.audience), server.required_scopes)
            body = {"error": exc.reason, "error_description": exc.description}
            return Rejection(status_for(exc), body, {"WWW-Authenticate": challenge})

    async def admit_stream(self, identity: Any, request: HttpRequest) -> Admit | Rejection:
        """GET (server stream) and DELETE (end session) need only an authenticated caller."""
        return Admit(upstream_headers=_identity_headers(identity, "stream"))

    # -- sessions -------------------------------------------------------------------------

    async def check_session(self, identity: Any, session_id: str) -> bool:
        """A session id is usable only by the identity that created it."""
        if self.sessions.allows(session_id, identity):
            return True
        policy = self.state.current
        message = "session id unknown or bound to another identity"
        record = self._record(policy, Request(identity, ""), "deny", SESSION_MISMATCH, message)
        await self._write_quietly(record)
        self.metrics.decisions.labels("deny", SESSION_MISMATCH).inc()
        return False

    async def bind_session(self, identity: Any, session_id: str) -> None:
        """Remember who created the session the upstream just issued."""
        self.sessions.bind(session_id, identity)

    async def end_session(self, identity: Any, session_id: str) -> None:
        """Forget an ended session."""
        self.sessions.end(session_id)

    # -- decisions ------------------------------------------------------------------------

    async def decide(self, identity: Any, call: Message, request: HttpRequest) -> Admit | Deny:
        """Decide, record, then admit or answer with a denial naming the reason and record."""
        started = self._clock()
        policy = self.state.current
        session = request.header("mcp-session-id")
        if policy is None:
            req = Request(identity, call.method, call.target)
            record = self._record(None, req, "deny", NO_BUNDLE, "no policy bundle in force")
            await self._write_quietly(record)
            return Deny(error=unavailable("no policy bundle in force").get("error"), status=503)
        self._sync_pins(policy)
        if call.method == "tools/call" and self.catalog.verdict(call.target)[0] == "unknown":
            await self._discover(policy)
        params = call.params
        arguments = params.get("arguments") if call.method in ("tools/call", "prompts/get") else {}
        name = call.target
        annotations = self.catalog.annotations(name) if call.method == "tools/call" else {}
        req = Request(
            identity,
            call.method,
            name,
            arguments if isinstance(arguments, Mapping) else {},
            annotations,
        )
        decision, tool_hash = self._decide(policy, req)
        record = self._record(
            policy, req, decision.effect, decision.reason, decision.message, decision, tool_hash,
            session,
        )  # fmt: skip
        self.metrics.decisions.labels(decision.effect, decision.reason).inc()
        recorded = await self._append(record, "decision")
        if not recorded and policy.bundle.server.audit_failure_policy == "Fail":
            self.metrics.decisions.labels("deny", AUDIT_UNAVAILABLE).inc()
            message = f"decision could not be recorded ({AUDIT_UNAVAILABLE})"
            return Deny(error=internal_error(message, record.id, AUDIT_UNAVAILABLE))
        self.metrics.decision_seconds.observe(self._clock() - started)
        if not decision.allowed:
            visible = decision.reason == CONSENT_REQUIRED or (
                call.method == "tools/call"
                and policy.engine.visible(identity, "tool", name, annotations)
            )
            return denial(call.method, name, decision, record.id, visible)
        headers = _identity_headers(identity, record.id)
        return Admit(upstream_headers=headers, token=Ticket(record, self._clock()))

    def _decide(self, policy: Policy, request: Request) -> tuple[Decision, str | None]:
        tool_hash = None
        if request.method == "tools/call":
            verdict, tool_hash = self.catalog.verdict(request.name)
            mode = policy.bundle.server.tool_pinning
            if verdict == "changed" and mode != "Disabled":
                self.metrics.tool_pin_mismatches.inc()
                if mode == "Enforce":
                    message = f"tool {request.name!r} changed since it was pinned"
                    return Decision("deny", TOOL_PIN_MISMATCH, message, policy.bundle.digest), (
                        tool_hash
                    )
        decision = policy.engine.decide(request)
        if decision.allowed and decision.rate_limits:
            identity = request.identity
            exceeded = self.limiter.take(identity.subject, identity.agent, decision.rate_limits)
            if exceeded is not None:
                message = (
                    f"rate limit of rule {exceeded.rule} exceeded; "
                    f"retry in {exceeded.retry_after:.1f}s"
                )
                return Decision(
                    "deny", RATE_LIMITED, message, decision.bundle, (exceeded.rule,)
                ), tool_hash
        return decision, tool_hash

    async def admit_message(self, identity: Any, message: Message) -> Admit | Deny:
        """Notifications and the client's answers to server requests carry no tool action."""
        return ADMIT

    # -- results --------------------------------------------------------------------------

    async def transform(
        self, identity: Any, call: Message, token: Any, response: dict[str, Any]
    ) -> dict[str, Any]:
        """Filter list results to what the caller could use; pin tool definitions."""
        key = _LIST_KEYS.get(call.method)
        result = response.get("result")
        policy = self.state.current
        if key is None or not isinstance(result, dict) or policy is None:
            return response
        items = result.get(key)
        if not isinstance(items, list):
            return response
        items = [i for i in items if isinstance(i, dict)]
        if call.method == "tools/list":
            items = self._pin_tools(policy, items)
            visible = policy.engine.visible_tools(identity, items)
        elif LISTS[call.method] == "resource":
            visible = policy.engine.visible_resources(identity, items)
        else:
            visible = policy.engine.visible_prompts(identity, items)
        return {**response, "result": {**result, key: list(visible)}}

    def _pin_tools(self, policy: Policy, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        mode = policy.bundle.server.tool_pinning
        kept = []
        for tool in tools:
            verdict, _ = self.catalog.observe(tool)
            if verdict == "changed" and mode != "Disabled":
                self.metrics.tool_pin_mismatches.inc()
                log.warning("tool %r differs from its pin (%s)", tool.get("name"), mode)
                if mode == "Enforce":
                    continue
            kept.append(tool)
        return kept

    async def _discover(self, policy: Policy) -> None:
        """Learn tool definitions from the upstream (at most once per interval)."""
        if self.upstream is None:
            return
        async with self._discovering:
            if self._clock() - self._discovered_at < DISCOVERY_INTERVAL:
                return
            self._discovered_at = self._clock()
            self._pin_tools(policy, await fetch_tools(self.upstream))

    def _sync_pins(self, policy: Policy) -> None:
        if policy.bundle.digest != self._pinned_digest:
            self.catalog.merge_pins(policy.bundle.tool_pins)
            self._pinned_digest = policy.bundle.digest

    async def outcome(self, identity: Any, call: Message, token: Any, outcome: Outcome) -> None:
        """Write the outcome line that completes the call's decision record."""
        if not isinstance(token, Ticket):
            return
        self.metrics.upstream_seconds.observe(outcome.latency)
        kind = "ok"
        if outcome.error is not None:
            kind = "upstream_error"
            self.metrics.upstream_errors.labels("transport").inc()
        elif outcome.response is not None and "error" in outcome.response:
            kind = "error"
            self.metrics.upstream_errors.labels("jsonrpc").inc()
        record = build_outcome(
            token.record,
            outcome=kind,
            latency_ms=outcome.latency * 1000.0,
            status=outcome.status or None,
            error=outcome.error,
        )
        await self._append(record, "outcome")

    # -- records --------------------------------------------------------------------------

    def _record(
        self,
        policy: Policy | None,
        request: Request,
        effect: str,
        reason: str,
        message: str,
        decision: Decision | None = None,
        tool_hash: str | None = None,
        session: str | None = None,
    ) -> DecisionRecord:
        bundle = policy.bundle if policy is not None else None
        server = f"{bundle.server.namespace}/{bundle.server.name}" if bundle else self.chain.server
        grant = decision.grant if decision is not None else None
        return build_decision(
            request,
            server=server,
            pod=self.pod,
            decision="allow" if effect == "allow" else "deny",
            reason=reason,
            message=message,
            rules=decision.rules if decision is not None else (),
            grant=RecordedGrant(
                name=grant.name,
                uid=grant.uid,
                resource_version=grant.resource_version,
                expires_at=grant.expires_at.isoformat().replace("+00:00", "Z"),
            )
            if grant is not None
            else None,
            bundle=bundle.digest if bundle else "",
            serial=bundle.serial if bundle else None,
            tool_hash=tool_hash,
            session_id=session,
            argument_mode="redacted"
            if bundle is not None and bundle.server.audit_arguments == "Redacted"
            else "digest",
        )

    async def _record_refusal(
        self, policy: Policy | None, reason: str, message: str, request: HttpRequest
    ) -> None:
        self.metrics.decisions.labels("deny", reason).inc()
        record = self._record(policy, Request(_ANONYMOUS, ""), "deny", reason, message)
        await self._write_quietly(record)

    async def _append(self, record: DecisionRecord | OutcomeRecord, what: str) -> bool:
        """Append ``record`` to the chain; a failure is counted, logged and returned as False."""
        try:
            await self.chain.append(record)
        except AuditError as exc:
            self.metrics.audit_failures.inc()
            log.error("%s record not written: %s", what, exc)
            return False
        return True

    async def _write_quietly(self, record: DecisionRecord) -> None:
        """Write a deny record; failing to is logged (the request is refused either way)."""
        await self._append(record, "deny")

    def status(self) -> dict[str, Any]:
        """For the admin API: pins, audit head, sessions, buckets."""
        return {
            "pins": self.catalog.pins,
            "audit": {"head": self.chain.head},
            "sessions": len(self.sessions),
            "rateLimitBuckets": len(self.limiter),
        }


def _identity_headers(identity: Identity, decision_id: str) -> dict[str, str]:
    """Tell the MCP server who is calling (percent-encoded: header values must be ASCII)."""
    return {
        "x-remit-subject": quote(identity.subject, safe=_HEADER_SAFE),
        "x-remit-agent": quote(identity.agent, safe=_HEADER_SAFE),
        "x-remit-decision": decision_id,
    }


__all__ = ["ALLOWED", "RemitGuard", "Ticket"]
