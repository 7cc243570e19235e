"""Test servers' ports (``tests/support/ports.py``): the shared helper never hands out a port
the kernel picks for others, nor one number twice.

Why binding port 0 and closing is not enough (the kernel hands a picked-and-closed number to
the next ``bind(("", 0))`` of any process) is a kernel fact, described in ``ports.py``: a test
of it took ~1.7 s of binds and tested the kernel, not Remit, so there is none here."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ports


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
