"""Hostile clients against a real ``remit gateway`` process over real sockets: connection limits.

Slowloris headers, a slow body, oversized headers, 20,000 headers, more requests than the
concurrency limit, and 600 idle sockets against a gateway allowed 512 file descriptors: each
is cut off with a clear answer (408, 431, 503) or closed, nothing half-read reaches the MCP
server, and the admin port and real calls keep answering. Timeouts are set short through the
``REMIT_*`` settings so that the deadlines, not the test, end each connection.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import orjson
import pytest

from remit.demo.issuer import Issuer
from tests.support import mcp_wire, stack
from tests.support.stack import GatewayProcess, Upstream, metric_value

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
IDLE_TIMEOUT = 1.0
MAX_CONCURRENT = 2
SLACK = 4.0  # how much later than its deadline a connection may be closed on a busy machine
ALICE = "alice@example.com"
READ = {"path": "/data/alice/notes.txt"}


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("connection-limits")


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with Issuer() as running:
        yield running


@pytest.fixture(scope="module")
def upstream(logs: Path) -> Iterator[Upstream]:
    with stack.upstream(logs) as running:
        yield running


def _start(
    logs: Path,
    issuer: Issuer,
    upstream: Upstream,
    name: str,
    env: dict[str, str],
    **options: object,
) -> tuple[ExitStack, GatewayProcess, str]:
    ports = stack.reserve_gateway_ports()
    audience = stack.audience_for(ports[0])
    policy = stack.write_policy_dir(
        logs / f"{name}-policy", stack.server_yaml(issuer.issuer, audience)
    )
    exits = ExitStack()
    gateway = exits.enter_context(
        stack.gateway(
            logs,
            upstream_url=upstream.url,
            ports=ports,
            policy_dir=policy,
            audit_file=logs / f"{name}-audit.jsonl",
            env=env,
            **options,  # type: ignore[arg-type]
        )
    )
    token = issuer.mint(ALICE, agent="support-bot", audience=audience, scopes=["mcp:tools"])
    return exits, gateway, token


@pytest.fixture(scope="module")
def limited(logs: Path, issuer: Issuer, upstream: Upstream) -> Iterator[tuple[GatewayProcess, str]]:
    """A gateway with one-second deadlines and at most two requests in progress."""
    env = {
        "REMIT_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        "REMIT_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
        "REMIT_IDLE_TIMEOUT_SECONDS": str(IDLE_TIMEOUT),
        "REMIT_MAX_CONCURRENT_REQUESTS": str(MAX_CONCURRENT),
    }
    exits, gateway, token = _start(logs, issuer, upstream, "limited", env)
    with exits:
        yield gateway, token


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection((stack.HOST, port), timeout=HEADER_TIMEOUT + SLACK + 5)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or the socket times out)."""
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _status_and_body(answer: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, orjson.loads(body)


def _trickle(sock: socket.socket, pieces: list[bytes], every: float, stop: threading.Event) -> None:
    for piece in pieces:
        if stop.wait(every):
            return
        try:
            sock.sendall(piece)
        except OSError:
            return


def _post_head(gateway: GatewayProcess, token: str, length: int) -> bytes:
    headers = mcp_wire.headers("tools/call", {"name": "read_file"}, token)
    lines = ["POST /mcp HTTP/1.1", f"Host: {stack.HOST}:{gateway.port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += ["Content-Type: application/json", f"Content-Length: {length}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_slowloris_headers_are_answered_408_at_the_header_deadline(
    limited: tuple[GatewayProcess, str],
) -> None:
    gateway, _ = limited
    sock = _connect(gateway.port)
    stop = threading.Event()
    sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: x\r\n")
    began = time.monotonic()
    # One header byte every 0.2 s: data keeps arriving, the deadline must still hold.
    writer = threading.Thread(target=_trickle, args=(sock, [b"X"] * 200, 0.2, stop))
    writer.start()
    try:
        answer = _read_all(sock)
    finally:
        stop.set()
        writer.join()
        sock.close()
    elapsed = time.monotonic() - began
    status, body = _status_and_body(answer)
    assert status == 408
    assert "headers not received within 1 s" in str(body["error"])
    assert HEADER_TIMEOUT * 0.9 <= elapsed < HEADER_TIMEOUT + SLACK
    assert (
        metric_value(
            gateway.metrics(),
            "remit_connection_refusals_total",
            listener="mcp",
            reason="header_timeout",
        )
        >= 1
    )


def test_an_idle_connection_is_closed_even_when_it_sends_blank_lines(
    limited: tuple[GatewayProcess, str],
) -> None:
    gateway, _ = limited
    sock = _connect(gateway.port)
    stop = threading.Event()
    began = time.monotonic()
    writer = threading.Thread(target=_trickle, args=(sock, [b"\r\n"] * 200, 0.2, stop))
    writer.start()
    try:
        answer = _read_all(sock)
    finally:
        stop.set()
        writer.join()
        sock.close()
    assert answer == b""
    assert time.monotonic() - began < IDLE_TIMEOUT + SLACK


def test_a_slow_body_is_answered_408_and_never_forwarded(
    limited: tuple[GatewayProcess, str], upstream: Upstream
) -> None:
    gateway, token = limited
    forwarded = upstream.count()
    sock = _connect(gateway.port)
    stop = threading.Event()
    sock.sendall(_post_head(gateway, token, 5000) + b'{"jsonrpc": "2.0",')
    began = time.monotonic()
    writer = threading.Thread(target=_trickle, args=(sock, [b" "] * 200, 0.2, stop))
    writer.start()
    try:
        answer = _read_all(sock)
    finally:
        stop.set()
        writer.join()
        sock.close()
    status, body = _status_and_body(answer)
    assert status == 408
    assert body["jsonrpc"] == "2.0"
    assert "body not received within 1 s" in str(body["error"])
    assert time.monotonic() - began < BODY_TIMEOUT + SLACK
    assert upstream.count() == forwarded


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([b"X-Big: " + b"a" * 64 * 1024], id="one-64KiB-header"),
        pytest.param(
            [b"X-Pad-%d: %s" % (i, b"b" * 1000) for i in range(1024)], id="1MiB-of-headers"
        ),
        pytest.param([b"X-%d: y" % i for i in range(20_000)], id="20000-headers"),
    ],
)
def test_oversized_or_too_many_headers_are_answered_431(
    limited: tuple[GatewayProcess, str], upstream: Upstream, headers: list[bytes]
) -> None:
    gateway, _ = limited
    forwarded = upstream.count()
    request = b"POST /mcp HTTP/1.1\r\nHost: x\r\n" + b"\r\n".join(headers) + b"\r\n\r\n"
    sock = _connect(gateway.port)
    try:
        # The gateway may close before reading everything: the answer is still there.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        answer = _read_all(sock)
    finally:
        sock.close()
    status, body = _status_and_body(answer)
    assert status == 431
    message = str(body["error"])
    assert "More than 100 request headers" in message or "exceed 32768 bytes" in message
    assert upstream.count() == forwarded
    assert httpx.get(f"{gateway.admin}/healthz", timeout=5).status_code == 200


