"""Remit's answers to the proxy's questions, as one readable sequence per request.

``RemitGuard`` implements the proxy's ``GatewayHooks`` with the policy in force. Per request:
authenticate (``authn``) → bind the session to the caller (``sessions``) → decide (tool
``pins``, the policy engine, ``ratelimit``) → record the decision (``recorder``) → forward (the
proxy) → filter list results (``lists``) → record the outcome. Each step lives in its own
module; this one only puts them in order. Every failure denies and is recorded.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from remit.audit import AuditChain, DecisionRecord
from remit.errors import AuthenticationError, ProtocolError
from remit.gateway.attribution import POST_ORIGIN, Origin, ServerRequests, key_of
from remit.gateway.auditkey import key_pending
from remit.gateway.authn import AuthenticatorCache
from remit.gateway.batches import Judged, abandon_batch, refuse_batch
from remit.gateway.caching import mark_private
from remit.gateway.callers import judge_response, session_quota, stream_quota, unattributed
from remit.gateway.consent import ConsentLinks
from remit.gateway.discovery import Discovery
from remit.gateway.events import EventIds
from remit.gateway.hooks import ADMIT, Admit, Deny, HttpRequest, Outcome, Rejection
from remit.gateway.lists import filter_list
from remit.gateway.metrics import Metrics
from remit.gateway.notices import UNATTRIBUTED, ProgressTokens, judge, progress_token
from remit.gateway.pins import PinEnforcer, ToolCatalog
from remit.gateway.protocol import SESSION_HEADER, Message, error_object, error_response
from remit.gateway.quotas import CallerLimits, OpenStreams
from remit.gateway.ratelimit import RateLimiter
from remit.gateway.rebinding import check_host_and_origin
from remit.gateway.recorder import Recorder, Ticket
from remit.gateway.references import reference
from remit.gateway.refusals import AnonymousRefusals, RefusalAggregator
from remit.gateway.replies import (
    NO_BUNDLE_MESSAGE,
    authentication_refusal,
    no_bundle,
    stream_refusal,
)
from remit.gateway.sessions import SessionBindings
from remit.gateway.state import Policy, PolicyState
from remit.gateway.upstream import Upstream
from remit.policy.decision import Decision, Reason, deny
from remit.policy.request import Identity, Request

log = logging.getLogger(__name__)
_HEADER_SAFE = "@:._-+/=~!$&'()*,;"
_ARGUMENT_METHODS = ("tools/call", "prompts/get")
#: The method a client response's decision record names (its ``tool`` is the response id).
RESPONSE_METHOD = "response"


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
        refusals: RefusalAggregator | None = None,
        clock: Callable[[], float] = time.perf_counter,
        consent: ConsentLinks | None = None,
        callers: CallerLimits | None = None,
    ) -> None:
        self.state = state
        self.metrics = metrics
        self.recorder = Recorder(chain, metrics, pod)
        self.authenticators = AuthenticatorCache()
        self.callers = callers = callers if callers is not None else CallerLimits()
        self.sessions = SessionBindings(callers.max_sessions, callers.sessions_per_identity)
        self.streams = OpenStreams(callers)
        self.server_requests = ServerRequests()
        self.pins = PinEnforcer(ToolCatalog(), metrics.tool_pin_mismatches.inc)
        self.discovery = Discovery(upstream, clock=clock)
        self.limiter = RateLimiter()
        self.refusals = AnonymousRefusals(self.recorder, metrics, refusals)
        self.event_ids = EventIds()
        self.progress = ProgressTokens()
        self._clock = clock
        self.consent = consent  # answers consent_required with a consent request (consent.py)
        #: Why records cannot be written as configured yet (auditkey.py), else None.
        self.audit_gate: Callable[[], str | None] = lambda: None

    async def close(self) -> None:
        """Release the JWKS client (called from the app's lifespan shutdown)."""
        await self.authenticators.close()

    # -- 1. authenticate ------------------------------------------------------------------

    async def authenticate(self, request: HttpRequest) -> Identity | Rejection:
        """Verify the bearer token against the issuer in the bundle; 401/403 otherwise."""
        policy = self.state.current
        if policy is None:
            await self.refusals.refuse(
                None, request, Reason.NO_BUNDLE, Reason.NO_BUNDLE, NO_BUNDLE_MESSAGE
            )
            return no_bundle()
        waiting = self.audit_gate()
        if waiting is not None:  # no digest key yet: nothing is decided (auditkey.py)
            kind = f"{Reason.AUDIT_UNAVAILABLE.value}/503"
            await self.refusals.refuse(policy, request, Reason.AUDIT_UNAVAILABLE, kind, waiting)
            return key_pending(waiting)
        server = policy.bundle.server
        refused = check_host_and_origin(request.header("host"), request.header("origin"), server)
        if refused is not None:  # DNS rebinding (rebinding.py): before anything else
            kind = f"{refused.reason}/{refused.status}"
            await self.refusals.refuse(policy, request, Reason.HOST_NOT_ALLOWED, kind, str(refused))
            body = error_response(None, error_object(refused.code, refused.message))
            return Rejection(refused.status, body)
        try:
            return await self.authenticators.for_server(server).authenticate(
                request.header("authorization"), request.query_string
            )
        except AuthenticationError as exc:
            self.metrics.authentication_failures.labels(exc.reason).inc()
            await self.refusals.refuse(
                policy, request, Reason.UNAUTHENTICATED, exc.reason, str(exc)
            )
            return authentication_refusal(exc, server)

    async def refuse(
        self, identity: Identity | None, request: HttpRequest, error: ProtocolError
    ) -> None:
        """Record a request the proxy refused; aggregated while the caller is unknown."""
        policy = self.state.current
        try:
            reason = Reason(error.reason)
        except ValueError:  # not one of ours: still refused, and recorded as a bad request
            reason = Reason.INVALID_REQUEST
        if identity is None:
            # The kind groups identical refusals: the reason and the HTTP status (never client
            # text), so a wrong path, a wrong method and a duplicate header each get a record.
            kind = f"{reason.value}/{error.status}"
            await self.refusals.refuse(policy, request, reason, kind, error.message)
            return
        session = request.header(SESSION_HEADER)
        kind = f"{reason.value}/{error.status}"
        await self.refusals.refuse(
            policy, request, reason, kind, error.message, identity=identity, session=session
        )

    async def admit_stream(self, identity: Identity, request: HttpRequest) -> Admit | Rejection:
        """GET (server stream) and DELETE (end session) need an authenticated caller, and a
        ``Last-Event-ID`` issued to that caller; both are recorded like calls."""
        policy = self.state.current
        req = Request(identity, request.method, "")
        session = request.header(SESSION_HEADER)
        if policy is None:
            await self.recorder.refusal(
                None, req, Reason.NO_BUNDLE, NO_BUNDLE_MESSAGE, session=session
            )
            return no_bundle()
        headers = _identity_headers(identity, "")
        presented = request.header("last-event-id")
        if presented is not None and request.method == "GET":
            upstream_id = self.event_ids.open(identity, presented)
            if upstream_id is None:
                text = "Last-Event-ID was not issued to this caller"
                record = await self.recorder.refusal(
                    policy, req, Reason.EVENT_ID_MISMATCH, text, session=session
                )
                return stream_refusal(400, f"Invalid Request: {text}", record.id)
            headers["last-event-id"] = upstream_id
        lease = self.streams.reserve(identity) if request.method == "GET" else ""
        if lease is None:
            return await stream_quota(self.recorder, policy, req, session, self.callers)
        message = f"{request.method} {request.path} is allowed to authenticated callers"
        decision = Decision("allow", Reason.ALLOWED, message, policy.bundle.digest)
        record, recorded = await self.recorder.decision(policy, req, decision, None, session)
        self.streams.attach(lease, record.id)  # released with the stream's outcome
        if not recorded and policy.bundle.server.audit_failure_policy == "Fail":
            self.streams.release(record.id)
            self.metrics.decisions.labels("deny", Reason.AUDIT_UNAVAILABLE).inc()
            self.recorder.unconfirmed(record)
            return stream_refusal(500, "decision could not be recorded", record.id)
        headers["x-remit-decision"] = record.id
        return Admit(upstream_headers=headers, token=self._ticket(policy, record))

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
        """Remember who created the session the upstream just issued (never moved to another
        caller: recorded and left with its owner)."""
        if not self.sessions.bind(session_id, identity):
            text = "the upstream issued a session id bound to another identity; not rebound"
            await self.recorder.refusal(
                self.state.current, Request(identity, ""), Reason.SESSION_MISMATCH, text,
                session=session_id,
            )  # fmt: skip
            return
        if self.consent is not None:
            self.consent.bind(session_id, identity)

    async def end_session(self, identity: Identity, session_id: str) -> None:
        """Forget an ended session."""
        self.sessions.end(session_id)
        if self.consent is not None:
            self.consent.end(session_id)
        self.server_requests.forget(session_id)

    # -- 3. decide, 4. record, 5. forward -------------------------------------------------

    async def decide(self, identity: Identity, call: Message, request: HttpRequest) -> Admit | Deny:
        """Decide, record, then admit or answer with a denial naming the reason and record."""
        return (await self.decide_batch(identity, [call], request))[0]

    async def decide_batch(
        self, identity: Identity, calls: Sequence[Message], request: HttpRequest
    ) -> list[Admit | Deny]:
        """Decide every call first; record allows only if all are allowed. Otherwise record
        each denial, and each allowed call as ``batch_rejected``: no allow without a forward."""
        started = self._clock()
        policy = self.state.current
        session = request.header(SESSION_HEADER)
        if policy is None:
            for call in calls:
                req = Request(identity, call.method, call.target)
                await self.recorder.refusal(
                    None, req, Reason.NO_BUNDLE, NO_BUNDLE_MESSAGE, session=session
                )
            rejection = no_bundle()
            return [Deny(error=rejection.body.get("error"), status=rejection.status)] * len(calls)
        judged = [await self._judge(policy, identity, call, session) for call in calls]
        if any(not j.decision.allowed for j in judged):
            self.metrics.decision_seconds.observe(self._clock() - started)
            visible = functools.partial(self._visible, policy)
            refused = await refuse_batch(self.recorder, policy, judged, session, visible)
            if self.consent is not None:
                return self.consent.rewrite(policy, judged, refused, request, session)
            return refused
        verdicts: list[Admit | Deny] = []
        for j in judged:
            record, recorded = await self.recorder.decision(
                policy, j.request, j.decision, j.tool_hash, session
            )
            if not recorded and policy.bundle.server.audit_failure_policy == "Fail":
                return await abandon_batch(self.recorder, verdicts, record, len(calls))
            token = progress_token(j.call.params)
            if token is not None and j.call.kind == "request":
                self.progress.remember(identity, token)
            headers = _identity_headers(identity, record.id)
            verdicts.append(Admit(upstream_headers=headers, token=self._ticket(policy, record)))
        self.metrics.decision_seconds.observe(self._clock() - started)
        return verdicts

    def _ticket(self, policy: Policy, record: DecisionRecord) -> Ticket:
        """What the admitted call carries to its outcome; failing closed, the point its answer
        waits for: its decision record on disk (``durability.py``)."""
        fail = policy.bundle.server.audit_failure_policy == "Fail"
        return Ticket(record, self._clock(), self.recorder.sync_point() if fail else None)

    async def _judge(
        self, policy: Policy, identity: Identity, call: Message, session: str | None
    ) -> Judged:
        if call.kind == "response":  # carries no action: allowed if it answers a server request
            request = Request(identity, RESPONSE_METHOD, str(call.id))
            decision = judge_response(
                self.server_requests, identity, session, call.id, policy.bundle.digest
            )
            return Judged(call, request, decision, None)
        if self.consent is not None:
            self.consent.observe(identity, call)
        request = await self._request(policy, identity, call)
        return Judged(call, request, *self._decide(policy, request))

    async def _request(self, policy: Policy, identity: Identity, call: Message) -> Request:
        """The engine's view of ``call``: a tool call carries its tool's declared annotations,
        learnt from the upstream first if the tool was never listed."""
        self.pins.adopt(policy.bundle)
        params = call.params
        name, kind = reference(call.method, params)  # the tool's name, for a tools/call
        arguments = params.get("arguments") if call.method in _ARGUMENT_METHODS else {}
        annotations: Mapping[str, Any] = {}
        if call.method == "tools/call":
            if not self.pins.knows(name):
                tools = await self.discovery.tools()
                if tools is not None:
                    self.pins.filter_listed(tools, policy.bundle.server.tool_pinning)
            annotations = self.pins.catalog.annotations(name)
        arguments = arguments if isinstance(arguments, Mapping) else {}
        return Request(identity, call.method, name, arguments, annotations, kind=kind)

    def _decide(self, policy: Policy, request: Request) -> tuple[Decision, str | None]:
        """Tool pins, then the policy engine, then rate limits; and the tool's definition hash."""
        tool_hash = None
        if request.method == "initialize" and not self.sessions.has_room(request.identity):
            return session_quota(self.sessions, policy.bundle.digest), None
        if request.method == "tools/call":
            mode = policy.bundle.server.tool_pinning
            usable, tool_hash = self.pins.check_call(request.name, mode)
            if not usable:
                message = f"tool {request.name!r} changed since it was pinned"
                return deny(Reason.TOOL_PIN_MISMATCH, message, policy.bundle.digest), tool_hash
        return self.limiter.limit(policy.engine.decide(request), request.identity), tool_hash

    @staticmethod
    def _visible(policy: Policy, judged: Judged) -> bool:
        """Whether the denial may say why (else a hidden tool answers like an unknown one)."""
        request = judged.request
        return judged.decision.reason == Reason.CONSENT_REQUIRED or (
            request.method == "tools/call"
            and policy.engine.visible(request.identity, "tool", request.name, request.annotations)
        )

    async def admit_message(self, identity: Identity, message: Message) -> Admit | Deny:
        """Notifications the protocol defines for clients carry no tool action."""
        return ADMIT

    # -- 6. filter, 7. record the outcome -------------------------------------------------

    async def transform(
        self, identity: Identity, call: Message, token: Any, response: dict[str, Any]
    ) -> dict[str, Any]:
        """Filter list results to what the caller could use; pin tool definitions; mark
        per-caller results private to caches (caching.py)."""
        policy = self.state.current
        if policy is None:
            return response
        filtered = filter_list(policy, self.pins, identity, call.method, response)
        return mark_private(call.method, call.params, filtered)

    async def server_message(
        self, identity: Identity, message: dict[str, Any], origin: Origin = POST_ORIGIN
    ) -> dict[str, Any] | None:
        """Relay a server notification or request only if the caller may see it (notices),
        and one that speaks to a session only to that session (attribution)."""
        policy = self.state.current
        engine = policy.engine if policy is not None else None
        owned = origin.session is not None and self.sessions.allows(origin.session, identity)
        why = judge(message, identity, engine, self.progress, origin, owned=owned)
        if why == UNATTRIBUTED:
            await unattributed(self.refusals, policy, identity, message, origin)
        if why is None:
            if "id" in message:  # a server request: its answer must come back to this session
                self.server_requests.sent(key_of(identity, origin.session), message["id"])
            return message
        self.metrics.server_messages_dropped.labels(why).inc()
        log.info("dropped server message %r for %s: %s", message.get("method"), identity, why)
        return None

    async def event_id(self, identity: Identity, upstream_id: str) -> str:
        """Event ids are sealed to the caller (events.py)."""
        return self.event_ids.seal(identity, upstream_id)

    async def outcome(
        self, identity: Identity, call: Message, token: Any, outcome: Outcome
    ) -> None:
        """Write the outcome line that completes the call's decision record."""
        progress = progress_token(call.params) if call.kind == "request" else None
        if progress is not None:
            self.progress.forget(identity, progress)
        if isinstance(token, Ticket):
            self.streams.release(token.record.id)
            await self.recorder.outcome(token, outcome)

    async def flush_refusals(self, *, final: bool = False) -> None:
        """Write the summaries of aggregated refusals whose window closed (all when final)."""
        await self.refusals.flush(self.state.current, final=final)

    def status(self) -> dict[str, Any]:
        """For the admin API: pins, audit head, sessions, buckets."""
        return {
            "pins": self.pins.catalog.pins,
            "audit": {"head": self.recorder.chain.head},
            "sessions": len(self.sessions),
            "streams": len(self.streams),
            "rateLimitBuckets": len(self.limiter),
            "refusalWindows": len(self.refusals.aggregator),
            "refusalsAggregated": self.refusals.aggregator.aggregated,
            "grantsLastUsed": self.recorder.grant_use.snapshot(),
        }


def _identity_headers(identity: Identity, decision_id: str) -> dict[str, str]:
    """Tell the MCP server who is calling (percent-encoded: header values must be ASCII)."""
    return {
        "x-remit-subject": _header_value(identity.subject),
        "x-remit-agent": _header_value(identity.agent),
        "x-remit-decision": decision_id,
    }


def _header_value(text: str) -> str:
    # A token's subject or agent may be as long as the header limit: cache only short ones,
    # so 4,096 entries cannot pin 4,096 long names.
    return _short_header_value(text) if len(text) <= 256 else quote(text, safe=_HEADER_SAFE)


@functools.lru_cache(maxsize=4096)  # the same callers call again: encode each name once
def _short_header_value(text: str) -> str:
    return quote(text, safe=_HEADER_SAFE)


__all__ = ["RemitGuard", "Ticket"]
