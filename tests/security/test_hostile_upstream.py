"""A hostile MCP server behind a real gateway: nothing it sends escapes inspection.

Each class of the adversarial review (issue 9) has a test here that fails on the gateway as
it was: tool pinning bypassed through case-varied media types, an escaped ``id`` key and
CR-only SSE line endings (item 2); unbounded, stalled and deep responses (item 5 and the
output side of item 10); upstream error pages relayed verbatim (item 13). The module ends
with the accounting check over everything the hostile server received.
"""

from __future__ import annotations

import hashlib
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from remit.demo.issuer import Issuer
from remit.policy.decision import UPSTREAM_REASONS
from tests.dataplane.e2e_gateway.conftest import MODES, connect
from tests.security.hostile_stack import (
    MAX_RESPONSE_BYTES,
    READ_TIMEOUT,
    Hostile,
    hostile_gateway,
)
from tests.security.hostile_upstream import (
    KEPT,
    LEAKED,
    MODE_HEADER,
    ORIGINAL,
    POISONED,
    SECRET,
    SESSIONS,
    TOOLS,
    TRACEBACK,
)
from tests.support.mcp_wire import MODERN
from tests.support.stack import HOST

INSPECTED_MODES = [
    "case_json",
    "chunked_json",
    "case_sse",
    "escaped_id_sse",
    "cr_sse",
    "cr_split_sse",
]
# stalled_octets: headers, then nothing for a minute: refused at once, not awaited until the
# read timeout (which answered 504 upstream_timeout)
UNINSPECTABLE_MODES = ["odd_type", "no_type", "two_types", "gzip", "json_seq", "stalled_octets"]


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile-upstream")


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with Issuer() as running:
        yield running


@pytest.fixture(scope="module")
def hostile(logs: Path, issuer: Issuer) -> Iterator[Hostile]:
    with hostile_gateway(logs, issuer, "hostile") as running:
        listed = running.list_tools("normal")  # the gateway pins greet's original definition
        tools = {t["name"]: t["description"] for t in listed.json()["result"]["tools"]}
        assert tools["greet"] == ORIGINAL
        yield running


def messages(response: httpx.Response) -> list[dict[str, Any]]:
    """The JSON-RPC messages of a JSON or SSE answer."""
    if response.headers["content-type"].startswith("text/event-stream"):
        found = []
        for line in response.text.splitlines():
            if line.startswith("data: ") and line[6:].strip():
                found.append(orjson.loads(line[6:]))
        return found
    value = response.json()
    return value if isinstance(value, list) else [value]


def gateway_error(response: httpx.Response) -> dict[str, Any]:
    """The gateway's own JSON-RPC error in ``response`` (JSON body or SSE event)."""
    (message,) = messages(response)
    assert set(message) == {"jsonrpc", "id", "error"}
    error: dict[str, Any] = message["error"]
    return error


# -- item 2: tool pinning cannot be bypassed by the upstream's framing --------------------


@pytest.mark.parametrize("mode", INSPECTED_MODES)
def test_a_changed_tool_is_hidden_whatever_the_framing(hostile: Hostile, mode: str) -> None:
    response = hostile.list_tools(mode)
    assert response.status_code == 200
    assert POISONED not in response.text
    (message,) = messages(response)
    names = {tool["name"] for tool in message["result"]["tools"]}
    assert "greet" not in names  # hidden under Enforce: the listing was inspected
    assert set(TOOLS) <= names


def test_a_changed_tool_is_denied_after_any_bypass_attempt(hostile: Hostile) -> None:
    hostile.list_tools("cr_sse")
    response = hostile.call_tool("greet", {"name": "bob"})
    (message,) = messages(response)
    assert message["result"]["isError"] is True
    assert "tool_pin_mismatch" in message["result"]["content"][0]["text"]
    assert hostile.decision_ids("greet") == []  # never reached the upstream


