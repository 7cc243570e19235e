"""The guard in-process: a compiled bundle, a fake audit chain, an injected clock.

These tests drive ``RemitGuard`` (and, where forwarding matters, the real ``McpProxy`` in front
of a recording upstream) without sockets or processes, so each decision path is checked by
what it records and what it lets through.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from typing import Any

import orjson
import pytest

from remit.audit.records import DecisionRecord, OutcomeRecord
from remit.errors import AuditError, UpstreamError
from remit.gateway.guard import RemitGuard, _identity_headers
from remit.gateway.hooks import Admit, Deny, HttpRequest, Identity, Outcome, Rejection
from remit.gateway.metrics import Metrics
from remit.gateway.protocol import Message, parse_body
from remit.gateway.proxy import McpProxy, ProxySettings
from remit.gateway.ratelimit import RateLimiter
from remit.gateway.recorder import Ticket
from remit.gateway.state import PolicyState
from remit.policy.bundle import Bundle
from tests.support.policies import bundle_for, policy, rule, server, who

ALICE = who("alice@example.com", "support-bot")
MALLORY = who("mallory@example.com", "support-bot")
READ_TOOL = {"name": "read_file", "inputSchema": {"type": "object"}}


class FakeChain:
    """An audit chain in memory; ``broken`` makes every append fail like a full disk."""

    server = "agents/files"
    digest_key = None  # plain sha256 argument digests

    def __init__(self) -> None:
        self.records: list[DecisionRecord | OutcomeRecord] = []
        self.broken = False
        self.head = "0" * 64
        self.not_sent: list[str] = []  # what the next recover marker would name

    def not_forwarded(self, decision_id: str) -> None:
        self.not_sent.append(decision_id)

    async def append(self, record: DecisionRecord | OutcomeRecord) -> None:
        if self.broken:
            raise AuditError("disk full")
        self.records.append(record)

    def decisions(self) -> list[DecisionRecord]:
        return [r for r in self.records if isinstance(r, DecisionRecord)]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _guard(bundle: Bundle) -> tuple[RemitGuard, FakeChain, Metrics]:
    state = PolicyState()
    state.install(bundle)
    chain, metrics = FakeChain(), Metrics()
    return RemitGuard(state, chain, metrics, pod="pod-a"), chain, metrics  # type: ignore[arg-type]


def _message(method: str, params: Mapping[str, Any] | None = None, id_: int = 1) -> Message:
    body = {"jsonrpc": "2.0", "id": id_, "method": method, "params": dict(params or {})}
    return parse_body(orjson.dumps(body)).messages[0]


def _tool_call(name: str, **arguments: Any) -> Message:
    return _message("tools/call", {"name": name, "arguments": arguments})


def _http(session: str | None = None) -> HttpRequest:
    headers = [("mcp-protocol-version", "2025-06-18")]
    if session is not None:
        headers.append(("mcp-session-id", session))
    return HttpRequest("POST", "/mcp", b"", tuple(headers))


def _reads(**server_spec: Any) -> Bundle:
    return bundle_for(server("files", **server_spec), policy("p", rule("read", tools=["read_*"])))


async def _list(guard: RemitGuard, identity: Identity, *tools: dict[str, Any]) -> list[str]:
    response = {"jsonrpc": "2.0", "id": 1, "result": {"tools": list(tools)}}
    out = await guard.transform(identity, _message("tools/list"), None, response)
    return [t["name"] for t in out["result"]["tools"]]


def _sample(metrics: Metrics, name: str, labels: dict[str, str] | None = None) -> float:
    value = metrics.registry.get_sample_value(name, labels or {})
    return value or 0.0


# -- decide → record → forward ---------------------------------------------------------------


async def test_an_allowed_call_is_recorded_before_it_is_admitted_and_its_outcome_after() -> None:
    guard, chain, _ = _guard(_reads())
    await _list(guard, ALICE, READ_TOOL)
    verdict = await guard.decide(ALICE, _tool_call("read_file", path="/a"), _http())
    assert isinstance(verdict, Admit)
    (record,) = chain.decisions()
    assert (record.decision, record.reason, record.tool, record.subject) == (
        "allow", "allowed", "read_file", ALICE.subject,
    )  # fmt: skip
    assert verdict.upstream_headers["x-remit-decision"] == record.id
    assert isinstance(verdict.token, Ticket)
    await guard.outcome(ALICE, _tool_call("read_file"), verdict.token, Outcome(200, 0.01))
    outcome = chain.records[-1]
    assert isinstance(outcome, OutcomeRecord)
    assert (outcome.decision_id, outcome.outcome) == (record.id, "ok")


async def test_a_denied_call_is_recorded_with_its_reason() -> None:
    guard, chain, _ = _guard(_reads())
    verdict = await guard.decide(ALICE, _tool_call("delete_file"), _http())
    assert isinstance(verdict, Deny)
    (record,) = chain.decisions()
    assert (record.decision, record.reason) == ("deny", "no_matching_rule")


async def test_an_unwritable_decision_record_denies_the_call() -> None:
    guard, chain, metrics = _guard(_reads())
    await _list(guard, ALICE, READ_TOOL)
    chain.broken = True
    verdict = await guard.decide(ALICE, _tool_call("read_file"), _http())
    assert isinstance(verdict, Deny)
    assert verdict.error is not None
    assert verdict.error["code"] == -32603
    assert "could not be recorded" in verdict.error["message"]
    assert _sample(metrics, "remit_audit_failures_total") == 1
    labels = {"effect": "deny", "reason": "audit_unavailable"}
    assert _sample(metrics, "remit_decisions_total", labels) == 1
    # the allow may still land (a stalled sink): the next recover marker names it not forwarded
    assert chain.not_sent == [verdict.error["data"]["decisionId"]]


async def test_with_failure_policy_ignore_an_unwritable_record_does_not_deny() -> None:
    guard, chain, _ = _guard(_reads(audit={"failurePolicy": "Ignore"}))
    await _list(guard, ALICE, READ_TOOL)
    chain.broken = True
    assert isinstance(await guard.decide(ALICE, _tool_call("read_file"), _http()), Admit)
    assert chain.not_sent == []  # forwarded after all: its outcome says how it ended


class RecordingUpstream:
    """Stands where the MCP server would be; remembers every request the proxy sends it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None]] = []

    async def send(self, method: str, headers: Any, body: bytes | None, limits: Any = None) -> Any:
        self.sent.append((method, body))
        raise UpstreamError(502, "recording upstream: not a real server")

    async def start(self) -> None: ...

    async def close(self) -> None: ...


