"""A gateway stopped by SIGTERM with calls in flight: a bounded drain, every call accounted.

One real ``remit gateway`` (grace 1 s) in front of the hostile server holds three calls when
it is sent SIGTERM: ``slow_json`` (no answer headers for a minute), ``gated_sse`` never
released (a stream already started), and ``gated_sse`` released once ``/readyz`` says the
gateway is shutting down. Before the drain, the gateway waited for every call with no bound
(the kubelet's SIGKILL then left them without an outcome); with uvicorn's own shutdown
timeout, a cut-off call got a plain 500, a traceback and no outcome.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from remit.demo.issuer import Issuer
from tests.security.hostile_stack import hostile_gateway
from tests.support import accounting, stack
from tests.support.mcp_wire import MODERN
from tests.support.stack import REMIT

GRACE = 1.0
MARGIN = 2.5  # seconds past the grace for the cut-off calls' answers, the audit close, exit
READ_TIMEOUT = 10  # well past the grace: the cut-off, not the read timeout, ends the stream


@dataclass
class Call:
    """One tools/call in its own thread: the status, the body, when its first bytes came."""

    tool: str
    gate: str
    status: int = 0
    body: bytes = b""
    first_bytes: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


@dataclass
class Stopped:
    """What the stop left: the calls, the exit, the records, the gateway's stderr."""

    calls: dict[str, Call]
    exit_seconds: float
    exit_code: int | None
    ready_while_draining: tuple[int, Any]
    gateway: stack.GatewayProcess
    upstream: stack.Upstream
    decisions: dict[str, str]  # gate -> decision id the upstream received

    def outcome(self, gate: str) -> dict[str, Any]:
        (found,) = [
            r
            for r in self.gateway.records()
            if r["type"] == "outcome" and r["decisionId"] == self.decisions[gate]
        ]
        return found


def _post(url: str, token: str, call: Call, id_: int) -> None:
    params = {
        "name": call.tool,
        "arguments": {"gate": call.gate},
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
        },
    }
    headers = {
        "authorization": f"Bearer {token}",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": MODERN,
        "mcp-method": "tools/call",
        "mcp-name": call.tool,
    }
    body = {"jsonrpc": "2.0", "id": id_, "method": "tools/call", "params": params}
    try:
        with httpx.stream("POST", url, json=body, headers=headers, timeout=30) as response:
            call.status = response.status_code
            for chunk in response.iter_bytes():
                call.body += chunk
                call.first_bytes.set()
    except httpx.HTTPError as exc:  # a reset: what a killed gateway's client sees
        call.body += f"\n{type(exc).__name__}".encode()


def _draining_readyz(admin: str, timeout: float = 3.0) -> tuple[int, Any]:
    """``/readyz`` once it answers 503 (or what it last said: 0 if it could not be reached)."""
    deadline = time.monotonic() + timeout
    seen: tuple[int, Any] = (0, None)
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(f"{admin}/readyz", timeout=2)
            seen = (answer.status_code, answer.json())
        except httpx.HTTPError:
            seen = (0, None)
        if seen[0] == 503:
            break
        time.sleep(0.02)
    return seen


