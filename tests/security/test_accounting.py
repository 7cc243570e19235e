"""The accounting checker (tests/support/accounting.py) catches every breach it claims to.

Each test writes a real, hash-chained decision log with the audit API and the requests a
recording server would have seen (with the log size at arrival), then checks that the checker
passes an honest run and names each kind of breach: a call with no decision (a ``tools/call``
sent as a notification), a denied call that reached the server, records in the wrong order,
missing or doubled outcomes, a decision reused, an allow for a call never forwarded (what a
partly denied batch used to leave), and an edited log.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from remit.audit import AuditChain, AuditSettings, build_decision, build_outcome, open_chain
from remit.audit.records import DecisionRecord
from remit.policy.request import Identity, Request
from tests.support import accounting, stack
from tests.support.accounting import AccountingError

ALICE = Identity(subject="alice@example.com", agent="support-bot", issuer="https://idp")


class Run:
    """A log being written and the requests a server saw, in one timeline."""

    def __init__(self, path: Path, chain: AuditChain) -> None:
        self.path = path
        self.chain = chain
        self.requests: list[dict[str, Any]] = []

    async def decide(self, method: str, tool: str = "", effect: str = "allow") -> DecisionRecord:
        record = build_decision(
            Request(ALICE, method, tool),
            server="agents/files",
            pod="p",
            decision="allow" if effect == "allow" else "deny",
            reason="allowed" if effect == "allow" else "denied_by_rule",
        )
        await self.chain.append(record)
        return record

    async def outcome(self, record: DecisionRecord, kind: str = "ok") -> None:
        await self.chain.append(build_outcome(record, outcome=kind, latency_ms=1.0))

    def arrive(self, rpc: Any, *ids: str, method: str = "POST", **headers: str) -> None:
        if ids:
            headers["x-remit-decision"] = ", ".join(ids)
        size = self.path.stat().st_size
        self.requests.append({"method": method, "headers": headers, "rpc": rpc, "auditBytes": size})

    def check(self, *, verify: bool = False) -> accounting.Accounting:
        return accounting.check(self.requests, self.path, remit=stack.REMIT if verify else None)


def call(tool: str, id_: int | None = 1) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": "tools/call", "params": {"name": tool}}
    if id_ is not None:
        message["id"] = id_
    return message


@pytest.fixture
async def run(tmp_path: Path) -> AsyncIterator[Run]:
    path = tmp_path / "audit.jsonl"
    chain = await open_chain(AuditSettings(sink="file", path=path), server="agents/files", pod="p")
    try:
        yield Run(path, chain)
    finally:
        await chain.close()


async def test_an_honest_run_passes_and_is_counted(run: Run) -> None:
    read = await run.decide("tools/call", "read_file")
    run.arrive(call("read_file"), read.id)
    await run.outcome(read)
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    run.arrive(initialized)  # a protocol notification needs no decision
    stream = await run.decide("GET")
    run.arrive(None, stream.id, method="GET")
    await run.outcome(stream)
    await run.decide("tools/call", "delete_file", "deny")
    summary = run.check(verify=True)
    assert (summary.forwarded, summary.units, summary.allows, summary.denies) == (3, 2, 2, 1)


async def test_a_tools_call_sent_as_a_notification_without_a_decision_is_caught(run: Run) -> None:
    run.arrive(call("delete_file", id_=None))
    with pytest.raises(AccountingError, match=r"without an allow decision.*delete_file"):
        run.check()


async def test_a_notification_the_protocol_does_not_define_needs_a_decision(run: Run) -> None:
    run.arrive({"jsonrpc": "2.0", "method": "notifications/anything"})
    with pytest.raises(AccountingError, match="without an allow decision"):
        run.check()


async def test_a_denied_decision_that_reached_the_server_is_caught(run: Run) -> None:
    denied = await run.decide("tools/call", "delete_file", "deny")
    run.arrive(call("delete_file"), denied.id)
    with pytest.raises(AccountingError, match="denied decision"):
        run.check()


async def test_a_decision_written_after_the_request_arrived_is_caught(run: Run) -> None:
    run.arrive(call("read_file"), "placeholder")
    late = await run.decide("tools/call", "read_file")
    run.requests[-1]["headers"]["x-remit-decision"] = late.id
    await run.outcome(late)
    with pytest.raises(AccountingError, match="written after the request arrived"):
        run.check()


async def test_an_outcome_written_before_the_request_arrived_is_caught(run: Run) -> None:
    read = await run.decide("tools/call", "read_file")
    await run.outcome(read)
    run.arrive(call("read_file"), read.id)
    with pytest.raises(AccountingError, match="before it arrived"):
        run.check()


@pytest.mark.parametrize("outcomes", [0, 2])
async def test_a_forwarded_call_needs_exactly_one_outcome(run: Run, outcomes: int) -> None:
    read = await run.decide("tools/call", "read_file")
    run.arrive(call("read_file"), read.id)
    for _ in range(outcomes):
        await run.outcome(read)
    with pytest.raises(AccountingError, match=f"has {outcomes} outcomes"):
        run.check()


async def test_a_batch_needs_one_allow_per_request(run: Run) -> None:
    read = await run.decide("tools/call", "read_file")
    run.arrive([call("read_file", 1), call("delete_file", 2)], read.id)
    await run.outcome(read)
    with pytest.raises(AccountingError, match=r"without an allow decision for \[\('tools/call', "):
        run.check()


async def test_a_decision_for_another_tool_does_not_cover_a_call(run: Run) -> None:
    read = await run.decide("tools/call", "read_file")
    run.arrive(call("delete_file"), read.id)
    await run.outcome(read)
    with pytest.raises(AccountingError, match="which it did not carry"):
        run.check()


async def test_a_decision_reused_for_a_second_request_is_caught(run: Run) -> None:
    read = await run.decide("tools/call", "read_file")
    run.arrive(call("read_file"), read.id)
    run.arrive(call("read_file"), read.id)
    await run.outcome(read)
    with pytest.raises(AccountingError, match="also covered request #0"):
        run.check()


async def test_an_allow_for_a_call_never_forwarded_must_say_so(run: Run) -> None:
    stranded = await run.decide("tools/call", "read_file")
    await run.outcome(stranded, "ok")
    with pytest.raises(AccountingError, match="never reached the server"):
        run.check()


async def test_an_allow_never_forwarded_passes_when_its_outcome_says_so(run: Run) -> None:
    stranded = await run.decide("tools/call", "read_file")
    await run.outcome(stranded, "not_forwarded")
    assert run.check().outcomes["not_forwarded"] == 1


async def test_an_allow_without_an_outcome_is_caught(run: Run) -> None:
    await run.decide("tools/call", "read_file")
    with pytest.raises(AccountingError, match="has 0 outcomes"):
        run.check()


async def test_an_unparseable_body_that_reached_the_server_is_caught(run: Run) -> None:
    run.arrive(None)
    with pytest.raises(AccountingError, match="not JSON-RPC"):
        run.check()


async def test_gateway_discovery_requests_are_exempt(run: Run) -> None:
    tools_list = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    run.arrive(tools_list, **{"x-remit-agent": "remit-gateway"})
    assert run.check().forwarded == 0


async def test_an_edited_log_fails_remit_audit_verify(run: Run) -> None:
    read = await run.decide("tools/call", "read_file")
    run.arrive(call("read_file"), read.id)
    await run.outcome(read)
    await run.chain.close()
    text = run.path.read_text()
    run.path.write_text(text.replace('"read_file"', '"rm_file__"', 1))
    with pytest.raises(AccountingError, match="remit audit verify failed"):
        run.check(verify=True)
