"""Aggregating refusals of unauthenticated callers, with an injected clock (no sleeping).

The first refusal of a (source, reason, kind) window is recorded at once; identical ones in the
window are counted and written as one summary record when it closes; the counts add up to
every refusal; sources beyond the window limit share one overflow window.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from remit.audit import AuditChain, AuditSettings, open_chain
from remit.gateway.hooks import HttpRequest
from remit.gateway.metrics import Metrics
from remit.gateway.recorder import Recorder
from remit.gateway.refusals import (
    OVERFLOW_SOURCE,
    AnonymousRefusals,
    RefusalAggregator,
    RefusalKey,
)
from remit.policy.decision import Reason
from remit.policy.request import Identity
from tests.support.stack import metric_value


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def key(source: str = "10.0.0.1", kind: str = "invalid_token") -> RefusalKey:
    return RefusalKey(source, "unauthenticated", kind)


def test_the_first_refusal_opens_a_window_and_identical_ones_are_counted() -> None:
    clock = Clock()
    windows = RefusalAggregator(60, clock=clock)
    assert windows.note(key(), "bad signature") is not None
    assert [windows.note(key(), "bad signature") for _ in range(5)] == [None] * 5
    assert windows.aggregated == 5
    assert windows.due() == []  # still open
    clock.now += 60
    (summary,) = windows.due()
    assert (summary.key, summary.count, summary.seconds) == (key(), 5, 60)
    assert "5 more identical refusals from 10.0.0.1" in summary.describe()
    assert len(windows) == 0


def test_another_source_or_kind_gets_its_own_window() -> None:
    windows = RefusalAggregator(60, clock=Clock())
    assert windows.note(key("10.0.0.1"), "m") is not None
    assert windows.note(key("10.0.0.2"), "m") is not None
    assert windows.note(key("10.0.0.1", "invalid_request"), "m") is not None
    assert windows.aggregated == 0


def test_a_refusal_after_the_interval_closes_the_window_and_opens_another() -> None:
    clock = Clock()
    windows = RefusalAggregator(10, clock=clock)
    windows.note(key(), "m")
    windows.note(key(), "m")
    clock.now += 10
    assert windows.note(key(), "m") is not None  # recorded again, as a new window's first
    (summary,) = windows.due()
    assert summary.count == 1


def test_a_window_without_repeats_writes_no_summary() -> None:
    clock = Clock()
    windows = RefusalAggregator(10, clock=clock)
    windows.note(key(), "m")
    clock.now += 11
    assert windows.due() == []


def test_interval_zero_records_every_refusal() -> None:
    windows = RefusalAggregator(0, clock=Clock())
    assert all(windows.note(key(), "m") is not None for _ in range(3))
    assert windows.aggregated == 0


def test_sources_beyond_the_limit_share_an_overflow_window() -> None:
    windows = RefusalAggregator(60, max_windows=2, clock=Clock())
    windows.note(key("a"), "m")
    windows.note(key("b"), "m")
    overflow = windows.note(key("c"), "m")
    assert overflow is not None
    assert overflow.key.source == OVERFLOW_SOURCE
    assert windows.note(key("d"), "m") is None  # counted into the overflow window
    (summary,) = windows.due(final=True)
    assert (summary.key.source, summary.count) == (OVERFLOW_SOURCE, 1)


def test_final_closes_every_open_window() -> None:
    windows = RefusalAggregator(60, clock=Clock())
    windows.note(key("a"), "m")
    windows.note(key("a"), "m")
    windows.note(key("b"), "m")
    windows.note(key("b"), "m")
    assert sorted(s.key.source for s in windows.due(final=True)) == ["a", "b"]


@pytest.fixture
async def chain(tmp_path: Path) -> AsyncIterator[AuditChain]:
    settings = AuditSettings(sink="file", path=tmp_path / "audit.jsonl")
    chain = await open_chain(settings, server="agents/files", pod="p")
    try:
        yield chain
    finally:
        await chain.close()


def _request(host: str) -> HttpRequest:
    return HttpRequest("POST", "/mcp", b"", (), (host, 40000))


async def test_records_add_up_to_every_refusal(chain: AuditChain, tmp_path: Path) -> None:
    clock = Clock()
    metrics = Metrics()
    refusals = AnonymousRefusals(
        Recorder(chain, metrics, "p"), metrics, RefusalAggregator(60, clock=clock)
    )
    for _ in range(100):
        await refusals.refuse(None, _request("10.0.0.9"), "unauthenticated", "invalid_token", "x")
    await refusals.refuse(None, _request("10.0.0.8"), "unauthenticated", "invalid_token", "x")
    clock.now += 61
    await refusals.flush(None)
    await chain.close()
    lines = (tmp_path / "audit.jsonl").read_bytes().splitlines()
    records = [orjson.loads(line) for line in lines][1:]  # after the chain marker
    assert len(records) == 3
    first, other, summary = records
    assert (first["source"], first.get("count", 1)) == ("10.0.0.9", 1)
    assert other["source"] == "10.0.0.8"
    assert (summary["source"], summary["count"]) == ("10.0.0.9", 99)
    assert first["id"] in summary["message"]
    assert sum(r.get("count", 1) for r in records) == 101
    text = metrics.render().decode()
    assert metric_value(text, "remit_refusals_aggregated_total", reason="unauthenticated") == 99
    assert (
        metric_value(text, "remit_decisions_total", effect="deny", reason="unauthenticated") == 101
    )


async def test_an_authenticated_flood_is_aggregated_per_caller(
    chain: AuditChain, tmp_path: Path
) -> None:
    """A valid token does not buy the right to fill the disk: identical protocol refusals of
    one caller share a window (and its summary names the caller), another caller has its own."""
    clock = Clock()
    metrics = Metrics()
    refusals = AnonymousRefusals(
        Recorder(chain, metrics, "p"), metrics, RefusalAggregator(60, clock=clock)
    )
    alice, bob = Identity("alice", "bot", "https://idp"), Identity("bob", "bot", "https://idp")
    for _ in range(500):
        await refusals.refuse(
            None, _request("10.0.0.9"), Reason.INVALID_REQUEST, "invalid_request/400",
            "Parse error", identity=alice, session="s-1",
        )  # fmt: skip
    await refusals.refuse(
        None, _request("10.0.0.9"), Reason.INVALID_REQUEST, "invalid_request/400", "Parse error",
        identity=bob,
    )  # fmt: skip
    clock.now += 61
    await refusals.flush(None)
    await chain.close()
    lines = (tmp_path / "audit.jsonl").read_bytes().splitlines()
    records = [orjson.loads(line) for line in lines][1:]
    assert [(r["subject"], r.get("count", 1)) for r in records] == [
        ("alice", 1),
        ("bob", 1),
        ("alice", 499),
    ]
    assert records[0]["session"] is not None  # the first keeps its session (hashed)
    assert "source" not in records[0]  # an identified caller is named, not its address
    assert sum(r.get("count", 1) for r in records) == 501


async def test_the_flusher_sleeps_until_a_window_opens_then_writes_its_summary(
    chain: AuditChain, tmp_path: Path
) -> None:
    clock = Clock()
    metrics = Metrics()
    refusals = AnonymousRefusals(
        Recorder(chain, metrics, "p"), metrics, RefusalAggregator(0.2, clock=clock)
    )
    flusher = asyncio.create_task(refusals.run(lambda: None))
    try:
        for _ in range(5):
            await asyncio.sleep(0)
        timers = asyncio.get_running_loop()._scheduled  # type: ignore[attr-defined]
        assert not [t for t in timers if "_set_result_unless_cancelled" in repr(t)]  # no sleep
        for _ in range(3):
            await refusals.refuse(None, _request("10.0.0.9"), "unauthenticated", "bad", "x")
        clock.now += 1  # the window has closed; the flusher writes it within interval / 4
        for _ in range(200):
            if not refusals.aggregator:
                break
            await asyncio.sleep(0.01)
    finally:
        flusher.cancel()
    await chain.close()
    lines = (tmp_path / "audit.jsonl").read_bytes().splitlines()
    records = [orjson.loads(line) for line in lines][1:]
    assert [r.get("count", 1) for r in records] == [1, 2]
