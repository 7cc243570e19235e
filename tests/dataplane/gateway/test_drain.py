"""A stopping gateway cuts requests off through their ``ClientWatch`` (``gateway/drain.py``):
a GET stream as soon as the drain begins, a call only when the grace is over; each gets its
``shutdown`` outcome. The live path (SIGTERM to a real gateway with calls in flight) is in
tests/security/test_shutdown_drain.py; the GET stream is here because the hostile upstream
serves none."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import orjson

from remit.errors import UpstreamError
from remit.gateway.drain import SHUTDOWN, Drain, drain_on_stop
from remit.gateway.upstream import BROKEN
from remit.gateway.watch import ClientWatch
from tests.dataplane.gateway.test_client_watch import (
    _EVENT,
    _JSON,
    _SSE,
    _Client,
    _exchange,
    _forwarding,
    _get_stream,
    _Response,
    _Upstream,
)


async def test_a_get_stream_is_cut_when_the_drain_begins() -> None:
    hooks, exchange, stream = _get_stream()
    response, client, drain = _Response(_SSE), _Client(), Drain()
    watch = ClientWatch(client.receive, drain, stream=True)
    task = asyncio.create_task(
        _forwarding(_Upstream(response), hooks, exchange, client.send, watch, stream)
    )
    (await response.reads.get()).set_result(_EVENT)
    read = await response.reads.get()
    assert not response.aborted
    drain.begin()  # no grace for a stream no call awaits
    assert response.aborted  # the upstream stream is dropped at once
    read.set_exception(UpstreamError(502, "upstream stream broke off (OSError)", BROKEN))
    await task
    watch.close()
    ((_, outcome),) = hooks.seen  # the stream's own outcome (no call awaits it)
    assert outcome.kind == SHUTDOWN, outcome
    assert drain.in_flight == 0


async def test_a_call_is_cut_only_when_the_grace_is_over() -> None:
    hooks, exchange = _exchange()
    response, client, drain = _Response(_JSON), _Client(), Drain()
    watch = ClientWatch(client.receive, drain)
    task = asyncio.create_task(
        _forwarding(_Upstream(response), hooks, exchange, client.send, watch)
    )
    await response.reads.get()  # the body is awaited
    drain.begin()
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done()  # a call keeps its grace
    assert hooks.seen == []
    drain.cut()
    await task
    watch.close()
    ((id_, outcome),) = hooks.seen
    assert (id_, outcome.kind) == (1, SHUTDOWN), outcome
    start, body = client.sent
    assert start["status"] == 503
    assert orjson.loads(body["body"])["error"]["data"]["reason"] == SHUTDOWN


class _StuckClient(_Client):
    """A client that stopped reading: its second send (the first event) never returns."""

    def __init__(self) -> None:
        super().__init__()
        self.stuck = asyncio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        if len(self.sent) > 1:
            self.stuck.set()
            await asyncio.get_running_loop().create_future()  # never done


async def test_a_cut_ends_a_send_the_client_does_not_take_with_an_outcome() -> None:
    hooks, exchange = _exchange()
    response, client, drain = _Response(_SSE), _StuckClient(), Drain()
    watch = ClientWatch(client.receive, drain)
    task = asyncio.create_task(
        _forwarding(_Upstream(response), hooks, exchange, client.send, watch)
    )
    (await response.reads.get()).set_result(_EVENT)  # a progress event: relayed, not taken
    await client.stuck.wait()
    drain.cut()
    await asyncio.wait_for(task, 5)  # not left to the server's backstop
    watch.close()
    assert response.aborted
    ((id_, outcome),) = hooks.seen
    assert (id_, outcome.kind) == (1, SHUTDOWN), outcome
    assert len(client.sent) == 2  # no tail event written to a client that takes none
    assert drain.in_flight == 0


async def test_a_cut_before_a_json_body_is_read_drops_the_upstream_response() -> None:
    hooks, exchange = _exchange()
    response, client, drain = _Response(_JSON), _Client(), Drain()
    watch = ClientWatch(client.receive, drain)

    def cut_on_headers(name: bytes) -> None:  # read once the headers are in, before the body
        drain.cut()

    response.header = cut_on_headers  # type: ignore[method-assign]
    await _forwarding(_Upstream(response), hooks, exchange, client.send, watch)
    watch.close()
    assert response.aborted  # not closed for reuse half-read
    ((_, outcome),) = hooks.seen
    assert outcome.kind == SHUTDOWN
    assert client.sent[0]["status"] == 503


async def test_a_call_entering_once_the_drain_began_is_refused_unforwarded() -> None:
    hooks, exchange = _exchange()
    response, client, drain = _Response(_JSON), _Client(), Drain()
    drain.begin()  # the call was read and decided, but reaches the upstream only now
    watch = ClientWatch(client.receive, drain)
    sent: list[Any] = []

    class _Recording(_Upstream):
        async def send(self, *args: Any) -> _Response:
            sent.append(args)
            return self.response

    await _forwarding(_Recording(response), hooks, exchange, client.send, watch)
    watch.close()
    assert sent == []  # never forwarded
    ((id_, outcome),) = hooks.seen
    assert (id_, outcome.kind) == (1, SHUTDOWN), outcome
    assert outcome.error is not None
    assert "NOT forwarded" in outcome.error
    assert "not read" not in outcome.error
    start, body = client.sent
    assert start["status"] == 503
    assert orjson.loads(body["body"])["error"]["data"]["reason"] == SHUTDOWN


async def test_a_failing_drain_still_stops_every_listener(caplog: Any) -> None:
    drain, stop, calls, admin = Drain(), asyncio.Event(), asyncio.Event(), asyncio.Event()

    def bad() -> None:
        raise RuntimeError("a cut-off callback failed")

    serving: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    drain.enter(bad, stream=False)
    drain.enter(lambda: serving.set_result(None), stream=False)  # the listener ends when cut
    stop.set()
    await asyncio.wait_for(drain_on_stop(drain, stop, 0.0, calls, [serving], admin), 5)
    assert serving.done()  # one bad callback does not stop the others
    assert calls.is_set()
    assert admin.is_set()
    assert "cutting a request off failed" in caplog.text


async def test_the_admin_listener_stops_even_when_the_drain_raises(caplog: Any) -> None:
    stop, calls, admin = asyncio.Event(), asyncio.Event(), asyncio.Event()

    class _Broken(Drain):
        def begin(self) -> None:
            raise RuntimeError("broken")

    stop.set()
    await asyncio.wait_for(drain_on_stop(_Broken(), stop, 1.0, calls, [], admin), 5)
    assert calls.is_set()
    assert admin.is_set()
    assert "the drain failed" in caplog.text


async def test_a_second_signal_cuts_every_call_at_once() -> None:
    from remit.gateway.serve import _on_signal  # noqa: PLC0415

    stop, cut = asyncio.Event(), []
    gateway = cast(Any, SimpleNamespace(drain=Drain()))
    gateway.drain.enter(lambda: cut.append("call"), stream=False)
    _on_signal(gateway, stop)
    assert stop.is_set()
    assert cut == []  # the first signal starts the drain: calls keep their grace
    _on_signal(gateway, stop)
    assert cut == ["call"]
