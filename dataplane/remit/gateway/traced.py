"""The guard and the upstream client with spans: used instead of the plain ones only when tracing.

``TracedGuard`` wraps the guard's steps in ``authenticate`` and ``decide`` child spans and
names the request's root span after what it carries (``tools/call get_weather``), with the
MCP/GenAI semantic-convention attributes. Every record the recorder writes annotates the root
span with Remit's identity and decision attributes and adds a ``remit.decision`` event, so a
batch shows each of its decisions. ``TracedUpstream`` wraps the send in a ``forward`` CLIENT
span and hands that span's W3C context to the MCP server (replacing the caller's, whose trace
it continues).

Nothing here is imported when tracing is off (``app.py`` picks the plain classes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from multidict import CIMultiDict
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from remit.audit import Entry
from remit.audit.records import DecisionRecord, OutcomeRecord
from remit.gateway.bounds import ResponseLimits
from remit.gateway.guard import RemitGuard
from remit.gateway.hooks import Admit, Deny, HttpRequest, Rejection
from remit.gateway.protocol import SESSION_HEADER, VERSION_HEADER, Message
from remit.gateway.tracing import ROOT, Tracing
from remit.gateway.upstream import Upstream, UpstreamResponse, UpstreamSettings
from remit.policy.request import Identity

#: The operation GenAI conventions name a tool execution.
EXECUTE_TOOL = "execute_tool"
_TARGETS = {"tools/call": "gen_ai.tool.name", "prompts/get": "gen_ai.prompt.name"}


def _root() -> Span:
    span = ROOT.get()
    return span if span is not None else trace.get_current_span()


def describe_call(span: Span, call: Message, request: HttpRequest, batch: int) -> None:
    """Name the root span after the call and set the MCP/GenAI attributes of it."""
    method = call.method or call.kind
    target = call.target
    name = f"{method} {target}" if method in _TARGETS and target else method
    span.update_name(name if batch == 1 else f"{name} (batch of {batch})")
    span.set_attribute("mcp.method.name", method)
    if call.id is not None:
        span.set_attribute("jsonrpc.request.id", str(call.id))
    if method in _TARGETS and target:
        span.set_attribute(_TARGETS[method], target)
        if method == "tools/call":
            span.set_attribute("gen_ai.operation.name", EXECUTE_TOOL)
    elif method == "resources/read" and target:
        span.set_attribute("mcp.resource.uri", target)
    version = request.header(VERSION_HEADER)
    if version:
        span.set_attribute("mcp.protocol.version", version)
    if batch > 1:
        span.set_attribute("remit.batch.size", batch)


def record_attributes(record: DecisionRecord | OutcomeRecord) -> dict[str, Any]:
    """Remit's span attributes for one record (decision: who, what, why; outcome: how)."""
    if isinstance(record, OutcomeRecord):
        attributes: dict[str, Any] = {
            "remit.decision.id": record.decision_id,
            "remit.outcome": record.outcome,
        }
        if record.error is not None:
            attributes["error.type"] = record.error.split(":", 1)[0]
        return attributes
    attributes = {
        "remit.decision.id": record.id,
        "remit.decision": record.decision,
        "remit.reason": record.reason,
        "remit.subject": record.subject,
        "enduser.id": record.subject,
        "remit.issuer": record.issuer,
        "remit.agent": record.agent,
        "gen_ai.agent.name": record.agent,
        "remit.delegation.chain": list(record.chain),
        "remit.rule.ids": list(record.rules),
        "remit.bundle.digest": record.bundle,
        "remit.server": record.server,
    }
    if record.serial is not None:
        attributes["remit.bundle.serial"] = record.serial
    if record.grant is not None:
        attributes["remit.grant"] = record.grant.name
        attributes["remit.grant.uid"] = record.grant.uid
    if record.session is not None:
        attributes["mcp.session.id"] = record.session  # its sha256, as in the record
    if record.decision == "deny":
        attributes["error.type"] = record.reason
    return attributes


class TracedGuard(RemitGuard):
    """``RemitGuard`` with spans; ``tracing`` is set right after construction."""

    tracing: Tracing

    def trace_with(self, tracing: Tracing) -> None:
        """Start tracing: every record from now on annotates its request's span."""
        self.tracing = tracing
        self.recorder.observe = self._observe

    def _observe(self, record: DecisionRecord | OutcomeRecord, entry: Entry | None) -> None:
        attributes = record_attributes(record)
        span = _root()
        if span.is_recording():
            span.set_attributes(attributes)
            name = "remit.outcome" if isinstance(record, OutcomeRecord) else "remit.decision"
            span.add_event(name, {k: v for k, v in attributes.items() if k.startswith("remit.")})
            if attributes.get("remit.decision") == "deny" or "error.type" in attributes:
                span.set_status(Status(StatusCode.ERROR, str(attributes.get("error.type"))))
        if entry is not None:
            self.tracing.emit_record(entry.line.strip(), attributes)

    async def authenticate(self, request: HttpRequest) -> Identity | Rejection:
        with self.tracing.tracer.start_as_current_span("authenticate") as span:
            identity = await super().authenticate(request)
            if isinstance(identity, Rejection):
                span.set_attribute("http.response.status_code", identity.status)
                span.set_status(Status(StatusCode.ERROR, "rejected"))
            else:
                root = _root()
                root.set_attribute("remit.subject", identity.subject)
                root.set_attribute("enduser.id", identity.subject)
                root.set_attribute("remit.agent", identity.agent)
                root.set_attribute("gen_ai.agent.name", identity.agent)
                if identity.chain:
                    root.set_attribute("remit.delegation.chain", list(identity.chain))
            return identity

    async def decide_batch(
        self, identity: Identity, calls: Sequence[Message], request: HttpRequest
    ) -> list[Admit | Deny]:
        if calls:
            describe_call(_root(), calls[0], request, len(calls))
        with self.tracing.tracer.start_as_current_span("decide"):
            return await super().decide_batch(identity, calls, request)

    async def admit_stream(self, identity: Identity, request: HttpRequest) -> Admit | Rejection:
        root = _root()
        root.update_name(f"{request.method} stream")
        if request.header(SESSION_HEADER) is None:
            root.set_attribute("mcp.method.name", request.method)
        with self.tracing.tracer.start_as_current_span("decide"):
            return await super().admit_stream(identity, request)


class TracedUpstream(Upstream):
    """``Upstream`` whose sends are ``forward`` spans carrying their context upstream."""

    def __init__(self, settings: UpstreamSettings, tracing: Tracing) -> None:
        super().__init__(settings)
        self.tracing = tracing
        self._address = urlsplit(settings.url).hostname or ""

    async def send(
        self,
        method: str,
        headers: CIMultiDict[str],
        body: bytes | None,
        limits: ResponseLimits | None = None,
    ) -> UpstreamResponse:
        with self.tracing.tracer.start_as_current_span("forward", kind=SpanKind.CLIENT) as span:
            span.set_attribute("http.request.method", method)
            span.set_attribute("server.address", self._address)
            self.tracing.inject(headers)
            response = await super().send(method, headers, body, limits)
            span.set_attribute("http.response.status_code", response.status)
            return response


__all__ = ["TracedGuard", "TracedUpstream", "describe_call", "record_attributes"]
