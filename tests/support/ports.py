"""Ports for the servers tests start: never one the kernel hands out, nor one the other half has.

Tests pick a port, then a child process binds it a second or so later. Picking by binding
port 0 and closing (``remit.gateway.ports.free_port``) leaves the number free for anyone
meanwhile: the kernel hands the same number to the next ``bind(("", 0))`` of any process
(two ``free_port()`` calls in a row can return one number) and to outgoing connections.
Under ``make test`` two pytest processes start gateways side by side, so a gateway's admin
port was once another gateway's MCP port (``remit.gateway.ports.listen_on`` now makes the
loser fail its start instead of half-serving).

So the ports here come from outside the kernel's ephemeral range
(``/proc/sys/net/ipv4/ip_local_port_range``): nothing takes them without being told to. Each
pytest process walks its own slice of them (``REMIT_TEST_PORT_SLICE=i/n``, which
``scripts/pytest_pair.py`` gives each half; unset, the whole range), from a random start (other
runs on the same machine start elsewhere), one port after the other, so a process never hands
out a number twice until it has gone round its slice; a port something already holds is
skipped.
"""

from __future__ import annotations

import os
import random
import socket
import threading
from collections.abc import Sequence
from pathlib import Path

SLICE_VARIABLE = "REMIT_TEST_PORT_SLICE"
EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: Below this are the default ports of services a developer may run (8080, 9000, 5432, ...).
FLOOR = 10_000
MAX_PORT = 65_535
MIN_PORTS = 1_000  # fewer outside the ephemeral range than this: a clear error, not a guess
MAX_SLICES = 64


def ephemeral_range(path: Path = EPHEMERAL) -> tuple[int, int]:
    """The kernel's ephemeral ports (inclusive); IANA's 49152-65535 where it cannot be read."""
    try:
        low, high = (int(part) for part in path.read_text().split())
    except (OSError, ValueError):
        return 49_152, MAX_PORT
    return low, high


def outside(ephemeral: tuple[int, int], floor: int = FLOOR) -> range:
    """The larger run of ports from ``floor`` up that the kernel never hands out."""
    low, high = ephemeral
    below = range(floor, max(floor, low))
    above = range(max(floor, high + 1), MAX_PORT + 1)
    ports = max(below, above, key=len)
    if len(ports) < MIN_PORTS:
        raise RuntimeError(
            f"the ephemeral port range {low}-{high} ({EPHEMERAL}) leaves only {len(ports)} "
            f"ports from {floor} up for test servers; narrow it"
        )
    return ports


def slice_of(ports: range, spec: str | None) -> range:
    """Slice ``i`` of ``n`` of ``ports`` for ``spec`` ``"i/n"``; all of them for None or ""."""
    if not spec:
        return ports
    index, _, count = spec.partition("/")
    if not (index.isdigit() and count.isdigit() and 0 <= int(index) < int(count) <= MAX_SLICES):
        raise ValueError(
            f"{SLICE_VARIABLE}: expected i/n with 0 <= i < n <= {MAX_SLICES}, got {spec!r}"
        )
    size = len(ports) // int(count)
    start = ports.start + int(index) * size
    return range(start, start + size)


def is_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be bound now (without ``SO_REUSEADDR``: nothing holds it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class PortWalk:
    """Hands out the ports of ``ports`` in turn from a random start, skipping held ones."""

    def __init__(self, ports: Sequence[int], rng: random.Random | None = None) -> None:
        self.ports = ports
        self._next = (rng or random.SystemRandom()).randrange(len(ports))
        self._lock = threading.Lock()

    def take(self, host: str = "127.0.0.1") -> int:
        """The next port free on ``host``; ``RuntimeError`` after a whole round without one."""
        with self._lock:
            for _ in range(len(self.ports)):
                port = self.ports[self._next]
                self._next = (self._next + 1) % len(self.ports)
                if is_free(host, port):
                    return port
        raise RuntimeError(f"no free port on {host} among {len(self.ports)} from {self.ports[0]}")


_walks: dict[int, PortWalk] = {}  # by process id: a forked child starts its own walk
_walks_lock = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` that no other test process of this run is handed and that the
    kernel never picks for anything (see the module)."""
    with _walks_lock:
        walk = _walks.get(os.getpid())
        if walk is None:
            ports = slice_of(outside(ephemeral_range()), os.environ.get(SLICE_VARIABLE))
            walk = _walks[os.getpid()] = PortWalk(ports)
    return walk.take(host)
