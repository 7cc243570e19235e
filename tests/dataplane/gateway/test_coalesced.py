"""A whole response leaves the gateway's HTTP server in one write, byte for byte what uvicorn
writes in two; a stream, a split body, a HEAD answer and a client that left are uvicorn's
behaviour unchanged. (Over real sockets the conformance and connection-limit suites run the
gateway with this cycle; here a recording transport counts the writes.)"""

from __future__ import annotations

import asyncio
import logging
import tomllib
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from packaging.requirements import Requirement
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


def _cycle(
    kind: type[RequestResponseCycle],
    method: str = "POST",
    *,
    keep_alive: bool = True,
    responses: list[int] | None = None,
) -> tuple[Any, Recording]:
    transport = Recording()
    counted = [] if responses is None else responses
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
        keep_alive=keep_alive,
        on_response=lambda: counted.append(1),
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


# -- what completing a response does, against uvicorn's own cycle ------------------------------
# CoalescingCycle.send repeats the completion of uvicorn's send (expected_content_length,
# response_complete, message_event, close unless keep-alive, on_response). pyproject.toml bounds
# uvicorn to the minor series tested; these tests fail if a uvicorn release changes what
# completion does, so the copy is checked again before the bound moves.

_NOT_STATE = {"transport", "flow", "logger", "access_logger", "scope", "default_headers"}


def _state(cycle: Any, transport: Recording, responses: list[int]) -> dict[str, Any]:
    """Everything a finished cycle holds that uvicorn's own send may have changed."""
    state = {k: v for k, v in vars(cycle).items() if k not in _NOT_STATE and k != "held"}
    state["message_event"] = cycle.message_event.is_set()
    state["on_response"] = len(responses)
    state["bytes"] = b"".join(transport.writes)
    state["closed"] = transport.closed
    state["read_paused"] = cycle.flow.read_paused
    state["write_paused"] = cycle.flow.write_paused
    return state


WHOLE = [START, {"type": "http.response.body", "body": BODY}]
SPLIT = [
    START,
    {"type": "http.response.body", "body": BODY[:5], "more_body": True},
    {"type": "http.response.body", "body": BODY[5:]},
]
EMPTY = [
    {"type": "http.response.start", "status": 202, "headers": [(b"content-length", b"0")]},
    {"type": "http.response.body", "body": b""},
]


@pytest.mark.parametrize("keep_alive", [True, False])
@pytest.mark.parametrize(
    ("method", "messages"),
    [("POST", WHOLE), ("POST", SPLIT), ("POST", EMPTY), ("HEAD", WHOLE)],
    ids=["whole", "split", "empty", "head"],
)
async def test_a_completed_response_leaves_the_cycle_as_uvicorns_own_cycle_leaves_it(
    keep_alive: bool, method: str, messages: list[dict[str, Any]]
) -> None:
    states = []
    for kind in (RequestResponseCycle, CoalescingCycle):
        responses: list[int] = []
        cycle, transport = _cycle(kind, method, keep_alive=keep_alive, responses=responses)
        for message in messages:
            await cycle.send(message)
        states.append(_state(cycle, transport, responses))
    stock, ours = states
    assert ours == stock
    assert ours["on_response"] == 1  # the protocol is told, once
    assert ours["closed"] is not keep_alive  # closed when the connection is not kept alive
    assert ours["response_complete"]
    assert ours["message_event"]


async def test_a_held_head_waits_for_a_paused_transport_before_the_body_goes() -> None:
    responses: list[int] = []
    cycle, transport = _cycle(CoalescingCycle, responses=responses)
    await cycle.send(START)  # held: the transport was writable
    assert transport.writes == []
    cycle.flow.pause_writing()  # the peer stopped reading: the socket's buffer is full
    body = asyncio.ensure_future(cycle.send({"type": "http.response.body", "body": BODY}))
    for _ in range(5):
        await asyncio.sleep(0)  # let it run as far as it can
    assert not body.done()
    assert transport.writes == []  # nothing more is written into a full buffer
    assert responses == []
    cycle.flow.resume_writing()
    await body
    assert len(transport.writes) == 1
    assert transport.writes[0].endswith(BODY)
    assert responses == [1]
    assert cycle.response_complete


def test_uvicorn_is_bounded_to_the_series_these_tests_passed_on() -> None:
    # The guard against drift: a new uvicorn series is taken only by raising the bound.
    project = tomllib.loads((Path(__file__).parents[3] / "pyproject.toml").read_text())
    wanted = [
        Requirement(r)
        for r in project["project"]["optional-dependencies"]["gateway"]
        if Requirement(r).name == "uvicorn"
    ]
    assert len(wanted) == 1
    assert any(spec.operator == "<" for spec in wanted[0].specifier)
    assert wanted[0].specifier.contains(uvicorn.__version__)
