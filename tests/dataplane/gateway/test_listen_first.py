"""A listener's port is the gateway's only once it listens (``ports.listen_on``).

With ``SO_REUSEADDR`` two sockets bind one port as long as neither listens; the kernel refuses
only the second ``listen()``, and uvloop's ``create_server(sock=...)`` swallowed that refusal.
A gateway whose admin port had been bound by another gateway's MCP listener kept serving
its MCP port, and its admin URL was answered by the other gateway (a CI flake). The real
gateway process with both ports the same is in tests/dataplane/cli/test_gateway_start.py.
Ports a process picks itself are held until its listener takes them (``reserve_port``) or, for
other processes, at least all different (``free_ports``).
"""

from __future__ import annotations

import socket

import pytest

from remit.errors import StartupError
from remit.gateway.ports import free_ports, reserve_port
from remit.gateway.runner import ListenerSettings, bind, bind_all
from tests.support.ports import free_port


def _reusing(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
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


def test_ports_picked_together_are_all_different() -> None:
    """Picked one by one and closed, 600 ports repeat a number all but always (the kernel
    hands a closed port out again; P(no repeat) ~ e^-12.7): ``free_ports`` holds each until
    all are picked (the demo's four ports)."""
    picked = free_ports(600)
    assert len(set(picked)) == len(picked)


def test_a_reserved_port_is_held_until_its_listener_takes_it() -> None:
    """``--consent-listen auto``: the port is listened on when picked, so no other process can
    take it before the page's listener starts (a number from ``free_port`` could be)."""
    port = reserve_port("127.0.0.1", "--consent-listen")
    with pytest.raises(OSError, match="Address already in use"):
        _reusing(port)
    with bind(ListenerSettings(port=port, name="--consent-listen")) as taken:
        assert taken.getsockname()[1] == port
        with pytest.raises(StartupError, match="--consent-listen: cannot listen"):
            bind(ListenerSettings(port=port, name="--consent-listen"))  # handed over once
