"""Scheduling at scale: urgent syncs before periodic ones, spread resyncs, and the work a sync
skips when nothing it depends on changed (slim index documents, no re-parse, no recompile)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from remit.api.consentgrant import ConsentGrant
from remit.api.loader import parse
from remit.policy.bundle import Bundle
from remit_operator.bundling import Signed
from remit_operator.index import Index
from remit_operator.intake import essentials, parsed
from remit_operator.lanes import JITTER, Lanes
from remit_operator.runtime import Runtime
from remit_operator.sync import Syncer
from tests.operator.support import operator_settings
from tests.support.policies import LATER, NOW, grant, policy, rule, server


async def test_a_periodic_sync_waits_while_an_urgent_one_runs() -> None:
    lanes = Lanes(slots=1, patience=60)
    order: list[str] = []
    wake = asyncio.Event()

    async def periodic() -> None:
        async with lanes.periodic(wake) as entered:
            assert entered
            order.append("periodic")

    async with lanes.urgent():
        task = asyncio.create_task(periodic())
        await asyncio.sleep(0.05)
        order.append("urgent done")
    await asyncio.wait_for(task, 5)
    assert order == ["urgent done", "periodic"]


async def test_a_periodic_sync_starts_after_its_patience_even_if_urgent_ones_run() -> None:
    lanes = Lanes(slots=1, patience=0.05)
    async with lanes.urgent(), lanes.periodic(asyncio.Event()) as entered:
        assert entered


async def test_a_wake_abandons_the_wait_for_a_periodic_slot_and_holds_nothing() -> None:
    lanes = Lanes(slots=1, patience=60)
    wake = asyncio.Event()
    outcome: list[bool] = []

    async def waiting() -> None:
        async with lanes.periodic(wake) as entered:
            outcome.append(entered)

    async with lanes.periodic(asyncio.Event()) as first:  # the only slot is taken
        assert first
        task = asyncio.create_task(waiting())
        await asyncio.sleep(0.02)
        wake.set()  # a change for that server: its urgent sync must not queue here
        await asyncio.wait_for(task, 5)
    assert outcome == [False]
    async with lanes.periodic(asyncio.Event()) as again:  # the slot was given back
        assert again


async def test_a_cancelled_wait_for_a_periodic_slot_holds_nothing() -> None:
    lanes = Lanes(slots=1, patience=60)
    async with lanes.periodic(asyncio.Event()):
        task = asyncio.create_task(lanes.periodic(asyncio.Event()).__aenter__())
        await asyncio.sleep(0.02)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    async with lanes.periodic(asyncio.Event()) as entered:
        assert entered


def test_periodic_checks_are_spread_over_the_interval_then_jittered() -> None:
    draws = iter([0.0, 0.999, 0.0, 1.0])
    lanes = Lanes(rng=lambda: next(draws))
    assert lanes.spread(30, first=True) == 0.0
    assert 29.9 < lanes.spread(30, first=True) < 30
    assert lanes.spread(30, first=False) == 30 * (1 - JITTER)
    assert lanes.spread(30, first=False) == 30 * (1 + JITTER)


def _body(generation: int, *, revoked: bool = False) -> dict[str, object]:
    doc = grant("alice", expires_at=LATER)
    doc["spec"]["revoked"] = revoked
    doc["metadata"].update(
        uid="u-1",
        generation=generation,
        resourceVersion=str(10 + generation),
        labels={"team": "a"},
        annotations={"kubectl.kubernetes.io/last-applied-configuration": "{...}" * 1000},
        managedFields=[{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
    )
    doc["status"] = {"phase": "Active"}
    return doc


def test_the_index_keeps_what_compiling_reads_and_no_more() -> None:
    slim = essentials(_body(1), "ConsentGrant")
    assert set(slim) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(slim["metadata"]) == {"name", "namespace", "uid", "resourceVersion", "generation"}
    parsed_grant = parse(slim, "agents/alice")
    assert isinstance(parsed_grant, ConsentGrant)
    assert parsed_grant.metadata.annotations == {}


def test_an_unchanged_spec_is_not_parsed_again_and_a_changed_one_is() -> None:
    index = Index()
    first = parsed(index, "ConsentGrant", _body(1), "agents/alice")
    index.upsert(first)
    status_write = _body(1)
    status_write["status"] = {"phase": "Active", "conditions": []}
    assert parsed(index, "ConsentGrant", status_write, "agents/alice") is first
    revoked = parsed(index, "ConsentGrant", _body(1, revoked=True), "agents/alice")
    assert revoked is not first  # the spec changed (whatever the generation says)
    assert isinstance(revoked, ConsentGrant)
    assert revoked.spec.revoked


async def test_a_sync_with_unchanged_inputs_compiles_nothing(tmp_path: Path) -> None:
    rt = Runtime(operator_settings(tmp_path), clock=lambda: NOW)
    for doc in (server("files"), policy("bot", rule("read", tools=["read_*"]))):
        rt.index.upsert(parse(doc, "x"))
    syncer = Syncer("agents/files", rt)
    compiled: list[int] = []
    syncer._sign = lambda bundle: compiled.append(1) or _signed(bundle)  # type: ignore[method-assign]
    files = rt.index.servers["agents/files"]
    first = syncer._compile(files, NOW)
    syncer.signed = first
    assert syncer._compile(files, NOW) is first
    rt.index.upsert(parse(grant("alice", expires_at=LATER), "x"))  # a new input
    assert syncer._compile(files, NOW) is not first
    assert len(compiled) == 2


def _signed(bundle: Bundle) -> Signed:
    return Signed(bundle.model_copy(update={"serial": 1}))
