"""Taking a listener's port, and picking ports: a port is ours only once we listen on it.

The gateway sets ``SO_REUSEADDR`` (a restarted gateway takes its port back over connections
still in TIME_WAIT). That also lets another socket bind the same port as long as neither
listens: the kernel refuses only the second ``listen()``, and uvloop's
``create_server(sock=...)`` swallows that refusal (``UVStreamServer._fatal_error`` drops an
``OSError``), returning a server that never accepts. A gateway whose admin port another
process bound in the meantime thus started, served its MCP port, and had its admin URL
answered by the other process. So ``listen_on`` listens at once: a port lost is one
``StartupError`` naming the setting, and connections made before serving starts wait in the
backlog.

A number picked by binding port 0 and closing (``free_port``) is free for anyone until bound:
fine for the demo's child processes (``free_ports`` at least never repeats a number), not for
a listener of this process: that one listens on port 0 (``listen_on(host, 0, ...)``) and hands
the socket itself to its listener (``ListenerSettings.sock``; the standalone consent page's
``--consent-listen auto``), so nothing else can take the port in between.
"""

from __future__ import annotations

import contextlib
import socket
import time

from remit.errors import StartupError

BACKLOG = 2048  # uvicorn's default; its create_server listens again with the same


def listen_on(host: str, port: int, setting: str) -> socket.socket:
    """A socket listening on ``host:port`` (port 0: one the kernel picks); ``StartupError``
    naming ``setting`` if the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise StartupError(f"{setting}: cannot listen on {host}:{port}: {reason}") from exc
    return sock


def free_port(host: str = "127.0.0.1") -> int:
    """An ephemeral port that is free right now (anyone may take it before it is bound)."""
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` different ephemeral ports free right now.

    Each socket stays bound until all are picked: picked one after the other and closed, the
    kernel may hand one number out twice (two listeners on one port fail the start).
    """
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def wait_for_port(host: str, port: int, timeout: float) -> None:
    """Block until ``host:port`` accepts a TCP connection; TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port}") from exc
            time.sleep(0.02)
