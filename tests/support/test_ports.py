"""Test servers' ports (``tests/support/ports.py``): why binding port 0 and closing could hand
one number to two servers, and that the shared helper cannot."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ports

KERNEL_TRIES = 300_000  # ~14,000 expected (one of the range's odd ports); 300,000: P(miss) ~ 1e-9


def kernel_pick() -> int:
    """A port the way ``remit.gateway.ports.free_port`` picks one: bind port 0, close."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_the_kernel_hands_a_picked_and_closed_port_to_the_next_asker() -> None:
    """The cause of the flake: nothing reserves a number picked this way, so two picks in a row
    (a gateway's MCP and admin ports) or two processes can get the same one."""
    first = kernel_pick()
    assert any(kernel_pick() == first for _ in range(KERNEL_TRIES))


def test_the_helper_never_picks_a_kernel_port_nor_the_same_port_twice() -> None:
    low, high = ports.ephemeral_range()
    picked = [ports.free_port() for _ in range(300)]
    assert not [port for port in picked if low <= port <= high]
    assert len(set(picked)) == len(picked)


def test_the_halves_of_a_pair_have_disjoint_slices() -> None:
    whole = ports.outside(ports.ephemeral_range())
    first, second = ports.slice_of(whole, "0/2"), ports.slice_of(whole, "1/2")
    assert len(first) == len(second) >= len(whole) // 2 - 1
    assert not set(first) & set(second)
    assert set(first) | set(second) <= set(whole)
    assert ports.slice_of(whole, None) == ports.slice_of(whole, "") == whole


@pytest.mark.parametrize("spec", ["2/2", "1", "a/2", "-1/2", "0/0", "0/65", " 0/2"])
def test_a_malformed_slice_names_the_variable(spec: str) -> None:
    with pytest.raises(ValueError, match=f"REMIT_TEST_PORT_SLICE: .*{spec!r}"):
        ports.slice_of(range(10_000, 30_000), spec)


def test_the_ports_are_the_larger_run_outside_the_ephemeral_range(tmp_path: Path) -> None:
    setting = tmp_path / "ip_local_port_range"
    setting.write_text("32768\t60999\n")
    assert ports.outside(ports.ephemeral_range(setting)) == range(10_000, 32_768)
    assert ports.outside((1024, 40_000)) == range(40_001, 65_536)
    assert ports.ephemeral_range(tmp_path / "missing") == (49_152, 65_535)
    with pytest.raises(RuntimeError, match=r"1024-65000 .* leaves only 535 ports"):
        ports.outside((1024, 65_000))


@pytest.fixture
def held() -> Iterator[int]:
    """A helper port something listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports.free_port()))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_held_port_is_skipped(held: int) -> None:
    other = ports.free_port()
    walk = ports.PortWalk([held, other], random.Random(0))
    assert walk.take() == other
    assert walk.take() == other  # round again: still the only free one
    with pytest.raises(RuntimeError, match="no free port"):
        ports.PortWalk([held]).take()
