"""The file sink's default durability: written before the caller resumes, synced behind it by
one group-committed fsync, with sync points a caller can wait for; a failed or stalled sync
fails closed. Syncs are held and released by the test (injected fsync, injected clock)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from remit.audit import AuditSettings, FileSink, sink_from_settings
from remit.errors import AuditError
from tests.dataplane.audit.helpers import HeldSync, wait_until


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _sink(path: Path, sync: HeldSync, clock: Clock | None = None) -> FileSink:
    """The sink the gateway's default settings open, with the test's fsync and clock."""
    settings = AuditSettings(sink="file", path=path)
    assert (settings.fsync, settings.fsync_wait, settings.fsync_strict) == (True, True, False)
    return FileSink(
        path, fsync_strict=False, fsync_function=sync, clock=clock or Clock(), timeout=5.0
    )


async def test_the_default_settings_open_a_sink_with_sync_points(tmp_path: Path) -> None:
    sink = sink_from_settings(AuditSettings(sink="file", path=tmp_path / "log"))
    await sink.submit(b"a\n", key="a", follows=None)
    point = sink.sync_point() if isinstance(sink, FileSink) else None
    assert point is not None
    await point.wait()
    await sink.close()


async def test_a_line_is_written_when_its_caller_resumes_and_durable_at_its_point(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log"
    sync = HeldSync(path)
    sink = _sink(path, sync)
    await sink.submit(b"decision\n", key="d", follows=None)
    assert path.read_bytes() == b"decision\n"  # in the kernel before the caller goes on
    point = sink.sync_point()
    assert point is not None
    await sync.started()  # its sync runs while the caller works
    assert not point.durable()
    waiting = asyncio.ensure_future(point.wait())
    await asyncio.sleep(0)
    assert not waiting.done()
    sync.release.release()
    await waiting
    assert point.durable()
    assert sync.sizes == [len(b"decision\n")]
    await sink.close()


async def test_lines_written_during_a_sync_share_the_next_one(tmp_path: Path) -> None:
    path = tmp_path / "log"
    sync = HeldSync(path)
    sink = _sink(path, sync)
    await sink.submit(b"a\n", key="a", follows=None)
    first = sink.sync_point()
    await sync.started()
    for key in "bcd":  # written while the first sync runs: one group commit after it
        await sink.submit(f"{key}\n".encode(), key=key, follows=sink.tail)
    last = sink.sync_point()
    assert first is not None
    assert last is not None
    sync.release.release()
    await first.wait()
    assert not last.durable()
    await sync.started()
    sync.release.release()
    await last.wait()
    assert sync.sizes == [2, 8]  # two syncs for four lines
    await sink.close()


async def test_a_failed_sync_fails_its_point_and_refuses_every_later_line(tmp_path: Path) -> None:
    path = tmp_path / "log"
    sync = HeldSync(path)
    sink = _sink(path, sync)
    await sink.submit(b"a\n", key="a", follows=None)
    point = sink.sync_point()
    assert point is not None
    sync.fail = True
    await sync.started()
    sync.release.release()
    with pytest.raises(AuditError, match="fsync failed"):
        await point.wait()
    assert sink.health().state == "failing"
    with pytest.raises(AuditError, match="fsync failed"):
        await sink.submit(b"b\n", key="b", follows="a")
    await sink.close()


async def test_a_line_not_synced_within_the_bound_stalls_the_sink(tmp_path: Path) -> None:
    """The bound on an outcome's sync: a line written while a sync runs is covered by the next
    one; if that does not finish within ``timeout`` of the line's write, the sink is stalled
    (``/readyz`` fails, lines are refused) until it does."""
    path = tmp_path / "log"
    sync = HeldSync(path)
    clock = Clock()
    sink = _sink(path, sync, clock)
    await sink.submit(b"decision\n", key="d", follows=None)
    assert sink.sync_point() is not None  # someone waits for it: its sync starts now
    await sync.started()
    clock.now = 4.0
    await sink.submit(b"outcome\n", key="o", follows="d")  # written during the first sync
    sync.release.release()  # the decision is durable; the outcome's sync starts (delay up)
    await sync.started()
    outcome = sink.sync_point()
    assert outcome is not None
    clock.now = 8.9  # 4.9 s after the outcome was written: within the bound
    assert sink.health().state == "ok"
    clock.now = 9.0
    health = sink.health()
    assert health.state == "stalled"
    assert "not synced" in health.reason
    with pytest.raises(AuditError, match="stalled"):
        await outcome.wait()
    with pytest.raises(AuditError, match="stalled"):
        await sink.submit(b"next\n", key="n", follows="o")
    clock.now = 8.0  # (back within the bound, so a waiter can be registered)
    with pytest.raises(AuditError, match="stalled"):
        await outcome.wait()  # its verdict stands: a point fails once
    again = sink.sync_point()  # (the same line, a new point)
    assert again is not None
    waiting = asyncio.ensure_future(again.wait())
    await asyncio.sleep(0)
    sync.release.release()  # the disk answers: the outcome is durable, the sink recovers
    await waiting
    clock.now = 100.0
    assert sink.health().state == "ok"
    await sink.close()


async def test_strict_and_behind_modes_hand_out_no_points(tmp_path: Path) -> None:
    strict = FileSink(tmp_path / "strict")  # each line synced before its caller resumes
    behind = FileSink(tmp_path / "behind", fsync_wait=False, fsync_strict=False)
    off = FileSink(tmp_path / "off", fsync=False, fsync_strict=False)
    for sink in (strict, behind, off):
        await sink.submit(b"a\n", key="a", follows=None)
        assert sink.sync_point() is None
        await sink.close()


async def test_a_line_nobody_waits_for_is_synced_by_the_next_wait(tmp_path: Path) -> None:
    """An outcome (no point taken) and the next decision (a point taken): one fsync."""
    path = tmp_path / "log"
    sync = HeldSync(path)
    sink = FileSink(path, fsync_strict=False, sync_delay=3600.0, fsync_function=sync)
    await sink.submit(b"outcome\n", key="o", follows=None)
    await sink.submit(b"decision\n", key="d", follows="o")
    point = sink.sync_point()
    assert point is not None
    await sync.started()
    sync.release.release()
    await point.wait()
    assert sync.sizes == [len(b"outcome\ndecision\n")]
    await sink.close()


async def test_a_line_nobody_waits_for_is_synced_within_the_delay(tmp_path: Path) -> None:
    path = tmp_path / "log"
    sync = HeldSync(path)
    sink = FileSink(path, fsync_strict=False, sync_delay=0.01, fsync_function=sync)
    await sink.submit(b"outcome\n", key="o", follows=None)
    await sync.started()  # no point was taken: the delay started it
    sync.release.release()
    await sink.close()
    assert sync.sizes == [len(b"outcome\n")]


async def test_a_waiter_whose_timer_fires_after_its_sync_completed_is_served(
    tmp_path: Path,
) -> None:
    """The sync completes in the loop turn its waiter's timer fires in (the settle it
    scheduled not yet run): the record is durable, so the waiter is served, not failed."""
    path = tmp_path / "log"
    sync = HeldSync(path)
    sink = _sink(path, sync)
    await sink.submit(b"decision\n", key="d", follows=None)
    point = sink.sync_point()
    assert point is not None
    await sync.started()
    waiting = asyncio.ensure_future(point.wait())
    await asyncio.sleep(0)
    syncer = sink._behind
    assert syncer is not None
    ((generation, future, _),) = syncer._waiters
    sync.release.release()
    wait_until(lambda: syncer.durable >= generation)  # (the loop is blocked: no settle yet)
    syncer._expire(generation, future)  # the timer runs first
    await waiting
    assert point.durable()
    await sink.close()


async def test_a_point_that_failed_stays_failed_when_its_sync_completes_late(
    tmp_path: Path,
) -> None:
    """One verdict per point: the outcome that said "withheld" and the gate on the answer
    must agree, so a late sync does not turn a failed point durable."""
    path = tmp_path / "log"
    sync = HeldSync(path)
    clock = Clock()
    sink = _sink(path, sync, clock)
    await sink.submit(b"decision\n", key="d", follows=None)
    point = sink.sync_point()
    assert point is not None
    await sync.started()
    clock.now = 5.0  # the bound is up: the outcome's wait fails
    with pytest.raises(AuditError, match="stalled"):
        await point.wait()
    sync.release.release()  # the disk answers late
    await asyncio.to_thread(wait_until, lambda: sink.health().state == "ok")
    assert not point.durable()
    with pytest.raises(AuditError, match="stalled"):
        await point.wait()  # the gate's wait: the same verdict
    await sink.close()


async def test_a_waiter_fails_within_the_bound_of_the_write_not_of_its_wait(
    tmp_path: Path,
) -> None:
    """A decision can hold its answer at most ``timeout`` after its line was written: a wait
    that begins late gets only what is left of the bound."""
    path = tmp_path / "log"
    sync = HeldSync(path)
    clock = Clock()
    sink = _sink(path, sync, clock)  # timeout 5 s
    await sink.submit(b"decision\n", key="d", follows=None)
    point = sink.sync_point()
    assert point is not None
    await sync.started()
    clock.now = 5.0 - 1e-6  # written almost the whole bound ago; the wait begins now
    with pytest.raises(AuditError, match="stalled"):
        await asyncio.wait_for(point.wait(), 2.0)  # not another 5 s
    sync.release.release()
    await sink.close()
