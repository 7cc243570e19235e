"""Remit's answers to the proxy's questions, as one readable sequence per request.

``RemitGuard`` implements the proxy's ``GatewayHooks`` with the policy in force. Per request:
authenticate (``authn``) → bind the session to the caller (``sessions``) → decide (tool
``pins``, the policy engine, ``ratelimit``) → record the decision (``recorder``) → forward (the
proxy) → filter list results (``lists``) → record the outcome. Each step lives in its own
module; this one only puts them in order. Every failure denies and is recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from remit.audit import AuditChain
from remit.errors import AuthenticationError
from remit.gateway.authn import AuthenticatorCache
from remit.gateway.discovery import Discovery
from remit.gateway.hooks import ADMIT, ANONYMOUS, Admit, Deny, HttpRequest, Outcome, Rejection
from remit.gateway.lists import filter_list
from remit.gateway.metrics import Metrics
from remit.gateway.pins import PinEnforcer, ToolCatalog
from remit.gateway.protocol import Message
from remit.gateway.ratelimit import RateLimiter
from remit.gateway.recorder import Recorder, Ticket
from remit.gateway.replies import (
    NO_BUNDLE_MESSAGE,
    authentication_refusal,
    denial,
    internal_error,
    no_bundle,
)
from remit.gateway.sessions import SessionBindings
from remit.gateway.state import Policy, PolicyState
from remit.gateway.upstream import Upstream
from remit.policy.decision import Decision, Reason, deny
from remit.policy.request import Identity, Request

_HEADER_SAFE = "@:._-+/=~!$&'()*,;"
_ARGUMENT_METHODS = ("tools/call", "prompts/get")


class RemitGuard:
    """The policy side of the gateway. One per gateway process, used from one event loop."""

    def __init__(
        self,
        state: PolicyState,
        chain: AuditChain,
        metrics: Metrics,
        *,
        pod: str = "",
        upstream: Upstream | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.state = state
        self.metrics = metrics
        self.recorder = Recorder(chain, metrics, pod)
        self.authenticators = AuthenticatorCache()
        self.sessions = SessionBindings()
        self.pins = PinEnforcer(ToolCatalog(), metrics.tool_pin_mismatches.inc)
        self.discovery = Discovery(upstream, clock=clock)
        self.limiter = RateLimiter()
        self._clock = clock

    async def close(self) -> None:
        """Release the JWKS client (called from the app's lifespan shutdown)."""
        await self.authenticators.close()

    # -- 1. authenticate ------------------------------------------------------------------

    async def authenticate(self, request: HttpRequest) -> Identity | Rejection:
        """Verify the bearer token against the issuer in the bundle; 401/403 otherwise."""
        policy = self.state.current
        if policy is None:
            await self.recorder.refusal(
                None, Request(ANONYMOUS, ""), Reason.NO_BUNDLE, NO_BUNDLE_MESSAGE
            )
            return no_bundle()
        server = policy.bundle.server
        try:
            return await self.authenticators.for_server(server).authenticate(
                request.header("authorization"), request.query_string
            )
        except AuthenticationError as exc:
            self.metrics.authentication_failures.labels(exc.reason).inc()
            await self.recorder.refusal(
                policy, Request(ANONYMOUS, ""), Reason.UNAUTHENTICATED, str(exc)
            )
            return authentication_refusal(exc, server)

    async def admit_stream(self, identity: Identity, request: HttpRequest) -> Admit | Rejection:
        """GET (server stream) and DELETE (end session) need only an authenticated caller."""
        return Admit(upstream_headers=_identity_headers(identity, "stream"))

    # -- 2. bind the session --------------------------------------------------------------

    async def check_session(self, identity: Identity, session_id: str) -> bool:
        """A session id is usable only by the identity that created it."""
        if self.sessions.allows(session_id, identity):
            return True
        message = "session id unknown or bound to another identity"
        await self.recorder.refusal(
            self.state.current, Request(identity, ""), Reason.SESSION_MISMATCH, message
        )
        return False

    async def bind_session(self, identity: Identity, session_id: str) -> None:
        """Remember who created the session the upstream just issued."""
        self.sessions.bind(session_id, identity)

    async def end_session(self, identity: Identity, session_id: str) -> None:
        """Forget an ended session."""
        self.sessions.end(session_id)

    # -- 3. decide, 4. record, 5. forward -------------------------------------------------

    async def decide(self, identity: Identity, call: Message, request: HttpRequest) -> Admit | Deny:
        """Decide, record, then admit or answer with a denial naming the reason and record."""
        started = self._clock()
        policy = self.state.current
        if policy is None:
            req = Request(identity, call.method, call.target)
            await self.recorder.refusal(None, req, Reason.NO_BUNDLE, NO_BUNDLE_MESSAGE)
            rejection = no_bundle()
            return Deny(error=rejection.body.get("error"), status=rejection.status)
        req = await self._request(policy, identity, call)
        decision, tool_hash = self._decide(policy, req)
        session = request.header("mcp-session-id")
        record, recorded = await self.recorder.decision(policy, req, decision, tool_hash, session)
        if not recorded and policy.bundle.server.audit_failure_policy == "Fail":
            self.metrics.decisions.labels("deny", Reason.AUDIT_UNAVAILABLE).inc()
            message = f"decision could not be recorded ({Reason.AUDIT_UNAVAILABLE})"
            return Deny(error=internal_error(message, record.id, Reason.AUDIT_UNAVAILABLE))
        self.metrics.decision_seconds.observe(self._clock() - started)
        if not decision.allowed:
            visible = self._visible(policy, req, decision)
            return denial(call.method, req.name, decision, record.id, visible)
        headers = _identity_headers(identity, record.id)
        return Admit(upstream_headers=headers, token=Ticket(record, self._clock()))

    async def _request(self, policy: Policy, identity: Identity, call: Message) -> Request:
        """The engine's view of ``call``: a tool call carries its tool's declared annotations,
        learnt from the upstream first if the tool was never listed."""
        self.pins.adopt(policy.bundle)
        arguments = call.params.get("arguments") if call.method in _ARGUMENT_METHODS else {}
        annotations: Mapping[str, Any] = {}
        if call.method == "tools/call":
            if not self.pins.knows(call.target):
                tools = await self.discovery.tools()
                if tools is not None:
                    self.pins.filter_listed(tools, policy.bundle.server.tool_pinning)
            annotations = self.pins.catalog.annotations(call.target)
        arguments = arguments if isinstance(arguments, Mapping) else {}
        return Request(identity, call.method, call.target, arguments, annotations)

    def _decide(self, policy: Policy, request: Request) -> tuple[Decision, str | None]:
        """Tool pins, then the policy engine, then rate limits; and the tool's definition hash."""
        tool_hash = None
        if request.method == "tools/call":
            mode = policy.bundle.server.tool_pinning
            usable, tool_hash = self.pins.check_call(request.name, mode)
            if not usable:
                message = f"tool {request.name!r} changed since it was pinned"
                return deny(Reason.TOOL_PIN_MISMATCH, message, policy.bundle.digest), tool_hash
        return self.limiter.limit(policy.engine.decide(request), request.identity), tool_hash

    @staticmethod
    def _visible(policy: Policy, request: Request, decision: Decision) -> bool:
        """Whether the denial may say why (else a hidden tool answers like an unknown one)."""
        return decision.reason == Reason.CONSENT_REQUIRED or (
            request.method == "tools/call"
            and policy.engine.visible(request.identity, "tool", request.name, request.annotations)
        )

    async def admit_message(self, identity: Identity, message: Message) -> Admit | Deny:
        """Notifications and the client's answers to server requests carry no tool action."""
        return ADMIT

    # -- 6. filter, 7. record the outcome -------------------------------------------------

    async def transform(
        self, identity: Identity, call: Message, token: Any, response: dict[str, Any]
    ) -> dict[str, Any]:
        """Filter list results to what the caller could use; pin tool definitions."""
        policy = self.state.current
        if policy is None:
            return response
        return filter_list(policy, self.pins, identity, call.method, response)

    async def outcome(
        self, identity: Identity, call: Message, token: Any, outcome: Outcome
    ) -> None:
        """Write the outcome line that completes the call's decision record."""
        if isinstance(token, Ticket):
            await self.recorder.outcome(token, outcome)

    def status(self) -> dict[str, Any]:
        """For the admin API: pins, audit head, sessions, buckets."""
        return {
            "pins": self.pins.catalog.pins,
            "audit": {"head": self.recorder.chain.head},
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


__all__ = ["RemitGuard", "Ticket"]
