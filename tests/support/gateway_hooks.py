"""A small hook implementation for gateway tests: denies one tool, filters lists, records.

It stands in for Remit's guard: it rejects callers without a bearer token (401 with
``WWW-Authenticate``), binds sessions to the caller, denies ``tools/call`` of ``delete_file``
with a tool-error result, hides ``delete_file`` from ``tools/list`` and adds ``X-Remit-*``
headers upstream; everything it is told is recorded for the tests to check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from remit.gateway.hooks import (
    Admit,
    AllowAllHooks,
    Deny,
    HttpRequest,
    Identity,
    Message,
    Outcome,
    Rejection,
)

DENIED_TOOL = "delete_file"


@dataclass
class RecordingHooks(AllowAllHooks):
    """Test guard: see the module docstring."""

    sessions: dict[str, str] = field(default_factory=dict)
    ended: list[str] = field(default_factory=list)
    outcomes: list[tuple[str, Outcome]] = field(default_factory=list)
    transformed: list[str] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    decided: list[Message] = field(default_factory=list)

    async def authenticate(self, request: HttpRequest) -> Identity | Rejection:
        token = request.header("authorization") or ""
        if not token.startswith("Bearer "):
            return Rejection(
                401,
                {"error": "invalid_token"},
                {"WWW-Authenticate": 'Bearer resource_metadata="http://x/.well-known"'},
            )
        return Identity(subject=token.removeprefix("Bearer "), agent="test-agent")

    async def admit_stream(self, identity: Identity, request: HttpRequest) -> Admit | Rejection:
        return Admit({"X-Remit-Subject": identity.subject})

    async def check_session(self, identity: Identity, session_id: str) -> bool:
        return self.sessions.get(session_id) == identity.subject

    async def bind_session(self, identity: Identity, session_id: str) -> None:
        self.sessions[session_id] = identity.subject

    async def end_session(self, identity: Identity, session_id: str) -> None:
        self.ended.append(session_id)

    async def decide(self, identity: Identity, call: Message, request: HttpRequest) -> Admit | Deny:
        self.decided.append(call)
        if call.method == "tools/call" and call.target == DENIED_TOOL:
            text = f"denied: {DENIED_TOOL} is not allowed"
            return Deny(result={"isError": True, "content": [{"type": "text", "text": text}]})
        if call.method == "prompts/get":
            return Deny(error={"code": -32003, "message": "denied: no prompts"})
        headers = {"X-Remit-Subject": identity.subject, "X-Remit-Agent": "test-agent"}
        return Admit({**headers, "X-Remit-Decision": f"allow:{call.method}"}, token=call.method)

    async def admit_message(self, identity: Identity, message: Message) -> Admit | Deny:
        self.messages.append(message)
        return Admit({"X-Remit-Subject": identity.subject})

    async def transform(
        self, identity: Identity, call: Message, token: Any, response: dict[str, Any]
    ) -> dict[str, Any]:
        self.transformed.append(call.method)
        result = response.get("result")
        if call.method == "tools/list" and isinstance(result, dict):
            tools = [t for t in result.get("tools", []) if t.get("name") != DENIED_TOOL]
            return {**response, "result": {**result, "tools": tools}}
        return response

    async def outcome(
        self, identity: Identity, call: Message, token: Any, outcome: Outcome
    ) -> None:
        self.outcomes.append((call.method, outcome))
