"""Where Remit's decisions plug into the MCP proxy: the hook interface and its value types.

The proxy (``proxy.py``) moves bytes and enforces the protocol; everything Remit decides —
who is calling, whether a session belongs to them, whether a request may pass, what a list
result may show, what is recorded — is asked of a ``GatewayHooks`` implementation. The order
per HTTP request is: ``authenticate`` once, ``check_session`` if a ``Mcp-Session-Id`` is
presented, then ``decide`` per JSON-RPC request and per notification the protocol does not
define for clients (``decide_batch`` for a batch, all of it before anything is recorded as
allowed; ``admit_message`` for protocol notifications and client responses, ``admit_stream``
for GET/DELETE), forward, ``bind_session`` when the upstream issues a session id, ``transform``
per response message, ``server_message`` per other server message and ``event_id`` per SSE
event id, ``outcome`` once per forwarded decision. A request the proxy refuses on protocol
grounds (duplicate identity headers, malformed body, oversized batch) is told to ``refuse``.
Every hook is async; an exception in a hook fails closed (the request gets an internal error).
``identity`` is the ``Identity`` ``authenticate`` returned; the proxy never looks inside it,
nor inside a decision ``token``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from remit.errors import ProtocolError
from remit.gateway.attribution import POST_ORIGIN, Origin
from remit.gateway.protocol import Message, RequestId
from remit.policy.request import Identity


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """The HTTP request as the hooks see it. Header names are lowercase, in arrival order."""

    method: str
    path: str
    query_string: bytes
    headers: tuple[tuple[str, str], ...]
    client: tuple[str, int] | None = None

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (lowercase), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class Rejection:
    """Answer the HTTP request without forwarding: ``status``, extra ``headers``, JSON ``body``."""

    status: int
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Admit:
    """Forward the message. ``upstream_headers`` are added to the upstream request (e.g.
    ``X-Remit-Subject``); ``token`` is opaque and handed back to ``transform`` and ``outcome``."""

    upstream_headers: Mapping[str, str] = field(default_factory=dict)
    token: Any = None


@dataclass(frozen=True, slots=True)
class Deny:
    """Answer a JSON-RPC request directly instead of forwarding it.

    Exactly one of ``error`` (a JSON-RPC error object: code, message, data) or ``result`` (e.g.
    ``{"isError": true, "content": [...]}``) is set. ``status`` is the HTTP status of the
    answer; for notifications and client responses only ``status`` is used (no body).
    """

    error: Mapping[str, Any] | None = None
    result: Mapping[str, Any] | None = None
    status: int = 200


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one forwarded request, for the audit outcome line.

    ``status`` is the upstream HTTP status (0 if none was received), ``latency`` seconds from
    forwarding to the response message, ``error`` a short reason when the call failed at the
    transport level (None otherwise; it starts with its reason code, e.g.
    ``response_too_large: ...``); ``response`` the upstream's answer, whose JSON-RPC error (if
    any) is the call's normal ``error`` outcome, not an upstream failure. ``kind`` names an
    end the recorder cannot derive from the rest (``cancelled``: the client went away before
    the answer).
    """

    status: int
    latency: float
    error: str | None = None
    response: Mapping[str, Any] | None = None
    kind: str | None = None