def test_the_admin_port_also_refuses_oversized_headers(limited: tuple[GatewayProcess, str]) -> None:
    gateway, _ = limited
    answer = httpx.get(f"{gateway.admin}/healthz", headers={"x-big": "a" * 40_000}, timeout=5)
    assert answer.status_code == 431
    assert "exceed 32768 bytes" in answer.json()["error"]


def test_requests_over_the_concurrency_limit_get_503_with_retry_after(
    limited: tuple[GatewayProcess, str],
) -> None:
    gateway, token = limited
    held = []
    try:
        for _ in range(MAX_CONCURRENT):  # each holds a request in progress: body half sent
            sock = _connect(gateway.port)
            sock.sendall(_post_head(gateway, token, 5000) + b"{")
            held.append(sock)
        time.sleep(0.2)  # let the gateway read both heads (a deadline, not a measurement)
        answer = mcp_wire.tool_call(gateway.url, "read_file", READ, token=token)
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "1"
        assert "More than 2 requests in progress" in answer.json()["error"]["message"]
        # The admin port has its own limits: it answers while the MCP port is saturated.
        assert httpx.get(f"{gateway.admin}/healthz", timeout=5).status_code == 200
    finally:
        for sock in held:
            sock.close()
    text = gateway.metrics()
    assert metric_value(text, "remit_connection_refusals_total", listener="mcp", reason="busy") >= 1
    assert mcp_wire.tool_call(gateway.url, "read_file", READ, token=token).status_code == 200


