"""Pushing to sidecars: retries with backoff, 409 rollback, 400 key fallback, concurrency.

A small aiohttp admin API on loopback stands in for a sidecar whose failures we script; the
happy paths against the real gateway are in test_reconcile.py. Backoff delays are recorded
through an injected ``sleep`` instead of waited for.
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web

from remit_operator.index import Sidecar
from remit_operator.lanes import next_wake
from remit_operator.push import Pusher
from remit_operator.trust import plausible_serial
from tests.operator.support import free_port, operator_settings


class Script:
    """Answers for PUT /v1/bundle, one per request (the last one repeats)."""

    def __init__(self, *answers: tuple[int, dict]) -> None:  # type: ignore[type-arg]
        self.answers = list(answers)
        self.bodies: list[bytes] = []
        self.status = {
            "ready": True,
            "bundle": {"digest": "held", "serial": 900},
            "pins": {"t": "h"},
        }

    async def put(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.read())
        code, body = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return web.json_response(body, status=code)

    async def get(self, request: web.Request) -> web.Response:
        return web.json_response(self.status)


@pytest.fixture
async def admin() -> AsyncIterator[tuple[Script, int]]:
    script = Script((200, {"digest": "d", "serial": 1, "changed": True}))
    app = web.Application()
    app.router.add_put("/v1/bundle", script.put)
    app.router.add_get("/v1/status", script.get)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield script, port
    await runner.cleanup()


SIDECAR = Sidecar("agents/p", "agents/files", "127.0.0.1", True, False, None, "1")


async def _pusher(tmp_path: Path, delays: list[float], **variables: object) -> Pusher:
    """A pusher recording its delays; ``push_retries=3`` sets ``REMIT_PUSH_RETRIES``."""

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    env = {f"REMIT_{name.upper()}": str(value) for name, value in variables.items()}
    return Pusher(operator_settings(tmp_path, env), sleep=sleep)


async def test_server_errors_are_retried_with_exponential_backoff(
    admin: tuple[Script, int], tmp_path: Path
) -> None:
    script, port = admin
    script.answers = [(503, {}), (500, {}), (200, {"digest": "d", "serial": 7})]
    delays: list[float] = []
    pusher = await _pusher(tmp_path, delays, push_retries=3, push_backoff_seconds=0.1)
    outcome = await pusher.push(SIDECAR, port, [b"jws"])
    await pusher.close()
    assert outcome.ok
    assert outcome.digest == "d"
    assert delays == [0.1, 0.2]
    assert script.bodies == [b"jws"] * 3


async def test_retries_are_bounded(admin: tuple[Script, int], tmp_path: Path) -> None:
    script, port = admin
    script.answers = [(503, {"error": "busy"})]
    delays: list[float] = []
    pusher = await _pusher(tmp_path, delays, push_retries=2)
    outcome = await pusher.push(SIDECAR, port, [b"jws"])
    await pusher.close()
    assert not outcome.ok
    assert "503" in (outcome.error or "")
    assert len(script.bodies) == 3


async def test_unreachable_sidecar_fails_after_retries(tmp_path: Path) -> None:
    delays: list[float] = []
    pusher = await _pusher(tmp_path, delays, push_retries=2)
    outcome = await pusher.push(SIDECAR, free_port(), [b"jws"])
    await pusher.close()
    assert not outcome.ok
    assert "ConnectError" in (outcome.error or "")
    assert len(delays) == 2


async def test_bad_signature_moves_on_to_the_next_key(
    admin: tuple[Script, int], tmp_path: Path
) -> None:
    script, port = admin
    script.answers = [(400, {"error": "signature"}), (200, {"digest": "d", "serial": 2})]
    pusher = await _pusher(tmp_path, [])
    outcome = await pusher.push(SIDECAR, port, [b"new-key", b"old-key"])
    await pusher.close()
    assert outcome.ok
    assert script.bodies == [b"new-key", b"old-key"]


async def test_rollback_reports_the_sidecar_serial(
    admin: tuple[Script, int], tmp_path: Path
) -> None:
    script, port = admin
    script.answers = [(409, {"error": "rollback"})]
    pusher = await _pusher(tmp_path, [])
    outcome = await pusher.push(SIDECAR, port, [b"jws"])
    status = await pusher.status(SIDECAR, port)
    await pusher.close()
    assert outcome.rollback_serial == 900
    assert status.digest == "held"
    assert status.pins == {"t": "h"}


def test_next_wake_is_the_sooner_of_expiry_and_periodic_check() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    check = now + timedelta(seconds=30)
    assert next_wake(now, None, check) == pytest.approx(30.05)
    assert next_wake(now, now + timedelta(seconds=2), check) == pytest.approx(2.05)
    assert next_wake(now, now - timedelta(seconds=5), check) == 0.0


@pytest.mark.parametrize(
    ("bundle", "pins", "serial", "kept"),
    [
        ({"digest": "d", "serial": "12"}, {"t": "h"}, None, {"t": "h"}),  # a string is no serial
        ({"digest": "d", "serial": True}, None, None, None),  # nor is a bool
        ({"digest": "d", "serial": -1}, {"t": 5, "u": "h"}, None, {"u": "h"}),
        ({"digest": "d", "serial": 7}, {"x" * 300: "h", "t": "h" * 200}, 7, {}),
    ],
)
async def test_what_a_sidecar_reports_is_validated_and_bounded(
    admin: tuple[Script, int],
    tmp_path: Path,
    bundle: dict,  # type: ignore[type-arg]
    pins: dict | None,  # type: ignore[type-arg]
    serial: int | None,
    kept: dict | None,  # type: ignore[type-arg]
) -> None:
    script, port = admin
    script.status = {"ready": True, "bundle": bundle, "pins": pins}
    pusher = await _pusher(tmp_path, [])
    outcome = await pusher.status(SIDECAR, port)
    await pusher.close()
    assert outcome.serial == serial
    assert outcome.pins == kept


def test_a_serial_far_past_the_clock_is_not_plausible() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    ms = int(now.timestamp() * 1000)
    assert plausible_serial(ms + 60_000, now, 0)  # a minute of clock skew
    assert not plausible_serial(ms + 3_600_000, now, 0)  # an hour ahead: forged
    assert plausible_serial(ms + 3_600_000, now, ms + 3_600_000)  # unless we signed that high
    assert not plausible_serial(None, now, 0)


async def test_a_round_ends_at_its_deadline_and_silent_sidecars_are_not_retried(
    tmp_path: Path,
) -> None:
    """A black hole (accepts, never answers) cannot hold a server's round past the deadline,
    and once silent it gets a single attempt per round instead of 1 + retries."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)
    port = hole.getsockname()[1]
    delays: list[float] = []
    pusher = await _pusher(
        tmp_path, delays, push_timeout_seconds=30.0, push_deadline_seconds=0.3, push_retries=3
    )
    try:
        began = time.monotonic()
        (outcome,) = await pusher.push_all([SIDECAR], port, lambda _: [b"jws"])
        took = time.monotonic() - began
        assert outcome.error == "no answer within 0.3s"
        assert took < 5.0  # the 30 s request timeout did not decide it
        assert pusher.is_silent(SIDECAR)
        closed = free_port()  # now refused at once: a silent sidecar is tried once
        outcome = await pusher.push(SIDECAR, closed, [b"jws"])
        assert not outcome.ok
        assert delays == []  # no backoff sleeps: no retries
    finally:
        await pusher.close()
        hole.close()
