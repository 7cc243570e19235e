"""A call the client cancelled is recorded ``cancelled`` with what is known of the upstream's
side: the error code it answered with, or that its answer was not read (the tool may have run
all the same). The live paths (a real session's notifications/cancelled, a client hanging up)
are in tests/security/test_hostile_upstream.py; here the two details, deterministically."""

from __future__ import annotations

from typing import Any, cast

from remit.gateway.exchange import UNREAD, Exchange
from remit.gateway.hooks import AllowAllHooks, Identity, Outcome
from remit.gateway.pending import Call, PendingCalls
from remit.gateway.protocol import Message, RequestId, classify
from remit.gateway.watch import CANCELLED, CLIENT_GONE


class _Outcomes(AllowAllHooks):
    def __init__(self) -> None:
        self.seen: list[tuple[Any, Outcome]] = []

    async def outcome(self, identity: Any, call: Message, token: Any, outcome: Outcome) -> None:
        self.seen.append((call.id, outcome))


def _exchange(hooks: _Outcomes, ids: list[int], cancelled: list[int]) -> Exchange:
    pending = PendingCalls()
    calls: dict[RequestId, Call] = {}
    for id_ in ids:
        request = {"jsonrpc": "2.0", "id": id_, "method": "tools/call", "params": {"name": "rm"}}
        calls[id_] = Call(classify(request), None)
    exchange = Exchange(hooks, cast(Identity, None), calls, pending, session="s1")
    pending.cancel("s1", cancelled)
    return exchange


async def test_an_error_answer_to_a_cancelled_call_keeps_its_code() -> None:
    hooks = _Outcomes()
    exchange = _exchange(hooks, [7], cancelled=[7])
    error = {"code": -32603, "message": "the disk was half wiped"}
    await exchange.message({"jsonrpc": "2.0", "id": 7, "error": error})
    ((id_, outcome),) = hooks.seen
    assert (id_, outcome.kind) == (7, CANCELLED)
    assert outcome.error is not None
    assert outcome.error.endswith("; the upstream answered with JSON-RPC error -32603")


async def test_a_cancelled_or_abandoned_call_whose_answer_was_not_read_may_have_run() -> None:
    hooks = _Outcomes()
    exchange = _exchange(hooks, [1, 2], cancelled=[1])
    await exchange.fail(CLIENT_GONE, kind=CANCELLED)  # the relay stopped before any answer
    details = {id_: (o.kind, o.error) for id_, o in hooks.seen}
    assert details[1] == (
        CANCELLED, f"client cancelled the request (notifications/cancelled); {UNREAD}"
    )  # fmt: skip
    assert details[2] == (CANCELLED, f"client disconnected; {UNREAD}")
    assert "may have completed" in UNREAD
    # An upstream failure (not the client's doing) stays as it was.
    hooks.seen.clear()
    other = _exchange(hooks, [3], cancelled=[])
    await other.fail("upstream_timeout: no answer in 2 s")
    assert [(o.kind, o.error) for _, o in hooks.seen] == [
        (None, "upstream_timeout: no answer in 2 s")
    ]