@pytest.mark.parametrize("protocol", MODES)
@pytest.mark.parametrize("mode", ["case_sse", "escaped_id_sse", "cr_sse"])
async def test_the_sdk_client_never_sees_a_changed_tool(
    hostile: Hostile, mode: str, protocol: str
) -> None:
    async with connect(hostile.gateway.url, hostile.token, protocol, **{MODE_HEADER: mode}) as c:
        tools = (await c.list_tools()).tools
        result = await c.call_tool("greet", {"name": "bob"})
    assert POISONED not in {tool.description for tool in tools}
    assert "greet" not in {tool.name for tool in tools}
    assert result.is_error
    assert "tool_pin_mismatch" in result.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", UNINSPECTABLE_MODES)
def test_a_body_the_gateway_cannot_inspect_is_refused(hostile: Hostile, mode: str) -> None:
    response = hostile.list_tools(mode)
    assert response.status_code == 502
    assert POISONED not in response.text
    assert response.headers["content-type"] == "application/json"
    error = gateway_error(response)
    assert error["data"]["reason"] == "uninspectable_response"


def test_an_ambiguous_message_is_dropped_and_the_call_answered_by_the_gateway(
    hostile: Hostile,
) -> None:
    response = hostile.list_tools("ambiguous")  # a response that also carries a method
    assert response.status_code == 502
    assert POISONED not in response.text
    assert gateway_error(response)["data"]["reason"] == "no_response"


def test_refused_bodies_are_recorded_with_their_reason(hostile: Hostile) -> None:
    response = hostile.call_tool("plain_text")
    assert response.status_code == 502
    assert SECRET not in response.text
    outcome = hostile.outcome_of("plain_text")
    assert outcome["outcome"] == "upstream_error"
    assert outcome["error"].startswith("uninspectable_response: ")


def test_a_type_the_transport_does_not_define_is_refused_unread(hostile: Hostile) -> None:
    # An endless application/octet-stream body (type in any case, a quoted ";" in a
    # parameter): refused from its headers, the upstream hung up on, the refusal recorded.
    response = hostile.call_tool("endless_octets", id_=12)
    assert response.status_code == 502  # the upstream's protocol error, never a 500
    error = gateway_error(response)
    assert (error["code"], error["data"]["reason"]) == (-32000, "uninspectable_response")
    assert messages(response)[0]["id"] == 12
    outcome = hostile.outcome_of("endless_octets")
    assert outcome["outcome"] == "upstream_error"
    assert outcome["error"].startswith(
        "uninspectable_response: upstream sent a body of type application/octet-stream "
        "(the MCP transport allows only application/json or text/event-stream"
    )
    deadline = time.monotonic() + 5  # it would write for a minute: the gateway closed it
    while not any(
        r.get("cancelled") for r in hostile.upstream.requests() if r["rpc"] and
        (r["rpc"].get("params") or {}).get("name") == "endless_octets"
    ):  # fmt: skip
        assert time.monotonic() < deadline, "the gateway kept reading an undefined body"
        time.sleep(0.05)


def test_a_stream_reaches_the_client_while_the_upstream_still_works(hostile: Hostile) -> None:
    params = {"name": "gated_sse", "arguments": {"gate": "first-bytes"}, "_meta": {}}
    body = {"jsonrpc": "2.0", "id": 21, "method": "tools/call", "params": params}
    headers = {"authorization": f"Bearer {hostile.token}", "mcp-method": "tools/call",
               "mcp-name": "gated_sse", "mcp-protocol-version": MODERN,
               "accept": "application/json, text/event-stream"}  # fmt: skip
    with httpx.stream("POST", hostile.gateway.url, json=body, headers=headers, timeout=30) as s:
        assert s.status_code == 200
        assert s.headers["content-type"] == "text/event-stream"
        received = b""
        chunks = s.iter_bytes()
        while b"\n\n" not in received:
            received += next(chunks)
        first = orjson.loads(received.split(b"data: ", 1)[1].split(b"\n", 1)[0])
        assert first["method"] == "notifications/message"  # relayed, inspected, in time
        (seen,) = [r for r in hostile.upstream.requests() if r.get("rpc", {}) and
                   (r["rpc"].get("params") or {}).get("name") == "gated_sse"]  # fmt: skip
        assert "finished" not in seen  # the upstream has not answered yet: it cannot
        httpx.post(f"http://{HOST}:{hostile.upstream.port}/__release/first-bytes", timeout=5)
        received += b"".join(chunks)
    answer = [orjson.loads(line[6:]) for line in received.splitlines() if line[:6] == b"data: "]
    assert answer[-1]["result"]["content"][0]["text"] == "gated_sse done"
    assert hostile.outcome_of("gated_sse")["outcome"] == "ok"