def _wait(condition: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stopped]:
    logs = tmp_path_factory.mktemp("shutdown-drain")
    env = {"REMIT_SHUTDOWN_GRACE_SECONDS": str(GRACE)}
    with (
        Issuer() as issuer,
        hostile_gateway(logs, issuer, "drain", env=env, read_timeout=READ_TIMEOUT) as hostile,
    ):
        gateway, upstream, token = hostile.gateway, hostile.upstream, hostile.token
        calls = {
            "slow": Call("slow_json", "slow"),
            "cut": Call("gated_sse", "cut"),
            "done": Call("gated_sse", "done"),
        }
        for id_, call in enumerate(calls.values(), 1):
            call.thread = threading.Thread(target=_post, args=(gateway.url, token, call, id_))
            call.thread.start()
        calls["cut"].first_bytes.wait(10)
        calls["done"].first_bytes.wait(10)

        def at_upstream() -> bool:
            return any(
                (r["rpc"] or {}).get("params", {}).get("name") == "slow_json"
                for r in upstream.forwarded()
            )

        _wait(at_upstream, "slow_json to reach the upstream")
        popen = gateway.process.popen
        sent = time.monotonic()
        popen.send_signal(signal.SIGTERM)

        ready = _draining_readyz(gateway.admin)
        httpx.post(f"http://{stack.HOST}:{upstream.port}/__release/done", timeout=5)
        try:
            code: int | None = popen.wait(GRACE + 10)
        except Exception:  # noqa: BLE001 - the old gateway: still draining, unbounded
            code = None
        exit_seconds = time.monotonic() - sent
        for call in calls.values():
            assert call.thread is not None
            call.thread.join(15)
        decisions = {}
        for request in upstream.forwarded():
            rpc = request["rpc"]
            if isinstance(rpc, dict) and rpc.get("method") == "tools/call":
                gate = rpc["params"]["arguments"]["gate"]
                decisions[gate] = request["headers"]["x-remit-decision"]
        yield Stopped(
            calls,
            exit_seconds,
            code,
            ready,
            gateway,
            upstream,
            decisions,
        )


def test_the_gateway_exits_within_the_grace_and_a_margin(stopped: Stopped) -> None:
    assert stopped.exit_code == 0, stopped.gateway.process.stderr()
    assert stopped.exit_seconds < GRACE + MARGIN


def test_readyz_fails_while_draining(stopped: Stopped) -> None:
    status, body = stopped.ready_while_draining
    assert status == 503, body
    assert "shutting down" in body["reasons"]


def test_a_call_cut_off_before_its_headers_gets_503_and_a_shutdown_outcome(
    stopped: Stopped,
) -> None:
    call = stopped.calls["slow"]
    assert call.status == 503
    error = orjson.loads(call.body)["error"]
    assert error["data"]["reason"] == "shutdown"
    outcome = stopped.outcome("slow")
    assert outcome["outcome"] == "shutdown"
    assert outcome["error"].startswith("shutdown: ")
    (seen,) = [
        r
        for r in stopped.upstream.forwarded()
        if r["headers"].get("x-remit-decision") == stopped.decisions["slow"]
    ]
    assert seen.get("cancelled") is True  # the upstream saw its request dropped


def test_a_stream_cut_off_ends_with_a_json_rpc_error_event(stopped: Stopped) -> None:
    call = stopped.calls["cut"]
    assert call.status == 200
    events = [line[6:] for line in call.body.decode().splitlines() if line.startswith("data: ")]
    last = orjson.loads(events[-1])
    assert last["id"] == 2
    assert last["error"]["data"]["reason"] == "shutdown"
    assert stopped.outcome("cut")["outcome"] == "shutdown"


def test_a_call_that_finishes_within_the_grace_completes(stopped: Stopped) -> None:
    call = stopped.calls["done"]
    assert call.status == 200
    assert b"gated_sse done" in call.body
    assert stopped.outcome("done")["outcome"] == "ok"


def test_every_call_is_accounted_and_the_log_verifies(stopped: Stopped) -> None:
    assert stopped.gateway.audit_file is not None
    accounting.check(stopped.upstream.requests(), stopped.gateway.audit_file, remit=REMIT)


def test_no_traceback_on_stderr(stopped: Stopped) -> None:
    assert "Traceback" not in stopped.gateway.process.stderr()


def test_audit_explain_names_the_shutdown(stopped: Stopped, tmp_path: Path) -> None:
    import subprocess  # noqa: PLC0415 - only here

    assert stopped.gateway.audit_file is not None
    result = subprocess.run(
        [REMIT, "audit", "explain", str(stopped.gateway.audit_file), stopped.decisions["slow"]],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "shutdown" in result.stdout
