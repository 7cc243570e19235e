"""Hostile clients against a real ``remit gateway`` process, a recording MCP server and real
signed tokens, over loopback sockets. One class of attack per section (issue 9's numbering):

3. calls without an ``id`` (``tools/call`` as a notification) are decided and recorded;
6. anonymous floods and huge batches cannot amplify into the decision log;
7. SSE event ids are bound to their caller; streams are recorded; replays are filtered;
8. duplicate or misspelled identity headers are refused; ``X-Remit-*`` never passes;
9. a batch is decided whole, leaving no allow record for a call that was not forwarded;
10. client responses are recorded; routing headers on them, and ``"method": null``, are refused;

and, last, the accounting check over everything the run did: every request that reached the
server had one allow before it and one outcome after it, nothing denied reached it, the refusal
counts add up, and ``remit audit verify`` passes. The recording server notes the log's size at
each arrival, which is what orders records against arrivals.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from remit.demo.issuer import Issuer
from tests.support import accounting, mcp_wire, stack
from tests.support.stack import GatewayProcess, Upstream, metric_value

ALICE = "alice@example.com"
MALLORY = "mallory@example.com"
BOT = "support-bot"
MAX_BATCH = 8
LEGACY = "2025-11-25"
ACCEPT = "application/json, text/event-stream"
SCAN_POLICY = """\
apiVersion: remit.dev/v1alpha1
kind: AgentPolicy
metadata: {name: hostile-extras, namespace: agents}
spec:
  servers: [files]
  agents: [support-bot]
  rules:
  - name: scan
    effect: Allow
    tools: [scan_files]
