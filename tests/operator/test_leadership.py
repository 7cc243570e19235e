"""Who runs the sync loops: kopf's peering rule read from the peering object, and the loops
as the operator's own tasks (no kopf daemon, so no finalizer), started and stopped with it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import kopf
import pytest

from remit_operator.handlers import register
from remit_operator.leader import MAX_PEERS, leads
from remit_operator.runtime import Runtime
from remit_operator.settings import Settings
from remit_operator.syncers import Syncers
from tests.support.policies import resources, server

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def peer(priority: int, seen_ago: float = 1.0, lifetime: int = 60) -> dict[str, object]:
    seen = (NOW - timedelta(seconds=seen_ago)).isoformat()
    return {"priority": priority, "lifetime": lifetime, "lastseen": seen}


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, True),  # nobody else
        ({}, True),
        ({"me": peer(5)}, True),  # only itself
        ({"me": peer(5), "other": peer(3)}, True),  # the others rank lower
        ({"me": peer(5), "other": peer(9)}, False),  # a live peer ranks higher
        ({"me": peer(5), "other": peer(5)}, False),  # a tie pauses everyone (as kopf does)
        ({"me": peer(5), "other": peer(9, seen_ago=61)}, True),  # that peer is dead
        ({"other": {"priority": "high", "lastseen": NOW.isoformat()}}, False),  # unreadable
        ({"other": {"priority": 1, "lastseen": "yesterday"}}, False),
        ({"other": "gibberish"}, False),
    ],
)
def test_a_replica_leads_as_kopf_peering_decides(
    status: dict[str, object] | None, expected: bool
) -> None:
    assert leads(status, "me", 5, NOW) is expected


def test_a_peering_object_with_too_many_peers_is_not_trusted() -> None:
    crowd = {f"p{n}": peer(1) for n in range(MAX_PEERS + 1)}
    assert leads(crowd, "me", 5, NOW) is False


async def test_loops_run_only_while_leading_after_the_first_listing_and_stop_on_deletion() -> None:
    rt = Runtime(Settings())  # never started: the loops wait for the key, which is enough here
    for resource in resources(server("files"), server("tickets")):
        rt.index.upsert(resource)
    syncers = Syncers(rt)
    syncers.lead(True)
    syncers.ensure("agents/files")
    assert syncers.running() == set()  # kopf has not listed every kind yet: no partial view
    syncers.listed()
    assert syncers.running() == {"agents/files", "agents/tickets"}

    syncers.lead(False)  # peering: another replica leads
    await asyncio.sleep(0)
    assert syncers.running() == set()
    syncers.ensure("agents/files")  # events while standing by start nothing
    assert syncers.running() == set()
    syncers.lead(True)
    assert syncers.running() == {"agents/files", "agents/tickets"}

    kept = syncers.get("agents/files")
    syncers.forget("agents/files")  # deleted: its loop ends, a re-created server starts afresh
    await asyncio.sleep(0)
    assert syncers.running() == {"agents/tickets"}
    assert syncers.get("agents/files") is not kept

    await syncers.close()
    assert syncers.running() == set()


def test_no_handler_of_the_operator_needs_a_finalizer() -> None:
    """kopf puts its finalizer on an object when a daemon, a timer or a non-optional on.delete
    handler serves it; the operator has none, so deletion never waits for it."""
    registry = kopf.OperatorRegistry()
    register(registry, Runtime(Settings()))
    spawning = registry._spawning.get_all_handlers()
    changing = registry._changing.get_all_handlers()
    assert list(spawning) == []
    assert [h.id for h in changing if h.requires_finalizer] == []
    assert len(registry._watching.get_all_handlers()) == 4  # three kinds and the pods
