"""What a caller receives when Remit refuses: JSON-RPC answers that explain themselves.

A denied ``tools/call`` of a tool the caller can see answers with a tool result that has
``isError: true`` and text naming the reason code and the decision id, so the agent (and the
human reading its transcript) learns why, and for ``consent_required`` which server, agent and
tool a human must grant. A tool the caller may not see answers exactly like an unknown tool.
Other denied methods answer with a JSON-RPC error carrying the same facts in ``data``.
Requests refused before any decision get their answer here too: ``no_bundle`` (the one place
that says what a gateway without a policy answers) and ``authentication_refusal``.
"""

from __future__ import annotations

from typing import Any

from remit.errors import AuthenticationError
from remit.gateway.hooks import Deny, Rejection
from remit.gateway.resource_metadata import metadata_url, status_for, www_authenticate
from remit.policy.bundle import ServerSettings
from remit.policy.decision import Decision, Reason

FORBIDDEN = -32003  # implementation-defined server error: refused by policy
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INVALID_REQUEST = -32600
INTERNAL = -32603
UNAVAILABLE = -32000
META_KEY = "dev.remit/decision"
NO_BUNDLE_STATUS = 503
NO_BUNDLE_MESSAGE = "no policy bundle in force"


def denial(method: str, name: str, decision: Decision, record_id: str, visible: bool) -> Deny:
    """The answer to a denied request."""
    facts = {"decisionId": record_id, "reason": decision.reason, "message": decision.message}
    if method == "tools/call":
        if not visible:
            return Deny(
                error={
                    "code": INVALID_PARAMS,
                    "message": f"Unknown tool: {name}",
                    "data": {"decisionId": record_id},
                }
            )
        text = (
            f"Remit denied this call ({decision.reason}): {decision.message}. "
            f"Decision record {record_id}."
        )
        return Deny(
            result={
                "content": [{"type": "text", "text": text}],
                "isError": True,
                "_meta": {META_KEY: facts},
            }
        )
    if decision.reason == Reason.METHOD_NOT_ALLOWED:
        return Deny(error={"code": METHOD_NOT_FOUND, "message": decision.message, "data": facts})
    return Deny(
        error={
            "code": FORBIDDEN,
            "message": f"Denied by Remit ({decision.reason}): {decision.message}",
            "data": facts,
        }
    )


def internal_error(message: str, record_id: str, reason: str | None = None) -> dict[str, Any]:
    """A JSON-RPC error object for a failure inside the gateway (the call is not forwarded);
    ``reason`` is the reason code (e.g. ``audit_unavailable``)."""
    data = {"decisionId": record_id}
    if reason is not None:
        data["reason"] = reason
    return {"code": INTERNAL, "message": message, "data": data}


def unavailable(message: str) -> dict[str, Any]:
    """A JSON-RPC error response body for a gateway that cannot decide (no bundle)."""
    return {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": UNAVAILABLE, "message": message, "data": {"reason": "no_bundle"}},
    }


def no_bundle() -> Rejection:
    """The answer to every request on the MCP port while no bundle is in force (fail closed)."""
    return Rejection(NO_BUNDLE_STATUS, unavailable(f"{NO_BUNDLE_MESSAGE}: denying everything"))


def authentication_refusal(exc: AuthenticationError, server: ServerSettings) -> Rejection:
    """401/403 with the ``WWW-Authenticate`` challenge the MCP authorization spec asks for."""
    challenge = www_authenticate(exc, metadata_url(server.audience), server.required_scopes)
    body = {"error": exc.reason, "error_description": exc.description}
    return Rejection(status_for(exc), body, {"WWW-Authenticate": challenge})


def stream_refusal(
    status: int, message: str, record_id: str, reason: str | None = None
) -> Rejection:
    """A refused GET stream or DELETE: a JSON-RPC error without id naming its record (and
    its reason code, when given)."""
    error = {"code": INVALID_REQUEST if status < 500 else INTERNAL, "message": message}
    data = {"decisionId": record_id, **({"reason": reason} if reason else {})}
    body = {"jsonrpc": "2.0", "id": None, "error": {**error, "data": data}}
    return Rejection(status, body)
