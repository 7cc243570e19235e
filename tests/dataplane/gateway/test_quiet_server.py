"""The gateway's uvicorn server runs without a tick (``gateway/quietserver.py``): the ``Date``
header is still the current second, and setting ``should_exit`` still stops the server at once.
A real process stopped by SIGTERM is in tests/dataplane/cli/test_gateway_start.py."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from email.utils import formatdate, parsedate_to_datetime
from typing import Any

import uvicorn

from remit.gateway.background import BackgroundServer
from remit.gateway.quietserver import DatedState, QuietServer
from remit.gateway.runner import ListenerSettings
from tests.support.ports import free_port


async def _hello(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def _config(**options: Any) -> uvicorn.Config:
    config = uvicorn.Config(_hello, loop="none", lifespan="off", log_config=None, **options)
    config.load()
    return config


def test_the_date_header_is_the_clocks_current_second() -> None:
    now = [1_800_000_000.2]
    state = DatedState(_config(headers=[("x-pod", "a")]), clock=lambda: now[0])
    first = state.default_headers
    assert first == [
        (b"date", formatdate(1_800_000_000, usegmt=True).encode()),
        (b"server", b"uvicorn"),
        (b"x-pod", b"a"),
    ]
    now[0] = 1_800_000_000.99
    assert state.default_headers is first  # same second: not rebuilt
    now[0] = 1_800_000_001.0
    assert state.default_headers[0] == (b"date", formatdate(1_800_000_001, usegmt=True).encode())
    state.default_headers = []  # what uvicorn's tick would write: ignored, the value is derived
    assert state.default_headers[0][0] == b"date"


def test_no_date_header_when_the_config_sends_none() -> None:
    state = DatedState(_config(date_header=False, server_header=False), clock=lambda: 5.0)
    assert state.default_headers == []


def test_a_served_response_carries_the_current_date_once() -> None:
    server = BackgroundServer(_hello, ListenerSettings(port=free_port(), lifespan=False))
    server.start()
    try:
        before = int(time.time())
        with urllib.request.urlopen(f"{server.url}/", timeout=10) as response:
            dates = response.headers.get_all("date")
        after = time.time()
    finally:
        server.stop()
    assert dates is not None
    assert len(dates) == 1
    assert before <= parsedate_to_datetime(dates[0]).timestamp() <= after


async def test_setting_should_exit_ends_the_main_loop_without_a_tick() -> None:
    server = QuietServer(_config())
    loop = asyncio.create_task(server.main_loop())
    for _ in range(5):
        await asyncio.sleep(0)  # let it wait; uvicorn's loop would be sleeping 100 ms now
    assert not loop.done()
    assert not asyncio.get_running_loop()._scheduled  # type: ignore[attr-defined] # no timer
    server.should_exit = True
    await asyncio.wait_for(loop, 5)


async def test_an_exit_asked_before_the_main_loop_starts_is_not_lost() -> None:
    server = QuietServer(_config())
    server.should_exit = True
    await asyncio.wait_for(server.main_loop(), 5)


def test_an_exit_asked_after_the_loop_closed_is_a_no_op() -> None:
    server = QuietServer(_config())
    loop = asyncio.new_event_loop()
    try:
        main = loop.create_task(server.main_loop())
        loop.run_until_complete(asyncio.sleep(0))  # the main loop waits on its event
        server.should_exit = True
        loop.run_until_complete(main)
    finally:
        loop.close()
    server.should_exit = True  # e.g. a late signal at interpreter exit: no "loop is closed"
    assert server.should_exit
