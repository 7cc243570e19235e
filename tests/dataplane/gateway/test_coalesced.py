"""A whole response leaves the gateway's HTTP server in one write, byte for byte what uvicorn
writes in two; a stream, a split body, a HEAD answer and a client that left are uvicorn's
behaviour unchanged. (Over real sockets the conformance and connection-limit suites run the
gateway with this cycle; here a recording transport counts the writes.)"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from remit.gateway.coalesced import CoalescingCycle

BODY = b'{"jsonrpc":"2.0","id":1,"result":{}}'
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-length", str(len(BODY)).encode()),
        (b"content-type", b"application/json"),
    ],
}


class Recording:
    """A transport that keeps every write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


def _cycle(kind: type[RequestResponseCycle], method: str = "POST") -> tuple[Any, Recording]:
    transport = Recording()
    cycle = kind(
        scope={"type": "http", "method": method},  # type: ignore[typeddict-item]
        transport=transport,  # type: ignore[arg-type]
        flow=FlowControl(transport),  # type: ignore[arg-type]
        logger=logging.getLogger("test"),
        access_logger=logging.getLogger("test"),
        access_log=False,
        default_headers=[(b"server", b"uvicorn")],
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=True,
        on_response=lambda: None,
    )
    return cycle, transport


async def _both(method: str, *messages: dict[str, Any]) -> tuple[Recording, Recording]:
    out = []
    for kind in (RequestResponseCycle, CoalescingCycle):
        cycle, transport = _cycle(kind, method)
        for message in messages:
            await cycle.send(message)
        assert cycle.response_complete
        out.append(transport)
    return out[0], out[1]


async def test_a_whole_response_is_one_write_of_the_bytes_uvicorn_writes_in_two() -> None:
    stock, ours = await _both("POST", START, {"type": "http.response.body", "body": BODY})
    assert len(stock.writes) == 2
    assert ours.writes == [b"".join(stock.writes)]


async def test_an_empty_body_with_its_length_is_one_write_too() -> None:
    start = {"type": "http.response.start", "status": 202, "headers": [(b"content-length", b"0")]}
    stock, ours = await _both("POST", start, {"type": "http.response.body", "body": b""})
    assert ours.writes == [b"".join(stock.writes)]


async def test_a_stream_without_a_length_is_written_as_it_comes() -> None:
    cycle, transport = _cycle(CoalescingCycle)
    start = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"x")]}
    await cycle.send(start)
    assert len(transport.writes) == 1  # the head, before any event exists
    await cycle.send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
    assert len(transport.writes) == 2


async def test_a_body_in_several_messages_is_written_as_uvicorn_writes_it() -> None:
    half = len(BODY) // 2
    first = {"type": "http.response.body", "body": BODY[:half], "more_body": True}
    rest = {"type": "http.response.body", "body": BODY[half:]}
    stock, ours = await _both("POST", START, first, rest)
    assert ours.writes == stock.writes


async def test_a_head_answer_is_written_at_once() -> None:
    stock, ours = await _both("HEAD", START, {"type": "http.response.body", "body": b""})
    assert ours.writes == stock.writes


async def test_nothing_is_written_once_the_client_has_left() -> None:
    cycle, transport = _cycle(CoalescingCycle)
    await cycle.send(START)
    cycle.disconnected = True
    await cycle.send({"type": "http.response.body", "body": BODY})
    assert transport.writes == []
