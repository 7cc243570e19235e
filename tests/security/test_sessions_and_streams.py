"""Sessions and streams against a hostile session-based upstream: a real gateway process.

What one caller may hold (sessions, GET streams) is bounded per caller, so one caller cannot
evict another's session binding nor hold every request slot; a GET stream ends cleanly at its
lifetime and a notifications-only POST's event stream at its idle timeout, each recorded (a
GET stream whose client leaves: ``cancelled``); the upstream cannot issue a malformed session
id nor move a session to another caller; server requests and log messages reach only the
session they arrive on (a session-less stream's are dropped and recorded); a client response
must answer a request the upstream sent to that session. The limits are set low (``ENV``) so
each is reached in a few requests.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from remit.demo.issuer import Issuer
from tests.security.hostile_stack import AGENT, server_yaml
from tests.security.session_upstream import FIXED_SESSION, MODE_HEADER
from tests.support import stack
from tests.support.mcp_wire import LEGACY
from tests.support.ports import free_port

SESSIONS_PER_CALLER = 3
STREAMS_PER_CALLER = 2
LIFETIME = 2.5  # above the policy's read timeout (2 s), so a broken event fails first
NOTICE_TIMEOUT = 1.0
ENV = {
    "REMIT_MAX_SESSIONS_PER_IDENTITY": str(SESSIONS_PER_CALLER),
    "REMIT_MAX_STREAMS_PER_IDENTITY": str(STREAMS_PER_CALLER),
    "REMIT_STREAM_LIFETIME_SECONDS": str(LIFETIME),
    "REMIT_NOTICE_STREAM_TIMEOUT_SECONDS": str(NOTICE_TIMEOUT),
}


@dataclass
class Stack:
    gateway: stack.GatewayProcess
    upstream: stack.Upstream
    tokens: dict[str, str]

    def headers(self, who: str, session: str | None = None, **extra: str) -> dict[str, str]:
        sent = {
            "authorization": f"Bearer {self.tokens[who]}",
            "accept": "application/json, text/event-stream",
            "mcp-protocol-version": LEGACY,
            **extra,
        }
        if session is not None:
            sent["mcp-session-id"] = session
        return sent

    def initialize(self, who: str, mode: str = "") -> httpx.Response:
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": LEGACY,
                "capabilities": {"sampling": {}, "elicitation": {}},
                "clientInfo": {"name": "t", "version": "0"},
            },
        }
        headers = self.headers(who, **({MODE_HEADER: mode} if mode else {}))
        return httpx.post(self.gateway.url, json=body, headers=headers, timeout=10)

    def session(self, who: str) -> str:
        answer = self.initialize(who)
        assert answer.status_code == 200, answer.text
        return answer.headers["mcp-session-id"]

    def post(self, who: str, session: str | None, body: Any, **extra: str) -> httpx.Response:
        headers = self.headers(who, session, **extra)
        return httpx.post(self.gateway.url, json=body, headers=headers, timeout=10)

    def new_records(self, before: int) -> list[dict[str, Any]]:
        return self.gateway.records()[before:]


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("sessions")
    port = free_port()
    argv = [sys.executable, "-m", "tests.security.session_upstream", "--port", str(port)]
    process = stack.Process.start(f"sessions-{port}", argv, logs, stdout=subprocess.DEVNULL)
    try:
        process.wait_for_port(port)
        upstream = stack.Upstream(process, port)
        with Issuer() as issuer:
            ports = stack.reserve_gateway_ports()
            audience = stack.audience_for(ports[0])
            policy = stack.write_policy_dir(
                logs / "policy", server_yaml(issuer.issuer, audience), examples=False
            )
            with stack.gateway(
                logs,
                upstream_url=upstream.url,
                ports=ports,
                policy_dir=policy,
                server="hostile",
                audit_file=logs / "audit.jsonl",
                env=ENV,
            ) as gateway:
                tokens = {
                    who: issuer.mint(who, agent=AGENT, audience=audience, scopes=["mcp:tools"])
                    for who in ("alice", "bob", "carol", "dave")
                }
                yield Stack(gateway, upstream, tokens)
    finally:
        process.stop()


def _events(stream: httpx.Response, count: int) -> list[dict[str, Any]]:
    """The next ``count`` JSON-RPC messages of an open event stream."""
    found: list[dict[str, Any]] = []
    for line in stream.iter_lines():
        if line.startswith("data:") and line[5:].strip():
            found.append(orjson.loads(line[5:]))
            if len(found) == count:
                break
    return found


def _eventually(sessions: Stack, before: int, wanted: Any) -> list[dict[str, Any]]:
    """The new records ``wanted`` accepts, once there are any: a stream's record is written
    just after its last byte, which the client may read first."""
    deadline = time.monotonic() + 5
    while True:
        found = [r for r in sessions.new_records(before) if wanted(r)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


# -- sessions ----------------------------------------------------------------------------


def test_one_caller_cannot_evict_another_callers_session(sessions: Stack) -> None:
    bobs = sessions.session("bob")
    held = [sessions.session("carol") for _ in range(SESSIONS_PER_CALLER)]
    before, forwarded = len(sessions.gateway.records()), sessions.upstream.count()
    refused = sessions.initialize("carol")
    assert refused.status_code == 200  # a JSON-RPC error: the quota is a policy answer
    assert "mcp-session-id" not in refused.headers
    error = refused.json()["error"]
    assert error["data"]["reason"] == "session_quota"
    assert f"holds {SESSIONS_PER_CALLER} sessions, its quota" in error["message"]
    assert sessions.upstream.count() == forwarded  # the upstream never saw the initialize
    (record,) = [r for r in sessions.new_records(before) if r.get("type") == "decision"]
    assert (record["decision"], record["reason"], record["subject"]) == (
        "deny",
        "session_quota",
        "carol",
    )
    ping = {"jsonrpc": "2.0", "id": 7, "method": "ping"}
    assert sessions.post("bob", bobs, ping).status_code == 200  # Bob's binding is intact
    for session in held:  # and Carol's own three still work
        assert sessions.post("carol", session, ping).status_code == 200
    ended = httpx.delete(sessions.gateway.url, headers=sessions.headers("carol", held[0]))
    assert ended.status_code == 200
    assert "mcp-session-id" in sessions.initialize("carol").headers  # room again


@pytest.mark.parametrize("mode", ["bad_space", "bad_long"])
def test_an_invalid_session_id_from_the_upstream_is_refused_and_recorded(
    sessions: Stack, mode: str
) -> None:
    before = len(sessions.gateway.records())
    answer = sessions.initialize("dave", mode)
    assert answer.status_code == 502
    assert "mcp-session-id" not in answer.headers
    assert answer.json()["error"]["data"]["reason"] == "invalid_session_id"
    outcomes = [r for r in sessions.new_records(before) if r.get("type") == "outcome"]
    assert [o["error"].split(":")[0] for o in outcomes] == ["invalid_session_id"]


def test_the_upstream_cannot_move_a_session_to_another_caller(sessions: Stack) -> None:
    first = sessions.initialize("alice", "fixed")
    assert first.headers["mcp-session-id"] == FIXED_SESSION
    before = len(sessions.gateway.records())
    sessions.initialize("dave", "fixed")  # the upstream hands Dave Alice's session id
    moved = [r for r in sessions.new_records(before) if r.get("reason") == "session_mismatch"]
    assert [(r["subject"], r["message"]) for r in moved] == [
        ("dave", "the upstream issued a session id bound to another identity; not rebound")
    ]
    ping = {"jsonrpc": "2.0", "id": 8, "method": "ping"}
    assert sessions.post("dave", FIXED_SESSION, ping).status_code == 404
    assert sessions.post("alice", FIXED_SESSION, ping).status_code == 200


# -- streams -----------------------------------------------------------------------------


def test_server_requests_reach_only_the_session_they_arrive_on(sessions: Stack) -> None:
    session = sessions.session("alice")
    headers = sessions.headers("alice", session)
    with httpx.stream("GET", sessions.gateway.url, headers=headers, timeout=10) as stream:
        assert stream.status_code == 200
        seen = _events(stream, 4)
    assert [m.get("method") for m in seen] == [
        "sampling/createMessage",
        "elicitation/create",
        "notifications/message",
        "notifications/tools/list_changed",
    ]
    # Alice answers the sampling request sent to her session: relayed.
    forwarded = sessions.upstream.count()
    answer = {"jsonrpc": "2.0", "id": f"sample-{session}", "result": {"content": []}}
    assert sessions.post("alice", session, answer).status_code == 202
    assert sessions.upstream.count() == forwarded + 1
    # The same answer twice, an id never sent, or Bob answering in his session: refused.
    bob = sessions.session("bob")
    before, forwarded = len(sessions.gateway.records()), sessions.upstream.count()
    for who, where, id_ in [
        ("alice", session, f"sample-{session}"),
        ("alice", session, "never-sent"),
        ("bob", bob, f"elicit-{session}"),
    ]:
        body = {"jsonrpc": "2.0", "id": id_, "result": {"action": "accept"}}
        assert sessions.post(who, where, body).status_code == 403
    assert sessions.upstream.count() == forwarded
    refused = [r for r in sessions.new_records(before) if r.get("type") == "decision"]
    assert [(r["subject"], r["reason"]) for r in refused] == [
        ("alice", "unmatched_response"),
        ("alice", "unmatched_response"),
        ("bob", "unmatched_response"),
    ]


def test_a_stream_without_a_session_gets_no_server_requests_and_the_drop_is_recorded(
    sessions: Stack,
) -> None:
    before = len(sessions.gateway.records())
    headers = sessions.headers("bob")
    with httpx.stream("GET", sessions.gateway.url, headers=headers, timeout=10) as stream:
        assert stream.status_code == 200
        seen = _events(stream, 1)  # only the list change: it speaks to no one in particular
    assert [m.get("method") for m in seen] == ["notifications/tools/list_changed"]
    dropped = [r for r in sessions.new_records(before) if r.get("reason") == "unattributed_message"]
    assert sorted(r["method"] for r in dropped) == [
        "elicitation/create",
        "notifications/message",
        "sampling/createMessage",
    ]
    assert all(r["subject"] == "bob" for r in dropped)


def test_streams_are_bounded_per_caller_and_end_cleanly_at_their_lifetime(
    sessions: Stack,
) -> None:
    session = sessions.session("bob")
    headers = sessions.headers("bob", session)
    opened_at = time.monotonic()
    with httpx.Client(timeout=10) as client:
        opened = [
            client.send(client.build_request("GET", sessions.gateway.url, headers=headers),
                        stream=True)
            for _ in range(STREAMS_PER_CALLER)
        ]  # fmt: skip
        try:
            assert [s.status_code for s in opened] == [200] * STREAMS_PER_CALLER
            before = len(sessions.gateway.records())
            third = client.get(sessions.gateway.url, headers=headers)
            assert third.status_code == 429
            assert third.json()["error"]["data"]["reason"] == "stream_quota"
            (record,) = sessions.new_records(before)
            assert (record["decision"], record["reason"]) == ("deny", "stream_quota")
            # Alice's streams are her own quota: Bob's do not count against her.
            alice = sessions.headers("alice", sessions.session("alice"))
            with client.stream("GET", sessions.gateway.url, headers=alice) as other:
                assert other.status_code == 200
            body = b"".join(opened[0].iter_bytes())  # ends by itself: the lifetime
            assert LIFETIME <= time.monotonic() - opened_at < LIFETIME + 5
            assert b"error" not in body  # a clean end, no error event
        finally:
            for stream in opened:
                stream.close()
    closed = _eventually(sessions, 0, lambda r: r.get("outcome") == "closed")
    assert closed
    assert closed[0]["error"].startswith("stream_closed: the stream reached its lifetime")
    # Both streams have ended: Bob may open streams again.
    with httpx.stream("GET", sessions.gateway.url, headers=headers, timeout=10) as again:
        assert again.status_code == 200


def test_a_get_stream_whose_client_leaves_is_recorded_cancelled(sessions: Stack) -> None:
    before = len(sessions.gateway.records())
    with httpx.stream("GET", sessions.gateway.url, headers=sessions.headers("alice"),
                      timeout=10) as stream:  # fmt: skip
        assert stream.status_code == 200
        assert _events(stream, 1)  # the stream is relaying; the upstream keeps it open: leave
    (outcome,) = _eventually(sessions, before, lambda r: r.get("type") == "outcome")
    assert (outcome["outcome"], outcome["error"]) == ("cancelled", "client disconnected")


def test_a_get_stream_the_upstream_breaks_is_recorded_as_failed_not_ok(sessions: Stack) -> None:
    session = sessions.session("dave")
    before = len(sessions.gateway.records())
    headers = sessions.headers("dave", session, **{MODE_HEADER: "half_event"})
    with httpx.stream("GET", sessions.gateway.url, headers=headers, timeout=30) as stream:
        assert stream.status_code == 200
        b"".join(stream.iter_bytes())  # ends at the read timeout (READ_TIMEOUT in the policy)
    (outcome,) = _eventually(sessions, before, lambda r: r.get("type") == "outcome")
    assert outcome["outcome"] == "upstream_error"
    assert outcome["error"].startswith("upstream_timeout: ")


def test_a_notifications_only_post_answered_with_a_stream_is_closed_when_idle(
    sessions: Stack,
) -> None:
    session = sessions.session("dave")
    before = len(sessions.gateway.records())
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    started = time.monotonic()
    answer = sessions.post("dave", session, note, **{MODE_HEADER: "sse_notice"})
    assert answer.status_code == 200
    assert NOTICE_TIMEOUT <= time.monotonic() - started < NOTICE_TIMEOUT + 5
    (record,) = _eventually(sessions, before, lambda r: r.get("type") == "decision")
    assert (record["decision"], record["reason"], record["subject"]) == (
        "deny",
        "stream_closed",
        "dave",
    )
    assert f"no event for {NOTICE_TIMEOUT:g}s" in record["message"]


def test_the_log_of_the_whole_run_verifies(sessions: Stack) -> None:
    assert sessions.gateway.audit_file is not None
    verified = subprocess.run(
        [stack.REMIT, "audit", "verify", str(sessions.gateway.audit_file)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