"""


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile-clients")


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with Issuer() as running:
        yield running


@pytest.fixture(scope="module")
def ports() -> tuple[int, int]:
    return stack.reserve_gateway_ports()


@pytest.fixture(scope="module")
def audit(logs: Path) -> Path:
    return logs / "audit.jsonl"


@pytest.fixture(scope="module")
def upstream(logs: Path, audit: Path) -> Iterator[Upstream]:
    with stack.upstream(logs, audit_file=audit) as running:
        yield running


@pytest.fixture(scope="module")
def gateway(
    logs: Path, issuer: Issuer, upstream: Upstream, ports: tuple[int, int], audit: Path
) -> Iterator[GatewayProcess]:
    policy = stack.write_policy_dir(
        logs / "policy",
        stack.server_yaml(issuer.issuer, stack.audience_for(ports[0])),
        extra={"scan.yaml": SCAN_POLICY},
    )
    env = {"REMIT_REFUSAL_INTERVAL": "3600", "REMIT_MAX_BATCH": str(MAX_BATCH)}
    with stack.gateway(
        logs, upstream_url=upstream.url, ports=ports, policy_dir=policy, audit_file=audit, env=env
    ) as running:
        yield running


Mint = Callable[..., str]


@pytest.fixture(scope="module")
def mint(issuer: Issuer, ports: tuple[int, int]) -> Mint:
    def make(subject: str = ALICE, **options: Any) -> str:
        options.setdefault("agent", BOT)
        options.setdefault("audience", stack.audience_for(ports[0]))
        options.setdefault("scopes", ("mcp:tools",))
        return issuer.mint(subject, **options)

    return make


# -- helpers ---------------------------------------------------------------------------------


def rpc(method: str, params: dict[str, Any] | None = None, id_: int | None = 1) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params or {}}
    if id_ is not None:
        message["id"] = id_
    return message


def call(tool: str, id_: int | None = 1, **arguments: Any) -> dict[str, Any]:
    return rpc("tools/call", {"name": tool, "arguments": arguments}, id_)


def post(
    gateway: GatewayProcess,
    body: Any,
    token: str | None,
    headers: list[tuple[str, str]] | None = None,
    **options: Any,
) -> httpx.Response:
    sent = [("accept", ACCEPT), ("content-type", "application/json")]
    if token is not None:
        sent.append(("authorization", f"Bearer {token}"))
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(gateway.url, content=data, headers=[*sent, *(headers or [])], **options)


def session_of(gateway: GatewayProcess, token: str) -> str:
    answer = mcp_wire.initialize(gateway.url, token)
    assert answer.status_code == 200, answer.text
    return answer.headers["mcp-session-id"]


def in_session(session: str) -> list[tuple[str, str]]:
    return [("mcp-session-id", session), ("mcp-protocol-version", LEGACY)]


def decisions(gateway: GatewayProcess) -> list[dict[str, Any]]:
    return [r for r in gateway.records() if r.get("type") == "decision"]


def new_records(gateway: GatewayProcess, before: int) -> list[dict[str, Any]]:
    return decisions(gateway)[before:]


def outcome_of(gateway: GatewayProcess, decision_id: str) -> list[dict[str, Any]]:
    return [r for r in gateway.records() if r.get("decisionId") == decision_id]


def sse_events(text: str) -> list[dict[str, str]]:
    """Events of an SSE body: each a dict of its last ``id`` and joined ``data``."""
    events = []
    for block in text.replace("\r\n", "\n").replace("\r", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                fields["data"] = fields["data"] + "\n" + value if "data" in fields else value
            elif name == "id":
                fields["id"] = value
        if fields:
            events.append(fields)
    return events


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll an observable condition (bounded); fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def metric(gateway: GatewayProcess, name: str, **labels: str) -> float:
    return metric_value(gateway.metrics(), name, **labels)


# -- 3. calls without an id ------------------------------------------------------------------


def test_a_denied_tools_call_sent_as_a_notification_is_recorded_and_not_forwarded(
    gateway: GatewayProcess, upstream: Upstream, mint: Mint
) -> None:
    token = mint()
    session = session_of(gateway, token)
    forwarded, before = upstream.count(), len(decisions(gateway))
    delete = call("delete_file", None, path="/data/alice/notes.txt")
    answer = post(gateway, delete, token, in_session(session))
    assert answer.status_code == 403
    assert answer.json()["id"] is None
    assert answer.json()["error"]["message"] == "Unknown tool: delete_file"  # hidden tool
    assert upstream.count() == forwarded
    (record,) = new_records(gateway, before)
    assert (record["method"], record["tool"], record["decision"], record["reason"]) == (
        "tools/call",
        "delete_file",
        "deny",
        "denied_by_rule",
    )
    assert answer.json()["error"]["data"]["decisionId"] == record["id"]


def test_an_allowed_tools_call_sent_as_a_notification_has_a_decision_and_an_outcome(
    gateway: GatewayProcess, upstream: Upstream, mint: Mint
) -> None:
    token = mint()
    session = session_of(gateway, token)
    before = len(decisions(gateway))
    read = call("read_file", None, path="/data/alice/notes.txt")
    answer = post(gateway, read, token, in_session(session))
    assert answer.status_code == 202
    (record,) = new_records(gateway, before)
    assert (record["method"], record["tool"], record["decision"]) == (
        "tools/call",
        "read_file",
        "allow",
    )
    (outcome,) = outcome_of(gateway, record["id"])
    assert outcome["status"] == 202
    (arrived,) = [
        r
        for r in upstream.calls("tools/call")
        if r["headers"].get("x-remit-decision") == record["id"]
    ]
    assert "id" not in arrived["rpc"]


def test_protocol_notifications_pass_without_a_decision(
    gateway: GatewayProcess, upstream: Upstream, mint: Mint
) -> None:
    token = mint()
    session = session_of(gateway, token)
    forwarded, before = upstream.count(), len(decisions(gateway))
    initialized = rpc("notifications/initialized", id_=None)
    answer = post(gateway, initialized, token, in_session(session))
    assert answer.status_code == 202
    assert upstream.count() == forwarded + 1
    assert new_records(gateway, before) == []


def test_a_notification_the_revision_does_not_define_for_clients_is_decided(
    gateway: GatewayProcess, upstream: Upstream, mint: Mint
) -> None:
    before = len(decisions(gateway))
    progress = rpc("notifications/progress", {"progressToken": "x", "progress": 1}, None)
    headers = [("mcp-protocol-version", mcp_wire.MODERN)]  # 2026-07-28 clients only cancel
    post(gateway, progress, mint(), headers)
    (record,) = new_records(gateway, before)
    assert record["method"] == "notifications/progress"
    assert outcome_of(gateway, record["id"]) != []


def test_a_notification_whose_routing_headers_disagree_with_its_body_is_refused(
    gateway: GatewayProcess, upstream: Upstream, mint: Mint
) -> None:
    """A server routing by ``Mcp-Method`` must not see a call the gateway decided as another."""
    forwarded = upstream.count()
    cancel = rpc("notifications/cancelled", {"requestId": 1}, None)
    headers = [
        ("mcp-protocol-version", mcp_wire.MODERN),
        ("mcp-method", "tools/call"),
        ("mcp-name", "delete_file"),
    ]
    answer = post(gateway, cancel, mint(), headers)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == -32020
    assert upstream.count() == forwarded


@pytest.fixture(scope="module")
def unwritable(
    logs: Path, issuer: Issuer, upstream: Upstream
) -> Iterator[tuple[GatewayProcess, str]]:
    """A gateway whose decision log stops accepting writes after ~600 bytes (a full disk)."""
    with stack.standalone_gateway(
        logs,
        issuer,
        upstream_url=upstream.url,
        audit_file=logs / "full-audit.jsonl",
        policy_name="full-policy",
        subject=ALICE,
        agent=BOT,
        preexec_fn=stack.file_size_limit(600),
    ) as running:
        yield running


def test_a_notification_call_is_refused_when_its_decision_cannot_be_recorded(
    unwritable: tuple[GatewayProcess, str], upstream: Upstream
) -> None:
    gateway, token = unwritable
    forwarded = upstream.count()
    read = call("read_file", None, path="/data/alice/notes.txt")
    answer = post(gateway, read, token)
    assert answer.status_code == 500
    assert "could not be recorded" in answer.json()["error"]["message"]
    assert upstream.count() == forwarded


# -- 6. audit amplification ------------------------------------------------------------------


def test_an_anonymous_flood_adds_at_most_one_record_per_source(
    gateway: GatewayProcess, upstream: Upstream, audit: Path
) -> None:
    flood = 300
    forwarded, size = upstream.count(), audit.stat().st_size
    before = len([r for r in decisions(gateway) if r["reason"] == "unauthenticated"])
    denied = metric(gateway, "remit_decisions_total", effect="deny", reason="unauthenticated")
    folded = metric(gateway, "remit_refusals_aggregated_total", reason="unauthenticated")
    with httpx.Client() as client:
        for _ in range(flood):
            answer = client.post(
                gateway.url,
                json=call("read_file", path="/x"),
                headers={"authorization": "Bearer not.a.jwt", "accept": ACCEPT},
            )
            assert answer.status_code == 401
    records = [r for r in decisions(gateway) if r["reason"] == "unauthenticated"][before:]
    assert len(records) <= 1  # the window's first, unless an earlier test opened it
    assert audit.stat().st_size - size < 2048  # was ~630 bytes per refusal
    assert upstream.count() == forwarded
    counted = metric(gateway, "remit_decisions_total", effect="deny", reason="unauthenticated")
    aggregated = metric(gateway, "remit_refusals_aggregated_total", reason="unauthenticated")
    assert counted - denied == flood
    assert (aggregated - folded) + len(records) == flood


def test_refusals_from_another_source_get_their_own_record(gateway: GatewayProcess) -> None:
    before = len(decisions(gateway))
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(transport=transport) as client:
        for _ in range(3):
            answer = client.post(gateway.url, json=call("read_file", path="/x"))
            assert answer.status_code == 401
    records = [r for r in new_records(gateway, before) if r.get("source") == "127.0.0.2"]
    assert len(records) == 1
    assert records[0]["reason"] == "unauthenticated"


def test_a_megabyte_batch_of_pings_is_refused_with_one_record(
    gateway: GatewayProcess, upstream: Upstream, audit: Path, mint: Mint
) -> None:
    pings = [rpc("ping", id_=i) for i in range(26_000)]
    body = orjson.dumps(pings)
    assert len(body) > 1024 * 1024
    forwarded, size, before = upstream.count(), audit.stat().st_size, len(decisions(gateway))
    answer = post(gateway, body, mint())
    assert answer.status_code == 400
    assert f"exceeds the limit of {MAX_BATCH}" in answer.json()["error"]["message"]
    (record,) = new_records(gateway, before)
    assert (record["reason"], record["subject"]) == ("batch_too_large", ALICE)
    assert audit.stat().st_size - size < 2048  # was 19.5 MiB of records
    assert upstream.count() == forwarded


# -- 7. event ids, streams and replays -------------------------------------------------------


@pytest.fixture(scope="module")
def scanned(gateway: GatewayProcess, mint: Mint) -> dict[str, Any]:
    """Alice's scan_files call with progress, in her session: the events she received."""
    token = mint()
    session = session_of(gateway, token)
    meta = {"progressToken": f"scan-{uuid.uuid4().hex[:8]}"}
    scan = rpc("tools/call", {"name": "scan_files", "arguments": {"steps": 3}, "_meta": meta}, 7)
    answer = post(gateway, scan, token, in_session(session))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/event-stream")
    return {"token": token, "session": session, "events": sse_events(answer.text)}