def test_a_json_rpc_error_from_the_tool_is_the_calls_outcome_not_a_failure(
    hostile: Hostile,
) -> None:
    before = upstream_errors(hostile)
    response = hostile.call_tool("invalid_params", id_=31)
    assert response.status_code == 200
    assert response.json() == {
        "jsonrpc": "2.0",
        "id": 31,
        "error": {"code": -32602, "message": "Invalid params: name is required"},
    }
    outcome = hostile.outcome_of("invalid_params")
    assert outcome["outcome"] == "error"  # answered: not upstream_error
    assert outcome["error"] == "jsonrpc_error -32602: Invalid params: name is required"
    assert outcome["status"] == 200
    after = upstream_errors(hostile)
    changed = {k: after[k] - before.get(k, 0.0) for k in after if after[k] != before.get(k)}
    assert changed == {("jsonrpc", "jsonrpc_error"): 1.0}  # no transport failure counted


@pytest.mark.parametrize("answer", ["error", "none"])
def test_a_call_the_client_cancels_is_recorded_cancelled(hostile: Hostile, answer: str) -> None:
    # session-based cancellation: notifications/cancelled names the call in its session; the
    # upstream answers an error (the Python SDK) or nothing (the specification's SHOULD)
    hostile.call_tool("leaky_json")  # binds SESSIONS[0] to the caller
    session = {"mcp-session-id": SESSIONS[0]}
    id_ = 4100 if answer == "error" else 4101
    params = {"name": "cancellable_sse", "arguments": {"gate": answer}, "_meta": {}}
    body = {"jsonrpc": "2.0", "id": id_, "method": "tools/call", "params": params}
    headers = {"authorization": f"Bearer {hostile.token}", "mcp-method": "tools/call",
               "mcp-name": "cancellable_sse", "mcp-protocol-version": MODERN,
               "accept": "application/json, text/event-stream", **session}  # fmt: skip
    with httpx.stream("POST", hostile.gateway.url, json=body, headers=headers, timeout=30) as s:
        assert s.status_code == 200  # the call's stream is relaying
        notice = {"jsonrpc": "2.0", "method": "notifications/cancelled",
                  "params": {"requestId": id_, "reason": "user gave up"}}  # fmt: skip
        assert hostile.post(notice, "notifications/cancelled", **session).status_code == 202
        started = time.monotonic()
        s.read()  # the stream ends now, not when the upstream or a timeout would end it
        assert time.monotonic() - started < READ_TIMEOUT + 5
    outcome = hostile.outcome_of("cancellable_sse")
    # What is known of the upstream's side stays in the detail: the error it answered with
    # (its code), or that its answer was never read (the tool may have run all the same).
    # With gate "error" the upstream's answer races the gateway closing the stream once the
    # upstream accepted the notice: either is an honest end (each is pinned down in
    # tests/dataplane/gateway/test_cancelled_outcomes.py).
    unread = "the upstream's answer was not read (the call may have completed)"
    honest = {"error": {"the upstream answered with JSON-RPC error 0", unread}, "none": {unread}}
    assert outcome["outcome"] == "cancelled"
    cancelled, _, upstream_side = outcome["error"].partition("; ")
    assert cancelled == "client cancelled the request (notifications/cancelled)"
    assert upstream_side in honest[answer]
    if answer == "none":  # the gateway closed the upstream stream the upstream held open
        deadline = time.monotonic() + 5
        while not any(r.get("cancelled") for r in hostile.upstream.requests()
                      if (r.get("rpc") or {}).get("id") == id_):  # fmt: skip
            assert time.monotonic() < deadline, "the upstream stream was left open"
            time.sleep(0.05)


# -- item 13: upstream failures become the gateway's own errors ----------------------------


