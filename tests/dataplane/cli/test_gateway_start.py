"""`remit gateway` starts saying one line, or fails in one line with a non-zero exit.

Real processes: the console script's module, real sockets on loopback.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from remit.gateway.ports import wait_for_port
from tests.dataplane.cli.support import one_line
from tests.support.ports import free_port

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
STANDALONE = ["-f", str(EXAMPLES), "--server", "files", "--namespace", "agents"]


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    """A socket that accepts connections: an upstream, or a port already in use."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


def gateway(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "remit", "gateway", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def test_a_port_in_use_is_one_line_and_exit_1(listening: socket.socket) -> None:
    taken = listening.getsockname()[1]
    result = gateway(*STANDALONE, "--upstream", f"http://127.0.0.1:{taken}/mcp",
                     "--listen", f"127.0.0.1:{taken}",
                     "--admin-listen", f"127.0.0.1:{free_port()}")  # fmt: skip
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{taken}" in one_line(result)


def test_the_same_port_for_mcp_and_admin_is_one_line_and_exit_1(
    listening: socket.socket,
) -> None:
    """Both listeners bind the port (SO_REUSEADDR), only one can listen: the gateway used to
    keep serving MCP and answer its admin URL from the MCP app (a 404 for /metrics)."""
    port = free_port()
    result = gateway(*STANDALONE, "--upstream", f"http://127.0.0.1:{listening.getsockname()[1]}/mcp",
                     "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{port}",
                     timeout=30)  # fmt: skip
    assert result.returncode == 1
    assert one_line(result) == (
        f"error: REMIT_ADMIN_LISTEN (--admin-listen): cannot listen on 127.0.0.1:{port}: "
        "Address already in use"
    )


def test_an_unreachable_upstream_is_one_line_and_exit_1() -> None:
    dead = free_port()
    result = gateway(*STANDALONE, "--upstream", f"http://127.0.0.1:{dead}/mcp",
                     "--listen", f"127.0.0.1:{free_port()}",
                     "--admin-listen", f"127.0.0.1:{free_port()}")  # fmt: skip
    assert result.returncode == 1
    line = one_line(result)
    assert f"cannot reach the upstream http://127.0.0.1:{dead}/mcp" in line
    assert "Connection refused" in line


def test_an_unreadable_key_is_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    result = gateway("--public-key", str(tmp_path / "missing.pem"), "--server", "files",
                     "--namespace", "agents")  # fmt: skip
    assert result.returncode == 2
    assert "missing.pem: cannot read key" in one_line(result)


def test_a_healthy_start_says_what_it_serves_and_sigterm_stops_it_promptly(
    listening: socket.socket, tmp_path: Path
) -> None:
    """The server has no tick polling for the exit (gateway/quietserver.py): SIGTERM itself
    wakes it, and the gateway stops gracefully (exit 0) at once."""
    upstream = f"http://127.0.0.1:{listening.getsockname()[1]}/mcp"
    port, admin = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "remit", "gateway", *STANDALONE, "--upstream", upstream,
         "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin}",
         "--audit-file", str(tmp_path / "d.jsonl")],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        wait_for_port("127.0.0.1", port, 30)  # serving: its server waits to be told to exit
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(10)
        stopped = time.monotonic() - began
    finally:
        process.kill()
        process.wait(30)
    assert process.returncode == 0
    assert stopped < 3, f"SIGTERM took {stopped:.2f} s"  # ~0.2 s; generous for a loaded machine
    assert line.startswith(
        f"remit gateway: serving agents/files at http://127.0.0.1:{port}/mcp -> {upstream}; "
        f"admin http://127.0.0.1:{admin}; bundle sha256:"
    ), line
    assert line.rstrip().endswith(f"decision records to {tmp_path / 'd.jsonl'}")
