"""A Decision names everything that produced it, so it can be explained afterwards."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from remit.policy.bundle import CompiledRateLimit, GrantEvidence
from remit.times import utc_text

Effect = Literal["allow", "deny"]


class Reason(StrEnum):
    """Every reason code a decision or outcome record can carry: the one vocabulary of why.

    Allowed decisions all use ``allowed``; the grant field says when consent was used. The
    engine decides the first eight; the gateway adds the others around it (before the engine is
    asked, or after it allowed, or for what a client sent: duplicate headers, batches, event
    ids). ``internal_error`` is the engine's catch-all for a bug. The last ten say why a
    forwarded call failed at the upstream (``UPSTREAM_REASONS``): an outcome record's
    ``error`` starts with one.
    """

    ALLOWED = "allowed"
    DENIED_BY_RULE = "denied_by_rule"
    CONSENT_REQUIRED = "consent_required"
    NO_MATCHING_RULE = "no_matching_rule"
    EXPRESSION_ERROR = "expression_error"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    INVALID_REQUEST = "invalid_request"
    NO_BUNDLE = "no_bundle"
    UNAUTHENTICATED = "unauthenticated"
    SESSION_MISMATCH = "session_mismatch"
    RATE_LIMITED = "rate_limited"
    TOOL_PIN_MISMATCH = "tool_pin_mismatch"
    AUDIT_UNAVAILABLE = "audit_unavailable"
    INTERNAL_ERROR = "internal_error"
    DUPLICATE_HEADER = "duplicate_header"  # an identity-bearing header twice, or spelled with _
    BATCH_TOO_LARGE = "batch_too_large"  # more messages in a batch than the gateway accepts
    BATCH_REJECTED = "batch_rejected"  # refused because of another message in its batch
    EVENT_ID_MISMATCH = "event_id_mismatch"  # a Last-Event-ID not issued to the caller
    HEADER_MISMATCH = "header_mismatch"  # Mcp-Method/Mcp-Name/Mcp-Param-* disagree with the body
    SESSION_QUOTA = "session_quota"  # the caller holds its quota of sessions (or one was moved)
    STREAM_QUOTA = "stream_quota"  # the caller holds its quota of open GET streams
    STREAM_CLOSED = "stream_closed"  # the gateway closed a stream: lifetime or idle time spent
    UNATTRIBUTED_MESSAGE = "unattributed_message"  # a server message no session can be named for
    UNMATCHED_RESPONSE = "unmatched_response"  # a client response to no server request sent to it
    HOST_NOT_ALLOWED = "host_not_allowed"  # Host or Origin not allowed (DNS rebinding)
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"  # could not be reached
    UPSTREAM_TIMEOUT = "upstream_timeout"  # no answer, or no complete body or event, in time
    UPSTREAM_BROKEN = "upstream_broken"  # the answer broke off
    UPSTREAM_HTTP_ERROR = "upstream_http_error"  # a non-2xx answer
    NO_RESPONSE = "no_response"  # the answer held no response to the request
    RESPONSE_TOO_LARGE = "response_too_large"  # past maxResponseBytes
    RESPONSE_TOO_DEEP = "response_too_deep"  # past maxJsonDepth
    INVALID_RESPONSE = "invalid_response"  # not JSON
    UNINSPECTABLE_RESPONSE = "uninspectable_response"  # a body the gateway cannot read
    INVALID_SESSION_ID = "invalid_session_id"  # an Mcp-Session-Id not 1-256 visible ASCII chars


ENGINE_REASONS = frozenset(
    {
        Reason.ALLOWED,
        Reason.DENIED_BY_RULE,
        Reason.CONSENT_REQUIRED,
        Reason.NO_MATCHING_RULE,
        Reason.EXPRESSION_ERROR,
        Reason.METHOD_NOT_ALLOWED,
        Reason.INVALID_REQUEST,
        Reason.NO_BUNDLE,
        Reason.INTERNAL_ERROR,
    }
)
"""The reasons the policy engine itself gives (``remit policy test`` cases may expect these)."""

UPSTREAM_REASONS = frozenset(
    {
        Reason.UPSTREAM_UNAVAILABLE,
        Reason.UPSTREAM_TIMEOUT,
        Reason.UPSTREAM_BROKEN,
        Reason.UPSTREAM_HTTP_ERROR,
        Reason.NO_RESPONSE,
        Reason.RESPONSE_TOO_LARGE,
        Reason.RESPONSE_TOO_DEEP,
        Reason.INVALID_RESPONSE,
        Reason.UNINSPECTABLE_RESPONSE,
        Reason.INVALID_SESSION_ID,
    }
)
"""Why a forwarded call failed at the upstream: outcome records and metrics, never decisions."""


def upstream_reason(error: str) -> Reason:
    """The upstream reason code an outcome's ``error`` starts with (``code: text``);
    ``internal_error`` when it starts with none (a gateway bug, not an upstream failure)."""
    code = error.partition(":")[0].strip()
    for reason in UPSTREAM_REASONS:
        if reason.value == code:
            return reason
    return Reason.INTERNAL_ERROR


@dataclass(frozen=True, slots=True)
class GrantRef:
    """The consent a decision relied on: enough to find the exact object version."""

    name: str
    uid: str
    resource_version: str
    expires_at: datetime
    granted_by: str
    reason: str
    evidence: GrantEvidence | None = None

    def document(self) -> dict[str, Any]:
        """JSON form, as decision records and ``--output json`` show it."""
        document: dict[str, Any] = {
            "name": self.name,
            "uid": self.uid,
            "resourceVersion": self.resource_version,
            "expiresAt": utc_text(self.expires_at),
            "grantedBy": self.granted_by,
            "reason": self.reason,
        }
        if self.evidence is not None:
            document["evidence"] = {
                "method": self.evidence.method,
                "issuer": self.evidence.issuer,
                "subject": self.evidence.subject,
                "consentedAt": utc_text(self.evidence.consented_at),
                "request": self.evidence.request,
                "scope": self.evidence.scope,
            }
        return document


@dataclass(frozen=True, slots=True)
class RateLimitRef:
    """A rate limit the gateway must enforce for an allowed call, keyed by its rule."""

    rule: str
    limit: CompiledRateLimit


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of deciding one request."""

    effect: Effect
    reason: Reason
    message: str
    bundle: str
    rules: tuple[str, ...] = ()
    grant: GrantRef | None = None
    rate_limits: tuple[RateLimitRef, ...] = ()
    filter_results: bool = False

    @property
    def allowed(self) -> bool:
        """True when the request may be forwarded."""
        return self.effect == "allow"

    def document(self) -> dict[str, Any]:
        """JSON form of the decision."""
        return {
            "effect": self.effect,
            "reason": self.reason,
            "message": self.message,
            "rules": list(self.rules),
            "grant": self.grant.document() if self.grant else None,
            "bundle": self.bundle,
        }


def deny(reason: Reason, message: str, bundle: str, rules: tuple[str, ...] = ()) -> Decision:
    """A deny decision."""
    return Decision("deny", reason, message, bundle, rules)
