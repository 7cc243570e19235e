"""A listener's port is the gateway's only once it listens (``ports.listen_on``).

With ``SO_REUSEADDR`` two sockets bind one port as long as neither listens; the kernel refuses
only the second ``listen()``, and uvloop's ``create_server(sock=...)`` swallowed that refusal.
A gateway whose admin port had been bound by another gateway's MCP listener kept serving
its MCP port, and its admin URL was answered by the other gateway (a CI flake). The real
gateway process with both ports the same is in tests/dataplane/cli/test_gateway_start.py.
A port a process picks for its own listener is listened on when picked and its socket handed
to that listener (``ListenerSettings.sock``); ports for other processes are at least all
different (``free_ports``). Both servers serve the socket listened on at start (granian through
``granianserver.HandedServer``), and ``BackgroundServer.start`` returns once the server serves.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from collections.abc import Iterator
from typing import Any, Literal

import pytest

from remit.errors import StartupError
from remit.gateway.background import BackgroundServer
from remit.gateway.ports import free_ports, listen_on
from remit.gateway.runner import ListenerSettings, bind, bind_all
from tests.support.ports import free_port

SERVERS = ["uvicorn", "granian"]
Server = Literal["granian", "uvicorn"]


def _reusing(port: int) -> socket.socket:
    sock = socket.socket()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


def test_two_reusing_sockets_share_a_port_until_one_listens() -> None:
    """The kernel's rule the gateway relied on wrongly: bind() succeeds twice, listen() once."""
    port = free_port()
    with _reusing(port) as first, _reusing(port) as second:
        second.listen()
        with pytest.raises(OSError, match="Address already in use"):
            first.listen()


def test_two_listeners_on_one_port_fail_the_start_naming_the_second() -> None:
    port = free_port()
    with pytest.raises(StartupError) as raised:
        bind_all(
            [ListenerSettings(port=port, name="mcp"), ListenerSettings(port=port, name="admin")]
        )
    assert str(raised.value) == f"admin: cannot listen on 127.0.0.1:{port}: Address already in use"
    bind(ListenerSettings(port=port)).close()  # the first listener's socket was released


def test_a_bound_listener_already_accepts_and_holds_its_port() -> None:
    port = free_port()
    with bind(ListenerSettings(port=port)) as ours:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # queued in the backlog before any server runs
        with pytest.raises(OSError, match="Address already in use"):
            _reusing(port)  # another gateway can no longer even bind it
        assert ours.getsockname()[1] == port


def test_ports_picked_together_are_different_and_released() -> None:
    """The demo's four ports: all different (each is held until all are picked), and none
    still held once picked (its child process must be able to bind it)."""
    picked = free_ports(4)
    assert len(set(picked)) == 4
    for port in picked:
        with socket.socket() as again:
            again.bind(("127.0.0.1", port))  # no SO_REUSEADDR: fails if still bound


def test_a_listener_serves_the_socket_it_brings_and_only_that_listener() -> None:
    """``--consent-listen auto``: the port is listened on when picked and the socket handed to
    the page's listener alone; another listener named on that port fails, naming its own
    setting, and a start that fails closes the brought socket too."""
    picked = listen_on("127.0.0.1", 0, "--consent-listen")
    port = picked.getsockname()[1]
    with pytest.raises(OSError, match="Address already in use"):
        _reusing(port)  # no other process can take it meanwhile
    page = ListenerSettings(port=port, name="--consent-listen", sock=picked)
    with pytest.raises(StartupError) as raised:
        bind_all([ListenerSettings(port=port, name="REMIT_LISTEN (--listen)"), page])
    assert str(raised.value).startswith(
        f"REMIT_LISTEN (--listen): cannot listen on 127.0.0.1:{port}"
    )
    assert picked.fileno() == -1  # released with the failed start
    brought = listen_on("127.0.0.1", 0, "--consent-listen")
    with brought:
        page = dataclasses.replace(page, port=brought.getsockname()[1], sock=brought)
        assert bind_all([page]) == [brought]


async def _hello(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    headers = [(b"content-length", b"5")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"hello"})


@pytest.fixture
def served() -> Iterator[list[BackgroundServer]]:
    """Background servers a test started, stopped after it."""
    servers: list[BackgroundServer] = []
    yield servers
    for server in servers:
        server.stop()


@pytest.mark.parametrize("server", SERVERS)
def test_a_connection_made_before_the_server_starts_is_answered(
    server: Server, served: list[BackgroundServer]
) -> None:
    """Granian was handed no socket: it was closed and granian bound the port itself, so a
    connection queued during the start was reset (and the port was free for a moment)."""
    if server == "granian":
        pytest.importorskip("granian")
    settings = ListenerSettings(port=free_port(), server=server, lifespan=False)
    listening = bind(settings)
    with socket.create_connection(("127.0.0.1", settings.port), timeout=10) as early:
        early.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        served.append(BackgroundServer(_hello, dataclasses.replace(settings, sock=listening)))
        served[-1].start()
        answer = b""
        while chunk := early.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200")
    assert answer.endswith(b"hello")


@pytest.mark.parametrize("server", SERVERS)
def test_a_background_server_is_started_only_once_its_lifespan_start_up_is_done(
    server: Server, served: list[BackgroundServer]
) -> None:
    """The port accepts connections from the start (its backlog): readiness is the server's
    own, not a connect."""
    if server == "granian":
        pytest.importorskip("granian")
    done: list[bool] = []

    async def slow_start(scope: Any, receive: Any, send: Any) -> None:
        async def slowly() -> Any:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await asyncio.sleep(0.3)  # a start-up that takes a while (not synchronisation)
                done.append(True)
            return message

        await _hello(scope, slowly, send)

    settings = ListenerSettings(port=free_port(), server=server)
    served.append(BackgroundServer(slow_start, settings))
    served[-1].start()
    assert done == [True]


@pytest.mark.parametrize("server", SERVERS)
def test_a_background_server_whose_start_up_fails_raises_at_once(server: Server) -> None:
    if server == "granian":
        pytest.importorskip("granian")

    async def failing(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.failed", "message": "no database"})
            return
        await _hello(scope, receive, send)

    settings = ListenerSettings(port=free_port(), server=server)
    began = time.monotonic()
    with pytest.raises(StartupError, match="stopped before serving"):
        BackgroundServer(failing, settings).start(timeout=8)
    assert time.monotonic() - began < 4
    bind(settings).close()  # the port was released