def test_an_html_error_page_never_reaches_the_client(hostile: Hostile) -> None:
    response = hostile.call_tool("html_error", id_=41)
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/json"
    assert SECRET not in response.text
    assert "Traceback" not in response.text
    assert response.json() == {
        "jsonrpc": "2.0",
        "id": 41,
        "error": {
            "code": -32000,
            "message": "Upstream answered HTTP 500",
            "data": {"reason": "upstream_http_error", "upstreamStatus": 500},
        },
    }
    outcome = hostile.outcome_of("html_error")
    digest = hashlib.sha256(TRACEBACK.encode()).hexdigest()
    assert outcome["outcome"] == "upstream_error"
    assert outcome["error"] == (
        f"upstream_http_error: upstream answered HTTP 500; "
        f"body {len(TRACEBACK.encode())} bytes sha256:{digest}"
    )


@pytest.mark.parametrize(
    ("tool", "status", "code"),
    [
        ("json_error_500", 502, -32603),  # a standard JSON-RPC code passes, its message not
        ("session_gone", 404, -32001),  # the client must still see 404 to re-initialise
        ("unauthorized", 502, -32000),  # the upstream's auth is not the caller's
        ("redirect", 502, -32000),  # never an open redirect
    ],
)
def test_upstream_failures_keep_their_meaning_not_their_body(
    hostile: Hostile, tool: str, status: int, code: int
) -> None:
    response = hostile.call_tool(tool)
    assert response.status_code == status
    assert SECRET not in response.text
    assert "location" not in response.headers
    assert "www-authenticate" not in response.headers
    assert "mcp-session-id" not in response.headers  # the gateway binds none on a failure
    error = gateway_error(response)
    assert error["code"] == code
    assert error["message"].startswith("Upstream answered HTTP ")
    assert hostile.outcome_of(tool)["outcome"] == "upstream_error"


# -- response headers: one allowlist on every answer --------------------------------------

# What a client may see: the upstream's allowlisted headers and the gateway's own.
PASSED = {name.lower() for name, _ in KEPT}
GATEWAYS_OWN = {"content-type", "content-length", "transfer-encoding", "date", "server"}


@pytest.mark.parametrize("tool", ["leaky_json", "leaky_sse"])
def test_a_good_answer_passes_only_the_protocols_headers(hostile: Hostile, tool: str) -> None:
    response = hostile.call_tool(tool)
    assert response.status_code == 200
    assert messages(response)[0]["result"]["content"][0]["text"] == f"{tool} done"
    seen = response.headers.multi_items()
    assert SECRET not in repr(seen)  # cookies, redirects, banners, hop-by-hop, X-*: none
    assert {name for name, _ in seen} <= PASSED | GATEWAYS_OWN | {"x-accel-buffering"}
    assert ({name.lower() for name in LEAKED} - {"server"}).isdisjoint(response.headers)
    assert response.headers.get_list("mcp-session-id") == [SESSIONS[0]]  # the one bound
    assert response.headers["mcp-protocol-version"] == "2025-06-18"
    assert response.headers["retry-after"] == "7"
    assert response.headers["allow"] == "POST"
    if tool == "leaky_sse":  # the gateway writes the stream and says how to carry it
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["cache-control"] == "no-cache, no-transform"
        assert response.headers["x-accel-buffering"] == "no"
    else:
        assert response.headers["content-type"] == "application/json"
        assert response.headers["cache-control"] == "no-store"


def test_the_session_id_a_client_sees_is_the_one_bound_to_it(hostile: Hostile) -> None:
    hostile.call_tool("leaky_json")  # issues two session ids; the gateway binds the first
    bound = hostile.call_tool("echo", **{"mcp-session-id": SESSIONS[0]})
    assert bound.status_code == 200
    assert bound.json()["result"]["content"][0]["text"] == "echo done"
    unbound = hostile.call_tool("echo", **{"mcp-session-id": SESSIONS[1]})
    assert unbound.status_code == 404  # never bound: refused as an unknown session


# -- item 5 and 10 (output): bounded size, time and depth, each end recorded truly ---------


