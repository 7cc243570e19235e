"""Grant changes pushed as signed deltas: to a real sidecar process, and never to an old one.

The first test runs the whole loop (kopf against kmock, a real gateway sidecar on 127.0.0.N, a
real MCP call with a real JWT): a grant change reaches the sidecar as a delta, and the bundle
it then holds has the digest of the operator's full compile. The others push through the real
``Pusher`` to a small aiohttp admin API that answers as an older sidecar image does (no
``bundleDelta`` in its status, 405 for PATCH), or refuses the delta.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import kmock
import msgspec
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from remit.demo.issuer import Issuer
from remit.policy.bundle import Bundle
from remit.policy.signing import generate_key
from remit_operator.deltas import Deltas
from remit_operator.index import Sidecar
from remit_operator.push import Pusher, PushResult
from tests.operator.support import (
    AUDIENCE,
    RunningOperator,
    apply,
    fleet,
    free_port,
    operator_settings,
)
from tests.support.policies import bundle_for, grant, policy, rule

pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
WRITE = ("write_file", {"path": "/data/alice/notes.txt", "content": "hi"})


async def _push_bytes(operator: RunningOperator) -> dict[str, float]:
    url = f"http://127.0.0.1:{operator.settings.metrics.port}/metrics"
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(url)).text
    return {
        sample.labels["kind"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "remit_operator_push_bytes_total"
    }


async def test_a_grant_change_reaches_a_real_sidecar_as_a_delta(
    k8s: kmock.KubernetesEmulator,
    operator: RunningOperator,
    issuer: Issuer,
    upstream: str,
    tmp_path: Path,
) -> None:
    token = issuer.mint("alice@example.com", agent="support-bot", audience=AUDIENCE)
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    async with fleet(k8s, operator, issuer.issuer, issuer.jwks_uri, upstream, 1, tmp_path) as f:
        await apply(k8s, policy("support-bot", rule("w", tools=["write_file"], consent=True)))
        digest = await f.in_sync(previous=f.server_digest())
        before = await _push_bytes(operator)
        assert await f.decide_all(token, *WRITE) == {"denied"}
        await apply(k8s, grant("alice-write", tools=["write_file"], expires_at=tomorrow))
        digest = await f.in_sync(previous=digest)  # the operator's full compile, as status says
        after = await _push_bytes(operator)
        assert after.get("delta", 0) > before.get("delta", 0)  # it went as a delta
        assert after.get("full", 0) == before.get("full", 0)  # and only as a delta
        status = await f.sidecars[0].status()
        assert status["bundle"]["digest"] == digest
        assert status["bundle"]["grants"] == 1
        assert status["bundleRefusals"]["counts"] == {}
        assert await f.decide_all(token, *WRITE) == {"allowed"}
        sent = after["delta"] - before.get("delta", 0)
        assert sent < after["full"] / 2  # a change, not the bundle (one grant vs the whole)


class OldSidecar:
    """An admin API of an image that predates deltas; PATCH is scripted when given."""

    def __init__(self) -> None:
        self.puts: list[bytes] = []
        self.patches: list[bytes] = []
        self.patch_answer: tuple[int, dict[str, str]] | None = None
        self.advertise = False
        self.held: dict[str, object] = {"digest": "d1", "serial": 1}

    async def put(self, request: web.Request) -> web.Response:
        self.puts.append(await request.read())
        answer = {"digest": "d2", "serial": 2, "changed": True}
        return web.json_response({**answer, "delta": True} if self.advertise else answer)

    async def patch(self, request: web.Request) -> web.Response:
        self.patches.append(await request.read())
        if self.patch_answer is None:
            return web.json_response({"error": "use PUT"}, status=405)
        code, body = self.patch_answer
        return web.json_response(body, status=code)

    async def status(self, request: web.Request) -> web.Response:
        body: dict[str, object] = {"ready": True, "bundle": self.held}
        if self.advertise:
            body["bundleDelta"] = True
        return web.json_response(body)


@pytest.fixture
async def old() -> AsyncIterator[tuple[OldSidecar, int]]:
    sidecar = OldSidecar()
    app = web.Application()
    app.router.add_put("/v1/bundle", sidecar.put)
    app.router.add_patch("/v1/bundle", sidecar.patch)
    app.router.add_get("/v1/status", sidecar.status)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield sidecar, port
    await runner.cleanup()


SIDECAR = Sidecar("agents/p", "agents/files", "127.0.0.1", True, False, None, "1")


def _bundles() -> tuple[Bundle, Bundle]:
    base = bundle_for(policy("p", rule("r", tools=["t"])), grant("a"))
    target = bundle_for(policy("p", rule("r", tools=["t"])), grant("a"), grant("b"))
    return msgspec.structs.replace(base, serial=1), msgspec.structs.replace(target, serial=2)


async def test_an_old_sidecar_gets_full_bundles_only(
    old: tuple[OldSidecar, int], tmp_path: Path
) -> None:
    sidecar, port = old
    base, target = _bundles()
    deltas = Deltas()
    deltas.remember(base)
    deltas.remember(target)
    pusher = Pusher(operator_settings(tmp_path))
    try:
        held = await pusher.status(SIDECAR, port)
        deltas.note(held)
        assert held.serial == 1
        assert not held.takes_delta
        key = generate_key()
        assert deltas.tokens(SIDECAR, target, [key]) == []
        outcome = await pusher.push(SIDECAR, port, [b"full"], [])
    finally:
        await pusher.close()
    assert outcome.ok
    assert not outcome.by_delta
    assert outcome.sent == len(b"full")
    assert sidecar.puts == [b"full"]
    assert sidecar.patches == []


async def test_a_refused_delta_falls_back_to_the_full_bundle(
    old: tuple[OldSidecar, int], tmp_path: Path
) -> None:
    sidecar, port = old
    sidecar.advertise = True
    sidecar.patch_answer = (409, {"error": "not the base", "reason": "delta_base"})
    base, target = _bundles()
    sidecar.held = {"digest": base.digest, "serial": 1}
    deltas = Deltas()
    deltas.remember(base)
    deltas.remember(target)
    key = generate_key()
    pusher = Pusher(operator_settings(tmp_path))
    try:
        deltas.note(await pusher.status(SIDECAR, port))
        tokens = deltas.tokens(SIDECAR, target, [key])
        assert len(tokens) == 1
        outcome = await pusher.push(SIDECAR, port, [b"full"], tokens)
    finally:
        await pusher.close()
    assert sidecar.patches == tokens
    assert sidecar.puts == [b"full"]
    assert outcome.ok
    assert not outcome.by_delta
    assert outcome.takes_delta


def test_a_sidecar_restarted_or_failed_gets_the_full_bundle() -> None:
    base, target = _bundles()
    deltas = Deltas()
    deltas.remember(base)
    deltas.remember(target)
    key = generate_key()
    deltas.note(PushResult(SIDECAR, "x", 1, takes_delta=True))
    assert deltas.tokens(SIDECAR, target, [key]) == []  # unknown base
    deltas.note(PushResult(SIDECAR, base.digest, 1, takes_delta=True))
    assert len(deltas.tokens(SIDECAR, target, [key])) == 1
    restarted = Sidecar("agents/p", "agents/files", "127.0.0.1", True, False, None, "2")
    assert deltas.tokens(restarted, target, [key]) == []
    deltas.note(PushResult(SIDECAR, error="timeout"))
    assert deltas.tokens(SIDECAR, target, [key]) == []


def test_a_base_no_sidecar_holds_is_forgotten_after_the_round() -> None:
    base, target = _bundles()
    deltas = Deltas()
    deltas.remember(base)
    deltas.remember(target)
    key = generate_key()
    deltas.note(PushResult(SIDECAR, base.digest, 1, takes_delta=True))
    deltas.prune(target)  # the sidecar still holds the base: kept
    assert len(deltas.tokens(SIDECAR, target, [key])) == 1
    deltas.note(PushResult(SIDECAR, target.digest, 2, takes_delta=True))
    deltas.prune(target)  # every sidecar holds the target now: the base goes
    assert deltas.tokens(SIDECAR, target, [key]) == []  # holds the target: nothing to send
    deltas.note(PushResult(SIDECAR, base.digest, 1, takes_delta=True))  # e.g. a rollback
    assert deltas.tokens(SIDECAR, target, [key]) == []  # its base is gone: the full bundle