class GatewayHooks(Protocol):
    """What the proxy asks of Remit. ``AllowAllHooks`` is the trivial implementation."""

    async def authenticate(self, request: HttpRequest) -> Identity | Rejection:
        """Identify the caller of an HTTP request, or reject it (e.g. 401 + WWW-Authenticate)."""
        ...

    async def admit_stream(self, identity: Identity, request: HttpRequest) -> Admit | Rejection:
        """Allow a GET (SSE stream) or DELETE (end session) request; headers for upstream."""
        ...

    async def check_session(self, identity: Identity, session_id: str) -> bool:
        """Whether ``identity`` may use the presented ``Mcp-Session-Id``; False answers 404."""
        ...

    async def bind_session(self, identity: Identity, session_id: str) -> None:
        """The upstream issued ``session_id`` to ``identity`` (on ``initialize``)."""
        ...

    async def end_session(self, identity: Identity, session_id: str) -> None:
        """The upstream accepted a DELETE of ``session_id``."""
        ...

    async def decide(self, identity: Identity, call: Message, request: HttpRequest) -> Admit | Deny:
        """Decide one client→server JSON-RPC request, or a notification the protocol does not
        define for clients (servers act on those too)."""
        ...

    async def decide_batch(
        self, identity: Identity, calls: Sequence[Message], request: HttpRequest
    ) -> list[Admit | Deny]:
        """Decide every message of a batch that ``decide`` would (same order). The batch is
        forwarded only if all are admitted: record allows only then."""
        ...

    async def refuse(
        self, identity: Identity | None, request: HttpRequest, error: ProtocolError
    ) -> None:
        """The proxy refused ``request`` on protocol grounds (``identity`` None: before it
        authenticated the caller). Record it."""
        ...

    async def server_message(
        self, identity: Identity, message: dict[str, Any], origin: Origin = POST_ORIGIN
    ) -> dict[str, Any] | None:
        """A server→client notification or request as the caller may see it; None drops it.
        ``origin`` says where it arrived (the request's session, and whether on a GET stream)."""
        ...

    async def event_id(self, identity: Identity, upstream_id: str) -> str:
        """The SSE event id the caller sees for the upstream's ``upstream_id``."""
        ...

    async def admit_message(self, identity: Identity, message: Message) -> Admit | Deny:
        """Decide a notification or a client response to a server-initiated request."""
        ...

    async def transform(
        self, identity: Identity, call: Message, token: Any, response: dict[str, Any]
    ) -> dict[str, Any]:
        """Return the server→client response to ``call``, possibly filtered (e.g. tools/list)."""
        ...

    async def outcome(
        self, identity: Identity, call: Message, token: Any, outcome: Outcome
    ) -> None:
        """Called once per forwarded request when its response arrived or the call failed."""
        ...


class AllowAllHooks:
    """Admits everything and changes nothing: the proxy without Remit, for tests and benchmarks.

    Also a convenient base class: override only the hooks you need.
    """

    async def authenticate(self, request: HttpRequest) -> Identity | Rejection:
        """Everyone is anonymous."""
        return ANONYMOUS

    async def admit_stream(self, identity: Identity, request: HttpRequest) -> Admit | Rejection:
        """Allow."""
        return ADMIT

    async def check_session(self, identity: Identity, session_id: str) -> bool:
        """Any session id is acceptable (the upstream still checks it exists)."""
        return True

    async def bind_session(self, identity: Identity, session_id: str) -> None:
        """Nothing to remember."""

    async def end_session(self, identity: Identity, session_id: str) -> None:
        """Nothing to forget."""

    async def decide(self, identity: Identity, call: Message, request: HttpRequest) -> Admit | Deny:
        """Allow."""
        return ADMIT

    async def decide_batch(
        self, identity: Identity, calls: Sequence[Message], request: HttpRequest
    ) -> list[Admit | Deny]:
        """``decide`` each message in turn."""
        return [await self.decide(identity, call, request) for call in calls]

    async def refuse(
        self, identity: Identity | None, request: HttpRequest, error: ProtocolError
    ) -> None:
        """Not recorded."""

    async def server_message(
        self, identity: Identity, message: dict[str, Any], origin: Origin = POST_ORIGIN
    ) -> dict[str, Any] | None:
        """Unchanged."""
        return message

    async def event_id(self, identity: Identity, upstream_id: str) -> str:
        """Unchanged."""
        return upstream_id

    async def admit_message(self, identity: Identity, message: Message) -> Admit | Deny:
        """Allow."""
        return ADMIT

    async def transform(
        self, identity: Identity, call: Message, token: Any, response: dict[str, Any]
    ) -> dict[str, Any]:
        """Unchanged."""
        return response

    async def outcome(
        self, identity: Identity, call: Message, token: Any, outcome: Outcome
    ) -> None:
        """Not recorded."""


ADMIT = Admit()
"""An admission with no extra headers and no token."""
ANONYMOUS = Identity(subject="", agent="")
"""The caller before (or without) authentication."""

__all__ = [
    "ADMIT",
    "ANONYMOUS",
    "Admit",
    "AllowAllHooks",
    "Deny",
    "GatewayHooks",
    "HttpRequest",
    "Identity",
    "Message",
    "Origin",
    "Outcome",
    "Rejection",
    "RequestId",
]
