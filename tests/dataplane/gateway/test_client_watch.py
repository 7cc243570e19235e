"""A client that leaves while its call is at the upstream is recorded ``cancelled`` whatever the
order in which the event loop hears the two sides: here the client's ``http.disconnect`` is
delivered in the same loop pass as the upstream's end of stream, stall or broken read, and the
relay's task is woken first (the watcher has the message but has not yet run). The live path (a
real client hanging up on a real gateway) is in tests/security/test_hostile_upstream.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, cast

import pytest

from remit.errors import UpstreamError
from remit.gateway.exchange import Exchange
from remit.gateway.forward import Sender, forward
from remit.gateway.hooks import AllowAllHooks, HttpRequest, Identity, Outcome
from remit.gateway.pending import Call, PendingCalls
from remit.gateway.protocol import Message, RequestId, classify
from remit.gateway.proxy import McpProxy, ProxySettings
from remit.gateway.relay import relay
from remit.gateway.upstream import BROKEN, NO_RESPONSE, TIMEOUT, Upstream, UpstreamResponse
from remit.gateway.watch import CANCELLED, ClientWatch

_SSE = [(b"content-type", b"text/event-stream")]
_JSON = [(b"content-type", b"application/json")]
_EVENT = b'data: {"jsonrpc":"2.0","method":"notifications/progress","params":{}}\n\n'


class _Outcomes(AllowAllHooks):
    def __init__(self) -> None:
        self.seen: list[tuple[Any, Outcome]] = []

    async def outcome(self, identity: Any, call: Message, token: Any, outcome: Outcome) -> None:
        self.seen.append((call.id, outcome))


class _Response:
    """An upstream answer whose every read waits for the test to say what it returns."""

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.status = 200
        self.headers = headers
        self.kind = "sse" if headers is _SSE else "json"
        self.reads: asyncio.Queue[asyncio.Future[bytes]] = asyncio.Queue()
        self.aborted = False

    def client_headers(self) -> list[tuple[bytes, bytes]]:
        return self.headers

    def header(self, name: bytes) -> str | None:
        return None

    async def _wait(self) -> bytes:
        read = asyncio.get_running_loop().create_future()
        self.reads.put_nowait(read)
        return await read

    async def next_chunk(self, timeout: float | None) -> bytes:
        return await self._wait()

    async def read(self, limit: int | None = None) -> bytes:
        return await self._wait()

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        pass


class _Upstream:
    def __init__(self, response: _Response) -> None:
        self.response = response

    async def send(self, *args: Any) -> _Response:
        return self.response


class _Client:
    """The client side of ASGI: ``receive`` ends with ``http.disconnect`` when told to."""

    def __init__(self) -> None:
        self.left = asyncio.get_running_loop().create_future()
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        await self.left
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


def _exchange() -> tuple[_Outcomes, Exchange]:
    """The exchange of one pending ``tools/call`` (id 1), its outcomes seen by the hooks."""
    hooks = _Outcomes()
    request = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "slow"}}
    calls: dict[RequestId, Call] = {1: Call(classify(request), None)}
    return hooks, Exchange(hooks, cast(Identity, None), calls, PendingCalls(), session=None)


def _get_stream() -> tuple[_Outcomes, Exchange, Call]:
    """The exchange of a GET stream (no call awaits a response), and the stream's call."""
    hooks = _Outcomes()
    exchange = Exchange(
        hooks, cast(Identity, None), {}, PendingCalls(), session=None, standalone=True
    )
    return hooks, exchange, Call(Message("stream", {}, "GET"), None)


def _forwarding(
    upstream: _Upstream,
    hooks: _Outcomes,
    exchange: Exchange,
    send: Any,
    watch: ClientWatch,
    stream: Call | None = None,
) -> Coroutine[Any, Any, None]:
    """``forward`` of one POSTed call to ``upstream`` (``stream``: a GET stream instead),
    answered through ``send``."""
    method = "POST" if stream is None else "GET"
    http = HttpRequest(method=method, path="/mcp", query_string=b"", headers=())
    return forward(cast(Upstream, upstream), hooks, http, cast(Identity, None), None,
                   exchange, [], stream, (), b"{}" if stream is None else None, send,
                   watch)  # fmt: skip