def test_the_caller_sees_sealed_event_ids_and_their_own_progress(
    scanned: dict[str, Any], upstream: Upstream
) -> None:
    events = scanned["events"]
    progress = [e for e in events if "notifications/progress" in e.get("data", "")]
    assert len(progress) == 3
    assert any('"id":7' in e.get("data", "") for e in events)  # the result
    ids = [e["id"] for e in events if e.get("id")]
    assert ids
    for event_id in ids:
        mac, _, upstream_id = event_id.partition(".")
        assert len(mac) == 22
        assert upstream_id


def test_another_callers_event_id_is_refused_recorded_and_never_forwarded(
    gateway: GatewayProcess, upstream: Upstream, mint: Mint, scanned: dict[str, Any]
) -> None:
    token = mint(MALLORY)
    session = session_of(gateway, token)
    stolen = next(e["id"] for e in scanned["events"] if e.get("id"))
    raw = stolen.partition(".")[2]
    before = len(decisions(gateway))
    streams = len([r for r in upstream.requests() if r["method"] == "GET"])
    for presented in (stolen, raw):
        headers = {
            "authorization": f"Bearer {token}",
            "accept": "text/event-stream",
            "mcp-session-id": session,
            "last-event-id": presented,
        }
        answer = httpx.get(gateway.url, headers=headers, timeout=10)
        assert answer.status_code == 400
        assert "Last-Event-ID was not issued to this caller" in answer.json()["error"]["message"]
    records = new_records(gateway, before)
    assert [r["reason"] for r in records] == ["event_id_mismatch"] * 2
    assert {r["subject"] for r in records} == {MALLORY}
    assert len([r for r in upstream.requests() if r["method"] == "GET"]) == streams