@pytest.mark.parametrize(
    ("tool", "status", "reason"),
    [
        ("huge_json", 502, "response_too_large"),
        ("declared_huge", 502, "response_too_large"),
        ("huge_sse", 200, "response_too_large"),
        ("deep_json", 502, "response_too_deep"),
        ("deep_sse", 200, "response_too_deep"),
        ("broken_json", 502, "invalid_response"),
    ],
)
def test_responses_past_a_limit_fail_closed_and_are_recorded(
    hostile: Hostile, tool: str, status: int, reason: str
) -> None:
    response = hostile.call_tool(tool, id_=7)
    assert response.status_code == status  # never a 500
    assert len(response.content) < MAX_RESPONSE_BYTES
    error = gateway_error(response)
    assert error["code"] == -32000
    assert error["data"]["reason"] == reason
    assert messages(response)[0]["id"] == 7
    outcome = hostile.outcome_of(tool)
    assert outcome["outcome"] == "upstream_error"  # never "ok"
    assert outcome["error"].startswith(f"{reason}: ")


@pytest.mark.parametrize(
    ("tool", "status"), [("stall_json", 504), ("stall_sse", 200), ("trickle_sse", 200)]
)
def test_a_stalled_upstream_is_cut_off_and_recorded(
    hostile: Hostile, tool: str, status: int
) -> None:
    started = time.monotonic()
    response = hostile.call_tool(tool)
    waited = time.monotonic() - started
    assert waited < READ_TIMEOUT + 5  # the upstream stalls for a minute
    assert response.status_code == status
    assert gateway_error(response)["data"]["reason"] == "upstream_timeout"
    outcome = hostile.outcome_of(tool)
    assert outcome["outcome"] == "upstream_error"
    assert outcome["error"].startswith("upstream_timeout: ")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("tool", ["flood_json", "flood_sse"])
def test_a_200_mib_response_does_not_grow_the_gateway(hostile: Hostile, tool: str) -> None:
    before = rss_mib(hostile.gateway.process.pid)
    response = hostile.call_tool(tool)
    after = rss_mib(hostile.gateway.process.pid)
    assert gateway_error(response)["data"]["reason"] == "response_too_large"
    assert after - before < 32  # unbounded, the gateway grew by 559 MiB on this
    assert hostile.outcome_of(tool)["error"].startswith("response_too_large: ")