async def _forward(
    headers: list[tuple[bytes, bytes]],
    ending: Callable[[asyncio.Future[bytes]], None],
    *,
    get: bool = False,
    left_first: bool = False,
) -> tuple[_Outcomes, _Client, _Response]:
    """Forward one call (``get``: a GET stream); once the relay waits on the upstream with one
    event relayed, end the upstream's read with ``ending`` and the client's wait with a
    disconnect, in that order, in one step (both wake-ups land in the same loop pass, the
    relay's first), or (``left_first``) the disconnect seen first, as a live server has it:
    the client leaves, the gateway drops the upstream, whose read then ends."""
    if get:
        hooks, exchange, stream = _get_stream()
    else:
        (hooks, exchange), stream = _exchange(), None
    response = _Response(headers)
    client = _Client()
    watch = ClientWatch(client.receive)
    task = asyncio.create_task(
        _forwarding(_Upstream(response), hooks, exchange, client.send, watch, stream)
    )
    read = await response.reads.get()
    if headers is _SSE:  # one event relayed first: the client leaves mid-stream
        read.set_result(_EVENT)
        read = await response.reads.get()
    if left_first:
        client.left.set_result(None)
        for _ in range(10):  # the watcher's task, then its done callback
            await asyncio.sleep(0)
        assert watch.gone
        assert response.aborted  # the gateway dropped the upstream stream
        ending(read)
    else:
        ending(read)
        client.left.set_result(None)
    await task
    watch.close()
    return hooks, client, response


def _eof(read: asyncio.Future[bytes]) -> None:
    read.set_result(b"")


def _stall(read: asyncio.Future[bytes]) -> None:
    read.set_exception(UpstreamError(504, "upstream stream stalled", TIMEOUT))


def _broken(read: asyncio.Future[bytes]) -> None:
    read.set_exception(UpstreamError(502, "upstream stream broke off (OSError)", BROKEN))


@pytest.mark.parametrize("ending", [_eof, _stall, _broken], ids=["eof", "stall", "broken"])
async def test_a_client_leaving_as_the_sse_stream_ends_is_recorded_cancelled(
    ending: Callable[[asyncio.Future[bytes]], None],
) -> None:
    hooks, client, _ = await _forward(_SSE, ending)
    ((id_, outcome),) = hooks.seen
    assert (id_, outcome.kind) == (1, CANCELLED), outcome
    assert outcome.error is not None
    assert outcome.error.startswith("client disconnected")
    # the progress event went out; no error event was written for a client that is gone
    bodies = [m.get("body", b"") for m in client.sent if m["type"] == "http.response.body"]
    assert bodies == [_EVENT]


@pytest.mark.parametrize("ending", [_stall, _broken], ids=["stall", "broken"])
async def test_a_client_leaving_as_the_json_read_fails_is_recorded_cancelled(
    ending: Callable[[asyncio.Future[bytes]], None],
) -> None:
    hooks, client, response = await _forward(_JSON, ending)
    ((id_, outcome),) = hooks.seen
    assert (id_, outcome.kind) == (1, CANCELLED), outcome
    assert response.aborted  # the upstream sees the call cancelled
    assert client.sent == []  # no gateway error written to a client that is gone


async def test_a_json_answer_read_whole_before_the_client_left_is_its_outcome() -> None:
    # The upstream answered in full in the same pass as the disconnect: the call completed
    # (what the tool did), so the answer, not the disconnect, is its outcome.
    answer = b'{"jsonrpc":"2.0","id":1,"result":{"content":[]}}'
    hooks, _, _ = await _forward(_JSON, lambda read: read.set_result(answer))
    ((id_, outcome),) = hooks.seen
    assert (id_, outcome.kind, outcome.error) == (1, None, None), outcome


async def test_a_relay_whose_send_fails_as_the_client_left_records_it_cancelled() -> None:
    # ASGI: a send on a connection the client closed raises OSError, which may come before
    # the disconnect is seen (here the client's receive never says so).
    hooks, exchange = _exchange()
    response = _Response(_SSE)
    client = _Client()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            raise ConnectionResetError("the client closed the connection")
        await client.send(message)

    watch = ClientWatch(client.receive)
    relay = asyncio.create_task(
        _forwarding(_Upstream(response), hooks, exchange, Sender(send), watch)
    )
    (await response.reads.get()).set_result(_EVENT)
    await relay
    watch.close()
    ((_, outcome),) = hooks.seen
    assert outcome.kind == CANCELLED, outcome
    assert response.aborted