def test_a_resumed_stream_is_recorded_and_replays_only_what_the_caller_may_see(
    gateway: GatewayProcess, upstream: Upstream, scanned: dict[str, Any]
) -> None:
    events = scanned["events"]
    first = next(i for i, e in enumerate(events) if "notifications/progress" in e.get("data", ""))
    later = [e for e in events[first + 1 :] if "notifications/progress" in e.get("data", "")]
    dropped = metric(gateway, "remit_server_messages_dropped_total", reason="progress_not_theirs")
    before = len(decisions(gateway))
    headers = {
        "authorization": f"Bearer {scanned['token']}",
        "accept": "text/event-stream",
        "mcp-session-id": scanned["session"],
        "mcp-protocol-version": LEGACY,
        "last-event-id": events[first]["id"],
    }
    received = b""
    with httpx.stream("GET", gateway.url, headers=headers, timeout=10) as stream:
        assert stream.status_code == 200
        wait_until(
            lambda: (
                metric(gateway, "remit_server_messages_dropped_total", reason="progress_not_theirs")
                >= dropped + len(later)
            ),
            "the replayed progress notifications to be judged",
        )
        # The request is over, so its progress is no longer anyone's: nothing was relayed.
        for chunk in stream.iter_bytes():
            received += chunk
            break
    assert b"notifications/progress" not in received
    (record,) = new_records(gateway, before)
    assert (record["method"], record["decision"], record["subject"]) == ("GET", "allow", ALICE)
    (arrived,) = [
        r for r in upstream.requests() if r["headers"].get("x-remit-decision") == record["id"]
    ]
    assert arrived["headers"]["last-event-id"] == events[first]["id"].partition(".")[2]
    wait_until(lambda: outcome_of(gateway, record["id"]) != [], "the stream's outcome record")