async def _post(proxy: McpProxy, message: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    body = orjson.dumps(message)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/mcp",
        "query_string": b"",
        "headers": [
            (b"content-type", b"application/json"),
            (b"accept", b"application/json, text/event-stream"),
            (b"mcp-protocol-version", b"2025-06-18"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    incoming = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []
    stays = asyncio.Event()  # the client stays connected (ASGI: receive waits until it leaves)

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop(0)
        await stays.wait()
        return {"type": "http.disconnect"}

    async def send(event: dict[str, Any]) -> None:
        sent.append(event)

    await proxy(scope, receive, send)
    status = sent[0]["status"]
    payload = b"".join(e.get("body", b"") for e in sent[1:])
    return status, orjson.loads(payload) if payload else {}


@pytest.mark.parametrize("broken", [False, True])
async def test_through_the_proxy_an_unrecorded_call_never_reaches_the_upstream(
    broken: bool,
) -> None:
    guard, chain, _ = _guard(_reads())
    await _list(guard, ALICE, READ_TOOL)

    async def authenticate(request: HttpRequest) -> Identity | Rejection:
        return ALICE

    guard.authenticate = authenticate  # type: ignore[method-assign]
    upstream = RecordingUpstream()
    proxy = McpProxy(ProxySettings(), guard, upstream)  # type: ignore[arg-type]
    chain.broken = broken
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "read_file"}}
    status, answer = await _post(proxy, call)
    if broken:
        assert upstream.sent == []
        assert answer["error"]["code"] == -32603
    else:  # the control: the same call with a working chain is forwarded
        assert [m for m, _ in upstream.sent] == ["POST"]
        assert status == 502


# -- authenticate, bind -----------------------------------------------------------------------


async def test_without_a_bundle_every_request_is_refused_503_and_recorded() -> None:
    chain, metrics = FakeChain(), Metrics()
    guard = RemitGuard(PolicyState(), chain, metrics)  # type: ignore[arg-type]
    answer = await guard.authenticate(_http())
    assert isinstance(answer, Rejection)
    assert answer.status == 503
    (record,) = chain.decisions()
    assert (record.decision, record.reason, record.server) == ("deny", "no_bundle", "agents/files")


async def test_a_session_presented_by_another_identity_is_refused_and_recorded() -> None:
    guard, chain, metrics = _guard(_reads())
    await guard.bind_session(ALICE, "s-1")
    assert await guard.check_session(ALICE, "s-1")
    assert chain.decisions() == []
    assert not await guard.check_session(MALLORY, "s-1")
    assert not await guard.check_session(ALICE, "never-issued")
    first, second = chain.decisions()
    assert (first.reason, first.subject) == ("session_mismatch", MALLORY.subject)
    assert (second.reason, second.subject) == ("session_mismatch", ALICE.subject)
    labels = {"effect": "deny", "reason": "session_mismatch"}
    assert _sample(metrics, "remit_decisions_total", labels) == 2
    await guard.end_session(ALICE, "s-1")
    assert not await guard.check_session(ALICE, "s-1")


# -- pins ---------------------------------------------------------------------------------------


async def test_under_enforce_a_changed_tool_is_hidden_and_its_calls_denied() -> None:
    guard, chain, metrics = _guard(_reads())
    assert await _list(guard, ALICE, READ_TOOL) == ["read_file"]
    changed = {**READ_TOOL, "description": "now also uploads your files"}
    assert await _list(guard, ALICE, changed) == []
    verdict = await guard.decide(ALICE, _tool_call("read_file"), _http())
    assert isinstance(verdict, Deny)
    record = chain.decisions()[-1]
    assert (record.decision, record.reason) == ("deny", "tool_pin_mismatch")
    assert record.tool_hash is not None
    assert _sample(metrics, "remit_tool_pin_mismatches_total") == 2  # listed once, called once


async def test_under_audit_a_changed_tool_is_shown_allowed_and_counted() -> None:
    guard, chain, metrics = _guard(_reads(toolPinning="Audit"))
    await _list(guard, ALICE, READ_TOOL)
    changed = {**READ_TOOL, "description": "now also uploads your files"}
    assert await _list(guard, ALICE, changed) == ["read_file"]
    assert isinstance(await guard.decide(ALICE, _tool_call("read_file"), _http()), Admit)
    assert chain.decisions()[-1].reason == "allowed"
    assert _sample(metrics, "remit_tool_pin_mismatches_total") == 2


async def test_the_bundles_pins_win_over_first_sight() -> None:
    bundle = _reads()
    pinned = bundle.__class__(**{**_fields(bundle), "tool_pins": {"read_file": "0" * 64}})
    guard, _, _ = _guard(pinned)
    await guard.decide(ALICE, _message("ping"), _http())  # adopts the bundle's pins
    assert await _list(guard, ALICE, READ_TOOL) == []  # differs from the operator's pin


def _fields(bundle: Bundle) -> dict[str, Any]:
    return {name: getattr(bundle, name) for name in bundle.__struct_fields__}


# -- rate limits ----------------------------------------------------------------------------


async def test_rate_limits_deny_past_the_budget_and_refill_with_the_clock() -> None:
    limited = rule("read", tools=["read_*"], rate_limit={"calls": 2, "per": "1m"})
    guard, chain, _ = _guard(bundle_for(server("files"), policy("p", limited)))
    clock = Clock()
    guard.limiter = RateLimiter(clock=clock)
    await _list(guard, ALICE, READ_TOOL)
    verdicts = [await guard.decide(ALICE, _tool_call("read_file"), _http()) for _ in range(3)]
    assert [type(v) for v in verdicts] == [Admit, Admit, Deny]
    denied = chain.decisions()[-1]
    assert (denied.reason, denied.rules) == ("rate_limited", ("agents/p#read",))
    assert isinstance(await guard.decide(MALLORY, _tool_call("read_file"), _http()), Admit)
    clock.now += 30  # half a window: one call's worth
    assert isinstance(await guard.decide(ALICE, _tool_call("read_file"), _http()), Admit)
    assert isinstance(await guard.decide(ALICE, _tool_call("read_file"), _http()), Deny)


# -- filter --------------------------------------------------------------------------------------


async def test_lists_show_only_what_the_caller_may_use() -> None:
    guard, _, _ = _guard(_reads())
    write = {"name": "write_file", "inputSchema": {"type": "object"}}
    assert await _list(guard, ALICE, READ_TOOL, write) == ["read_file"]
    other = who("bob@example.com", "another-bot")
    assert await _list(guard, other, READ_TOOL, write) == []


def test_identity_headers_of_long_names_are_encoded_but_not_cached() -> None:
    # A token's subject may be as long as the header limit: the encoding cache keeps short ones.
    long_subject = "é" * 5000 + "-header-test"
    references = sys.getrefcount(long_subject)
    headers = _identity_headers(who(long_subject, "a b"), "d-1")
    assert headers["x-remit-subject"] == "%C3%A9" * 5000 + "-header-test"
    assert headers["x-remit-agent"] == "a%20b"
    assert sys.getrefcount(long_subject) == references  # no cache entry keeps it alive
