"""A real gateway process whose decision log cannot be written: stdout (and stderr) pipes
nobody reads, a full filesystem.

Calls are denied with ``audit_unavailable`` instead of hanging, ``/healthz`` keeps answering,
``/readyz`` says why the gateway is not ready, and once the reader resumes (or the disk has
room) the gateway recovers and the log it wrote verifies, with the records it could not write
declared as a gap.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from remit.demo.issuer import Issuer
from tests.dataplane.e2e_gateway.conftest import ALICE, BOT
from tests.support import mcp_wire, stack
from tests.support.stack import GatewayProcess, Upstream, metric_value

READ = ("read_file", {"path": "/data/alice/notes.txt"})


def eventually(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll a real process's state until ``condition`` holds (it changes on its own time)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the gateway did not reach the expected state in time")
        time.sleep(0.05)


class Reader:
    """Reads a pipe on a thread once started; everything read is kept."""

    def __init__(self, pipe: object) -> None:
        self.pipe = pipe
        self.data = bytearray()
        self.calls_before = 0
        self.denied: list[str] = []  # decision ids of calls denied with audit_unavailable
        self.errors: Reader | None = None  # the stderr reader, started with this one
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        if self.errors is not None:
            self.errors.start()

    def _run(self) -> None:
        read = self.pipe.read1  # type: ignore[attr-defined]
        while chunk := read(1 << 16):
            self.data += chunk


@pytest.fixture(scope="module")
def unread(
    logs: Path, issuer: Issuer, upstream: Upstream
) -> Iterator[tuple[GatewayProcess, str, Reader]]:
    """A standalone gateway writing records to a stdout pipe that is not read (yet), and its
    logs to a stderr pipe that is not read either (a stalled log collector stalls both)."""
    ports = stack.reserve_gateway_ports()
    audience = stack.audience_for(ports[0])
    policy = stack.write_policy_dir(
        logs / "stalled-policy", stack.server_yaml(issuer.issuer, audience)
    )
    with stack.gateway(
        logs,
        upstream_url=upstream.url,
        ports=ports,
        policy_dir=policy,
        env={"REMIT_AUDIT_TIMEOUT": "0.5"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as gateway:
        reader = Reader(gateway.process.popen.stdout)
        reader.errors = Reader(gateway.process.popen.stderr)
        reader.calls_before = len(upstream.calls("tools/call"))
        token = issuer.mint(ALICE, agent=BOT, audience=audience, scopes=["mcp:tools"])
        try:
            yield gateway, token, reader
        finally:
            if reader.thread.ident is None:
                reader.start()  # never leave the gateway blocked on its pipes


def test_a_stalled_stdout_denies_calls_and_the_gateway_keeps_answering(
    unread: tuple[GatewayProcess, str, Reader], upstream: Upstream
) -> None:
    gateway, token, _ = unread
    denied = None
    for _ in range(400):  # each allowed call writes ~1.3 KB; the pipe holds 64 KiB
        started = time.monotonic()
        answer = mcp_wire.tool_call(gateway.url, *READ, token=token)
        assert time.monotonic() - started < 5  # never hangs: at most the 0.5 s write timeout
        body = answer.json()
        if "error" in body:
            denied = body["error"]
            break
        assert body["result"]["isError"] is False
    assert denied is not None, "the gateway never noticed that its stdout is not read"
    assert denied["code"] == -32603
    assert denied["data"]["reason"] == "audit_unavailable"
    assert "could not be recorded" in denied["message"]
    _, _, reader = unread
    reader.denied.append(denied["data"]["decisionId"])

    forwarded = upstream.count()
    started = time.monotonic()
    again = mcp_wire.tool_call(gateway.url, *READ, token=token).json()
    assert time.monotonic() - started < 0.5  # refused at once while the sink is stalled
    assert again["error"]["data"]["reason"] == "audit_unavailable"
    # Each refusal is logged to stderr, which nobody reads either: 600 of them overflow the
    # stderr pipe, and still every call is answered.
    params = {"name": READ[0], "arguments": READ[1]}
    sent = mcp_wire.headers("tools/call", params, token)
    with httpx.Client(timeout=5) as client:
        for _ in range(600):
            answer = client.post(
                gateway.url, json=mcp_wire.message("tools/call", params), headers=sent
            )
            assert answer.json()["error"]["data"]["reason"] == "audit_unavailable"
    assert upstream.count() == forwarded  # nothing forwarded without its record

    assert httpx.get(f"{gateway.admin}/healthz", timeout=2).status_code == 200
    ready = httpx.get(f"{gateway.admin}/readyz", timeout=2)
    assert ready.status_code == 503
    assert ready.json()["ready"] is False
    assert any("audit: stdout stalled" in reason for reason in ready.json()["reasons"])
    sink = httpx.get(f"{gateway.admin}/v1/status", timeout=2).json()["audit"]["sink"]
    assert sink["state"] == "stalled"
    assert sink["lost"] >= 1
    text = gateway.metrics()
    assert metric_value(text, "remit_audit_sink_healthy") == 0
    assert metric_value(text, "remit_audit_sink_state", state="stalled") == 1
    assert metric_value(text, "remit_audit_records_lost_total") >= 1
    assert (
        metric_value(text, "remit_decisions_total", effect="deny", reason="audit_unavailable") >= 2
    )


def test_when_the_reader_resumes_the_gateway_recovers_and_its_log_verifies(
    unread: tuple[GatewayProcess, str, Reader], upstream: Upstream, logs: Path
) -> None:
    gateway, token, reader = unread
    reader.start()  # the log collector comes back
    eventually(lambda: httpx.get(f"{gateway.admin}/readyz", timeout=2).status_code == 200)
    assert metric_value(gateway.metrics(), "remit_audit_sink_healthy") == 1

    answer = mcp_wire.tool_call(gateway.url, *READ, token=token).json()
    assert answer["result"]["isError"] is False
    gateway.process.stop()  # the pipes close: everything written is in the readers
    reader.thread.join(10)
    assert reader.errors is not None
    reader.errors.thread.join(10)
    assert len(reader.errors.data) > 64 * 1024  # more than a pipe holds: stderr was stalled too

    log = bytes(reader.data)
    verified = subprocess.run(
        [stack.REMIT, "audit", "verify", "-", "--output", "json"],
        input=log,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    result = orjson.loads(verified.stdout)
    assert len(result["gaps"]) == 1
    assert result["gaps"][0]["lost"] >= 1
    assert "stdout stalled" in result["gaps"][0]["message"]

    records = [orjson.loads(line) for line in log.splitlines() if line.strip()]
    decisions = {r["id"]: r for r in records if r["type"] == "decision"}
    forwarded = upstream.calls("tools/call")[reader.calls_before :]  # this gateway's calls
    assert len(forwarded) > 10
    for request in forwarded:  # every forwarded call has its allow record in the log
        decision = decisions[request["headers"]["x-remit-decision"]]
        assert decision["decision"] == "allow"
    # The first denied call's allow record was being written when the sink stalled: it lands
    # once the reader resumes, and the recover marker is its outcome (not forwarded).
    first = reader.denied[0]
    assert first in result["gaps"][0]["notForwarded"]
    assert first not in {r["headers"]["x-remit-decision"] for r in forwarded}
    if first in decisions:
        assert decisions[first]["decision"] == "allow"
        log_file = logs / "stalled-stdout.jsonl"
        log_file.write_bytes(log)
        explained = subprocess.run(
            [stack.REMIT, "audit", "explain", str(log_file), first],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert "NOT FORWARDED" in explained.stdout, explained.stdout + explained.stderr


@pytest.fixture(scope="module")
def full_disk(
    logs: Path, issuer: Issuer, upstream: Upstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProcess, str, Path]]:
    """A standalone gateway logging to a real 64 KiB filesystem that is nearly full."""
    with stack.tiny_filesystem(tmp_path_factory.mktemp("full") / "fs") as mount:
        filler = mount / "filler"
        filler.write_bytes(b"\0" * 36 * 1024)
        with stack.standalone_gateway(
            logs,
            issuer,
            upstream_url=upstream.url,
            audit_file=mount / "decisions.jsonl",
            policy_name="disk-policy",
            subject=ALICE,
            agent=BOT,
        ) as (gateway, token):
            yield gateway, token, filler


def test_a_full_disk_denies_calls_then_recovers_with_a_log_that_verifies(
    full_disk: tuple[GatewayProcess, str, Path],
) -> None:
    gateway, token, filler = full_disk
    denied = None
    for _ in range(200):
        body = mcp_wire.tool_call(gateway.url, *READ, token=token).json()
        if "error" in body:
            denied = body["error"]
            break
    assert denied is not None, "the disk never filled"
    assert denied["data"]["reason"] == "audit_unavailable"
    ready = httpx.get(f"{gateway.admin}/readyz", timeout=2)
    assert ready.status_code == 503
    assert any("No space left on device" in reason for reason in ready.json()["reasons"])
    assert httpx.get(f"{gateway.admin}/healthz", timeout=2).status_code == 200
    assert gateway.audit_file is not None
    assert gateway.audit_file.read_bytes().endswith(b"\n")  # no torn line left behind

    filler.unlink()  # room again; no call arrives, the readiness probe writes the marker
    eventually(lambda: httpx.get(f"{gateway.admin}/readyz", timeout=2).status_code == 200)
    answer = mcp_wire.tool_call(gateway.url, *READ, token=token).json()
    assert answer["result"]["isError"] is False

    verified = subprocess.run(
        [stack.REMIT, "audit", "verify", str(gateway.audit_file), "--output", "json"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    gaps = orjson.loads(verified.stdout)["gaps"]
    assert len(gaps) == 1
    assert gaps[0]["lost"] >= 1
    assert "No space left on device" in gaps[0]["message"]