# -- 8. duplicate and misspelled headers -----------------------------------------------------


HEADER_ATTACKS = {
    "two-authorization": lambda t, m: [("authorization", f"Bearer {m}")],
    "two-session-ids": lambda t, m: [("mcp-session-id", "a"), ("mcp-session-id", "b")],
    "underscore-session-id": lambda t, m: [("mcp_session_id", "a")],
    "two-methods": lambda t, m: [("mcp-method", "tools/call"), ("mcp-method", "tools/list")],
    "two-names": lambda t, m: [("mcp-name", "read_file"), ("mcp-name", "delete_file")],
    "two-versions": lambda t, m: [
        ("mcp-protocol-version", LEGACY),
        ("mcp-protocol-version", mcp_wire.MODERN),
    ],
    "two-last-event-ids": lambda t, m: [("last-event-id", "a"), ("last-event-id", "b")],
}


@pytest.mark.parametrize("attack", list(HEADER_ATTACKS))
def test_duplicate_identity_headers_are_refused_and_recorded(
    gateway: GatewayProcess, upstream: Upstream, mint: Mint, attack: str
) -> None:
    extra = HEADER_ATTACKS[attack](mint(), mint(MALLORY))
    forwarded = upstream.count()
    refused = metric(gateway, "remit_decisions_total", effect="deny", reason="duplicate_header")
    answer = post(gateway, call("read_file", path="/data/alice/notes.txt"), mint(), extra)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == -32600
    assert "header" in error["message"]
    assert upstream.count() == forwarded
    counted = metric(gateway, "remit_decisions_total", effect="deny", reason="duplicate_header")
    assert counted == refused + 1
    assert any(r["reason"] == "duplicate_header" for r in decisions(gateway))


def test_two_host_headers_are_refused(
    gateway: GatewayProcess, upstream: Upstream, mint: Mint
) -> None:
    """HTTP clients merge Host; a raw request can still send two (RFC 9112 says 400)."""
    forwarded = upstream.count()
    body = orjson.dumps(call("read_file", path="/data/alice/notes.txt"))
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: {stack.HOST}:{gateway.port}\r\nHost: evil.example\r\n"
        f"Authorization: Bearer {mint()}\r\nAccept: {ACCEPT}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    with socket.create_connection((stack.HOST, gateway.port), timeout=10) as raw:
        raw.sendall(head.encode() + body)
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
    status, _, rest = answer.partition(b"\r\n")
    assert status.startswith(b"HTTP/1.1 400")
    assert b"Host appears 2 times" in rest
    assert upstream.count() == forwarded


def test_client_remit_headers_never_reach_the_upstream_in_any_spelling(
    gateway: GatewayProcess, upstream: Upstream, mint: Mint
) -> None:
    path = f"/data/alice/{uuid.uuid4().hex}"
    forged = [
        ("x-remit-subject", "root@example.com"),
        ("X_Remit_Subject", "root@example.com"),
        ("x_remit_agent", "evil-bot"),
        ("X-REMIT-DECISION", "forged"),
        ("x-remit-extra", "forged"),
    ]
    token = mint()
    session = session_of(gateway, token)
    answer = post(gateway, call("list_files", prefix=path), token, [*forged, *in_session(session)])
    assert answer.status_code == 200, answer.text
    (arrived,) = [
        r
        for r in upstream.calls("tools/call")
        if r["rpc"]["params"].get("arguments", {}).get("prefix") == path
    ]
    remit = [
        (name, value)
        for name, value in arrived["rawHeaders"]
        if name.lower().replace("_", "-").startswith("x-remit-")
    ]
    assert sorted(name for name, _ in remit) == [
        "x-remit-agent",
        "x-remit-decision",
        "x-remit-subject",
    ]
    values = dict(remit)
    assert (values["x-remit-subject"], values["x-remit-agent"]) == (ALICE, BOT)
    assert gateway.record(values["x-remit-decision"])["decision"] == "allow"


# -- 9. batches ------------------------------------------------------------------------------