def test_a_flood_of_pipelined_requests_closes_the_connection(
    limited: tuple[GatewayProcess, str],
) -> None:
    gateway, _ = limited
    one = b"GET /mcp HTTP/1.1\r\nHost: x\r\n\r\n"
    sock = _connect(gateway.port)
    try:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(one * 1000)
        answer = _read_all(sock)
    finally:
        sock.close()
    assert answer.count(b"HTTP/1.1 ") < 1000  # cut off, not a thousand answers
    text = gateway.metrics()
    refused = metric_value(
        text, "remit_connection_refusals_total", listener="mcp", reason="pipelined"
    )
    assert refused >= 1
    assert httpx.get(f"{gateway.admin}/healthz", timeout=5).status_code == 200


def test_600_idle_sockets_with_512_descriptors_leave_healthz_and_calls_answering(
    logs: Path, issuer: Issuer, upstream: Upstream
) -> None:
    env = {"REMIT_IDLE_TIMEOUT_SECONDS": "120", "REMIT_HEADER_TIMEOUT_SECONDS": "120"}
    exits, gateway, token = _start(
        logs, issuer, upstream, "fds", env, preexec_fn=stack.descriptor_limit(512)
    )
    idle: list[socket.socket] = []
    with exits:
        try:
            for _ in range(600):
                idle.append(socket.create_connection((stack.HOST, gateway.port), timeout=5))
            # Half of them start a request and stall in the headers (slowloris).
            for sock in idle[::2]:
                sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: x\r\n")
            health = httpx.get(f"{gateway.admin}/healthz", timeout=10)
            assert health.status_code == 200
            for _ in range(3):
                answer = mcp_wire.tool_call(gateway.url, "read_file", READ, token=token)
                assert answer.status_code == 200, answer.text
                assert answer.json()["result"]["content"][0]["text"] == "alice's notes\n"
            assert httpx.get(f"{gateway.admin}/readyz", timeout=10).status_code == 200
            text = gateway.metrics()
            evicted = metric_value(
                text, "remit_connection_refusals_total", listener="mcp", reason="evicted_waiting"
            )
            assert evicted >= 600 - 512
            assert gateway.process.popen.poll() is None
        finally:
            for sock in idle:
                sock.close()
    assert "Too many open files" not in gateway.process.stderr()


def test_a_duplicate_content_length_is_answered_400_and_recorded(
    limited: tuple[GatewayProcess, str], upstream: Upstream
) -> None:
    """llhttp refuses the request before uvicorn (and the app) sees it: the protocol layer
    answers it and hands it to the decision log, aggregated per source like any refusal of a
    caller not yet identified."""
    gateway, token = limited
    forwarded = upstream.count()
    before = len(gateway.records())
    body = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
    head = _post_head(gateway, token, len(body))
    smuggled = head.replace(b"\r\n\r\n", f"\r\nContent-Length: {len(body)}\r\n\r\n".encode())
    sock = _connect(gateway.port)
    try:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(smuggled + body)
        answer = _read_all(sock)
    finally:
        sock.close()
    status, reply = _status_and_body(answer)
    assert status == 400
    assert "Content-Length" in str(reply["error"])
    assert upstream.count() == forwarded
    deadline = time.monotonic() + 5
    while not (new := gateway.records()[before:]) and time.monotonic() < deadline:
        time.sleep(0.05)  # recorded on the gateway's loop just after the answer
    (record,) = new
    assert (record["decision"], record["reason"]) == ("deny", "invalid_request")
    assert "Content-Length" in record["message"]
    assert record["source"] == "127.0.0.1"