def test_a_client_that_leaves_mid_stream_is_recorded_as_cancelled(hostile: Hostile) -> None:
    params = {"name": "stall_sse", "arguments": {}, "_meta": {}}
    body = {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": params}
    headers = {"authorization": f"Bearer {hostile.token}",
               "accept": "application/json, text/event-stream"}  # fmt: skip
    with httpx.stream("POST", hostile.gateway.url, json=body, headers=headers, timeout=30) as s:
        assert s.status_code == 200
        next(s.iter_bytes())  # the keep-alive arrived: the stream is relaying; now leave
    # The call reached the upstream (it sent the keep-alive): its decision id is known now.
    # Looked up once, not per record polled: one lookup is an HTTP round trip listing every
    # request, and per record a poll took over 7 s late in the module under load.
    decision = hostile.decision_ids("stall_sse")[-1]
    first = wait_for_outcome(hostile, decision, within=READ_TIMEOUT + 5)
    assert first["outcome"] == "cancelled"  # not upstream_timeout, whatever the stall did next
    outcomes = [r for r in hostile.gateway.records() if r.get("decisionId") == decision]
    assert [o["outcome"] for o in outcomes if o["type"] == "outcome"] == ["cancelled"]  # one


def call_and_leave(hostile: Hostile, tool: str) -> tuple[str, float]:
    """POST a call of ``tool`` on a raw socket and hang up once it reached the upstream;
    the call's decision id and when the client left."""
    before = len(hostile.decision_ids(tool))
    params = {"name": tool, "arguments": {}, "_meta": {}}
    body = orjson.dumps({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": params})
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: {HOST}:{hostile.gateway.port}\r\n"
        f"Authorization: Bearer {hostile.token}\r\nContent-Type: application/json\r\n"
        "Accept: application/json, text/event-stream\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection((HOST, hostile.gateway.port)) as client:
        client.sendall(head.encode() + body)
        deadline = time.monotonic() + 10
        while len(hostile.decision_ids(tool)) == before:  # not yet at the upstream
            assert time.monotonic() < deadline
            time.sleep(0.05)
    return hostile.decision_ids(tool)[-1], time.monotonic()


def wait_for_outcome(hostile: Hostile, decision: str, within: float) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for record in hostile.gateway.records():
            if record["type"] == "outcome" and record["decisionId"] == decision:
                return record
        time.sleep(0.05)
    raise AssertionError(f"no outcome for {decision} in {within}s")


@pytest.mark.parametrize("tool", ["slow_json", "stall_json"])
def test_a_client_that_leaves_a_json_call_cancels_it(hostile: Hostile, tool: str) -> None:
    # slow_json sends nothing for a minute (the gateway waits up to two for headers);
    # stall_json sends its headers and part of its body, then stalls (read timeout: 2 s).
    decision, left = call_and_leave(hostile, tool)
    outcome = wait_for_outcome(hostile, decision, within=10)
    assert outcome["outcome"] == "cancelled"  # not upstream_timeout: the client's end, at once
    assert outcome["error"] == (
        "client disconnected; the upstream's answer was not read (the call may have completed)"
    )
    assert time.monotonic() - left < 10
    if tool == "slow_json":  # the gateway hung up on the upstream too: its work was cancelled
        deadline = time.monotonic() + 5
        while not any(r.get("cancelled") for r in hostile.upstream.requests()):
            assert time.monotonic() < deadline, "the upstream never saw the call cancelled"
            time.sleep(0.05)


def test_a_call_stream_ends_once_its_call_is_answered(hostile: Hostile) -> None:
    started = time.monotonic()
    response = hostile.call_tool("endless_sse")  # would stream notifications for a minute
    assert time.monotonic() - started < 10
    (message,) = messages(response)
    assert message["result"]["content"][0]["text"] == "endless_sse done"
    assert hostile.outcome_of("endless_sse")["outcome"] == "ok"


# -- metrics: each relay failure counted by its reason code --------------------------------

FAILURES = [
    ("stall_json", "upstream_timeout"),
    ("huge_json", "response_too_large"),
    ("deep_sse", "response_too_deep"),
    ("broken_json", "invalid_response"),
    ("plain_text", "uninspectable_response"),
    ("html_error", "upstream_http_error"),
    ("session_gone", "upstream_http_error"),
]


def upstream_errors(hostile: Hostile) -> dict[tuple[str, str], float]:
    """Every ``remit_upstream_errors_total`` series on the gateway's /metrics, by labels."""
    series: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(hostile.gateway.metrics()):
        for sample in family.samples:
            if sample.name == "remit_upstream_errors_total":
                series[(sample.labels["kind"], sample.labels["reason"])] = sample.value
    return series


def test_relay_failures_are_counted_by_their_reason_code(hostile: Hostile) -> None:
    before = upstream_errors(hostile)
    for tool, _ in FAILURES:
        hostile.call_tool(tool)
    after = upstream_errors(hostile)
    expected = Counter(("transport", reason) for _, reason in FAILURES)
    assert {k: after[k] - before.get(k, 0.0) for k in after if after[k] != before.get(k)} == (
        expected
    )


def test_the_failure_metrics_match_the_outcome_records(hostile: Hostile) -> None:
    series = upstream_errors(hostile)
    # bounded: one series per upstream reason code, and one for JSON-RPC errors
    assert set(series) == {("transport", r.value) for r in UPSTREAM_REASONS} | {
        ("jsonrpc", "jsonrpc_error")
    }
    failed = Counter(
        r["error"].partition(":")[0]
        for r in hostile.gateway.records()
        if r["type"] == "outcome" and r["outcome"] == "upstream_error"
    )
    assert failed  # the hostile run failed in many ways
    assert {reason: n for (kind, reason), n in series.items() if kind == "transport" and n} == (
        failed
    )


# -- the books balance ---------------------------------------------------------------------


def test_every_forwarded_request_has_one_allow_and_one_outcome(hostile: Hostile) -> None:
    hostile.call_tool("echo")
    assert hostile.outcome_of("echo")["outcome"] == "ok"
    counted = hostile.check_accounting()  # also runs remit audit verify on the log
    assert counted.forwarded > len(TOOLS)  # the whole hostile run, not nothing
    assert counted.outcomes["upstream_error"] > 0
    assert counted.outcomes["cancelled"] > 0