def test_a_batch_with_a_denied_call_leaves_no_allow_record(
    gateway: GatewayProcess, upstream: Upstream, mint: Mint
) -> None:
    forwarded, before = upstream.count(), len(decisions(gateway))
    batch = [
        call("read_file", 1, path="/data/alice/notes.txt"),
        call("delete_file", 2, path="/data/alice/notes.txt"),
    ]
    answer = post(gateway, batch, mint())
    assert answer.status_code == 400
    assert "denied" in answer.json()["error"]["message"]
    records = new_records(gateway, before)
    assert [(r["tool"], r["decision"], r["reason"]) for r in records] == [
        ("delete_file", "deny", "denied_by_rule"),
        ("read_file", "deny", "batch_rejected"),
    ]
    assert records[0]["id"] in records[1]["message"]
    assert upstream.count() == forwarded


def test_a_batch_with_duplicate_ids_is_refused_with_one_record(
    gateway: GatewayProcess, upstream: Upstream, mint: Mint
) -> None:
    forwarded, before = upstream.count(), len(decisions(gateway))
    batch = [call("read_file", 1, path="/a"), call("list_files", 1)]
    answer = post(gateway, batch, mint())
    assert answer.status_code == 400
    assert "appears twice" in answer.json()["error"]["message"]
    (record,) = new_records(gateway, before)
    assert (record["decision"], record["reason"]) == ("deny", "batch_rejected")
    assert upstream.count() == forwarded


def test_an_allowed_batch_has_one_allow_and_one_outcome_per_call(
    gateway: GatewayProcess, upstream: Upstream, mint: Mint
) -> None:
    token = mint()
    session = session_of(gateway, token)
    before = len(decisions(gateway))
    batch = [call("read_file", 1, path="/data/alice/notes.txt"), call("list_files", 2)]
    post(gateway, batch, token, in_session(session))
    records = new_records(gateway, before)
    assert [(r["tool"], r["decision"]) for r in records] == [
        ("read_file", "allow"),
        ("list_files", "allow"),
    ]
    for record in records:
        assert len(outcome_of(gateway, record["id"])) == 1


# -- 10. client responses -------------------------------------------------------------------


def response(id_: int | str, **result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "result": result}


ROUTER = "router@example.com"


def test_routing_headers_on_a_response_are_refused_recorded_and_not_forwarded(
    gateway: GatewayProcess, upstream: Upstream, mint: Mint
) -> None:
    """A server routing by ``Mcp-Method``/``Mcp-Name`` must not act on a body that names none."""
    token = mint(ROUTER)  # a caller of its own: no earlier refusal's window to count into
    session = session_of(gateway, token)
    forwarded, before = upstream.count(), len(decisions(gateway))
    headers = [
        *in_session(session),
        ("mcp-method", "tools/call"),
        ("mcp-name", "delete_everything"),
    ]
    answer = post(gateway, response("x", content=[]), token, headers)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == -32020
    assert upstream.count() == forwarded
    (record,) = new_records(gateway, before)
    assert "mcp-method header sent on a body of responses" in answer.json()["error"]["message"]
    assert (record["decision"], record["reason"], record["subject"]) == (
        "deny",
        "header_mismatch",  # its own reason code, not the generic bad request
        ROUTER,
    )


def test_a_null_method_beside_a_result_is_an_invalid_request_recorded_and_not_forwarded(
    gateway: GatewayProcess, upstream: Upstream, mint: Mint
) -> None:
    token = mint()
    session = session_of(gateway, token)
    forwarded, before = upstream.count(), len(decisions(gateway))
    body = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": None,
        "result": {},
        "params": {"name": "delete_everything"},
    }
    answer = post(gateway, body, token, in_session(session))
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == -32600
    assert upstream.count() == forwarded
    (record,) = new_records(gateway, before)
    assert (record["decision"], record["reason"]) == ("deny", "invalid_request")


def test_a_method_beside_a_result_is_an_invalid_request(
    gateway: GatewayProcess, upstream: Upstream, mint: Mint
) -> None:
    forwarded, before = upstream.count(), len(decisions(gateway))
    body = {**call("delete_file", 8, path="/x"), "result": {}}
    # A caller of its own: Alice's earlier bad requests opened an aggregation window for
    # invalid_request (refusals.py), which would count this one into its summary instead.
    answer = post(gateway, body, mint("method-beside-result@example.com"))
    assert answer.json()["error"]["code"] == -32600
    assert upstream.count() == forwarded
    assert [r["reason"] for r in new_records(gateway, before)] == ["invalid_request"]