async def test_an_sse_stream_ending_without_the_client_leaving_is_still_no_response() -> None:
    # the control: the same stream ending with the client still there keeps its meaning
    hooks, exchange = _exchange()
    response = _Response(_SSE)
    client = _Client()
    watch = ClientWatch(client.receive)
    task = asyncio.create_task(
        relay(exchange, cast(UpstreamResponse, response), client.send, watch)
    )
    (await response.reads.get()).set_result(b"")
    await task
    watch.close()
    ((_, outcome),) = hooks.seen
    assert outcome.kind != CANCELLED
    assert outcome.error is not None
    assert outcome.error.startswith(NO_RESPONSE)


@pytest.mark.parametrize("left_first", [True, False], ids=["left-first", "same-pass"])
@pytest.mark.parametrize("ending", [_eof, _broken], ids=["eof", "broken"])
async def test_a_get_stream_whose_client_leaves_is_recorded_cancelled(
    ending: Callable[[asyncio.Future[bytes]], None], left_first: bool
) -> None:
    hooks, client, _ = await _forward(_SSE, ending, get=True, left_first=left_first)
    ((id_, outcome),) = hooks.seen  # the stream's one outcome
    assert (id_, outcome.kind, outcome.error) == (None, CANCELLED, "client disconnected"), outcome
    bodies = [m.get("body", b"") for m in client.sent if m["type"] == "http.response.body"]
    assert bodies == [_EVENT]


async def test_a_get_stream_the_upstream_ends_with_the_client_there_is_a_normal_end() -> None:
    # the control: no disconnect, the upstream's end of stream is the stream's outcome
    hooks, exchange, stream = _get_stream()
    response = _Response(_SSE)
    client = _Client()
    watch = ClientWatch(client.receive)
    task = asyncio.create_task(
        _forwarding(_Upstream(response), hooks, exchange, client.send, watch, stream)
    )
    (await response.reads.get()).set_result(b"")
    await task
    watch.close()
    ((_, outcome),) = hooks.seen
    assert (outcome.kind, outcome.error, outcome.status) == (None, None, 200), outcome


_CALL = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"slow"}}'
_ANSWER = b'{"jsonrpc":"2.0","id":1,"result":{"content":[]}}'


@pytest.mark.parametrize(
    ("method", "refused", "kind"),
    [("POST", "http.response.start", None), ("POST", "http.response.body", None),
     ("GET", "http.response.body", CANCELLED)],
    ids=["json-start", "json-body", "get-stream-event"],
)  # fmt: skip
async def test_a_send_the_server_refuses_with_oserror_is_the_client_gone_not_an_internal_error(
    method: str, refused: str, kind: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    # ASGI: a send on a connection the client closed raises an OSError; the server may say so
    # before the client's http.disconnect arrives (here it never does). A JSON answer read
    # whole keeps its outcome (recorded before the send); a stream's is ``cancelled``.
    hooks = _Outcomes()
    response = _Response(_SSE if method == "GET" else _JSON)
    proxy = McpProxy(ProxySettings(), hooks, cast(Upstream, _Upstream(response)))
    client = _Client()
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": _CALL if method == "POST" else b""}
        return await client.receive()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == refused:
            raise ConnectionResetError("the client closed the connection")
        await client.send(message)

    accept = b"application/json, text/event-stream" if method == "POST" else b"text/event-stream"
    headers = [(b"content-type", b"application/json"), (b"accept", accept)]
    scope = {"type": "http", "method": method, "path": "/mcp", "query_string": b"",
             "headers": headers, "client": ("127.0.0.1", 1)}  # fmt: skip
    task = asyncio.create_task(proxy(scope, receive, send))
    (await response.reads.get()).set_result(_ANSWER if method == "POST" else _EVENT)
    await asyncio.wait_for(task, 10)
    ((_, outcome),) = hooks.seen  # one outcome, not a second one for the refused send
    assert (outcome.kind, outcome.error) == (
        (None, None) if kind is None else (CANCELLED, "client disconnected")
    ), outcome
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