def test_a_client_response_to_no_server_request_is_refused_recorded_and_not_forwarded(
    gateway: GatewayProcess, upstream: Upstream, mint: Mint
) -> None:
    """This server never asked for sampling: an answer to it would feed the upstream words
    nobody requested. (Answers to requests it did send are relayed: test_sessions_and_streams.)"""
    token = mint()
    session = session_of(gateway, token)
    forwarded, before = upstream.count(), len(decisions(gateway))
    answer = post(gateway, response("sampling-1", role="assistant"), token, in_session(session))
    assert answer.status_code == 403
    (record,) = new_records(gateway, before)
    assert (record["method"], record["tool"], record["decision"], record["reason"]) == (
        "response",
        "sampling-1",
        "deny",
        "unmatched_response",
    )
    assert upstream.count() == forwarded


def test_a_multi_megabyte_batch_of_responses_is_recorded_one_decision_per_response(
    gateway: GatewayProcess, upstream: Upstream, mint: Mint
) -> None:
    """The review's 3.2 MB batch (32 responses) is over this gateway's batch limit; one of the
    largest the limit admits (8 responses, 3.2 MB) is decided with one record per response
    (each denied: the server asked nothing, so none answers a request) and not forwarded."""
    token = mint("big-batch@example.com")  # a caller of its own (no open refusal window)
    session = session_of(gateway, token)
    forwarded, before = upstream.count(), len(decisions(gateway))
    padding = "x" * 100_000
    too_many = [response(i, text=padding) for i in range(32)]
    answer = post(gateway, too_many, token, in_session(session))
    assert answer.status_code == 400
    assert upstream.count() == forwarded
    (refused,) = new_records(gateway, before)
    assert refused["reason"] == "batch_too_large"
    before = len(decisions(gateway))
    batch = [response(i, text="x" * 400_000) for i in range(MAX_BATCH)]
    assert len(orjson.dumps(batch)) > 3_200_000
    answer = post(gateway, batch, token, in_session(session))
    assert answer.status_code == 400
    records = new_records(gateway, before)
    assert [(r["method"], r["tool"], r["decision"], r["reason"]) for r in records] == [
        ("response", str(i), "deny", "unmatched_response") for i in range(MAX_BATCH)
    ]
    assert upstream.count() == forwarded


# -- keep them closed: the accounting check --------------------------------------------------


def test_every_request_that_reached_the_upstream_is_accounted_for(
    gateway: GatewayProcess, upstream: Upstream, audit: Path, mint: Mint
) -> None:
    """Runs last: a mixed hostile burst, then the gateway stops (closing every aggregation
    window) and the whole run is checked."""
    token = mint()
    post(gateway, call("read_file", None, path="/data/alice/notes.txt"), token)
    post(gateway, [response("roots-1", roots=[]), response("roots-2", roots=[])], token)
    post(gateway, [call("read_file", 1, path="/x"), call("delete_file", 2, path="/x")], token)
    post(gateway, call("read_file", path="/x"), "forged")
    post(gateway, call("read_file", path="/x"), "forged")
    post(gateway, call("read_file", path="/x"), token, [("authorization", "Bearer x")])
    post(gateway, call("read_file", path="/x"), token, [("authorization", "Bearer x")])
    text = gateway.metrics()
    refused = {
        reason: metric_value(text, "remit_decisions_total", effect="deny", reason=reason)
        for reason in ("unauthenticated", "duplicate_header")
    }
    requests = upstream.requests()
    gateway.process.stop()  # writes the summaries of still-open aggregation windows
    summary = accounting.check(requests, audit, remit=stack.REMIT)
    assert summary.forwarded > 0
    assert summary.allows >= summary.units
    records = [r for r in gateway.records() if r.get("type") == "decision"]
    for reason, count in refused.items():
        recorded = sum(r.get("count", 1) for r in records if r["reason"] == reason)
        assert recorded == count, f"{reason}: {recorded} recorded for {count} refusals"
