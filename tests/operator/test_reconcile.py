"""The whole loop with real parts: kopf against kmock, real gateway sidecars on 127.0.0.N, real
MCP calls with real JWTs. Policy changes, revocation, expiry and a sidecar restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import kmock
import pytest
from prometheus_client.parser import text_string_to_metric_families

from remit.demo.issuer import Issuer
from tests.operator.support import (
    AUDIENCE,
    Fleet,
    RunningOperator,
    apply,
    decide,
    delete,
    eventually,
    fleet,
    operator_settings,
    patch,
    running_operator,
    status_of,
)
from tests.support.policies import grant, policy, rule

READ = ("read_file", {"path": "/data/readme.txt"})
WRITE = ("write_file", {"path": "/data/alice/notes.txt", "content": "hi"})


@pytest.fixture
async def files(
    k8s: kmock.KubernetesEmulator,
    operator: RunningOperator,
    issuer: Issuer,
    upstream: str,
    tmp_path: Path,
) -> AsyncIterator[Fleet]:
    async with fleet(k8s, operator, issuer.issuer, issuer.jwks_uri, upstream, 3, tmp_path) as f:
        yield f


@pytest.fixture
def token(issuer: Issuer) -> str:
    return issuer.mint("alice@example.com", agent="support-bot", audience=AUDIENCE)


def _tomorrow() -> datetime:
    return datetime.now(UTC) + timedelta(days=1)


def consent_policy() -> dict:  # type: ignore[type-arg]
    return policy(
        "support-bot",
        rule("read", tools=["read_*", "list_*"]),
        rule("write", tools=["write_file"], consent=True),
    )


async def test_policy_change_reaches_every_sidecar(files: Fleet, token: str) -> None:
    before = files.server_digest()
    assert await files.decide_all(token, *READ) == {"denied"}
    await apply(files.k8s, policy("support-bot", rule("read", tools=["read_*"])))
    after = await files.in_sync(previous=before)
    assert set(await files.digests()) == {after}
    assert await files.decide_all(token, *READ) == {"allowed"}
    status = status_of(files.k8s, "AgentPolicy", "support-bot")
    assert status["conditions"][0]["status"] == "True"
    server = status_of(files.k8s, "MCPServer", "files")
    assert (server["sidecarsDesired"], server["sidecarsInSync"]) == (3, 3)
    assert server["conditions"][0]["reason"] == "InSync"


async def test_revoked_and_deleted_grants_are_denied_everywhere(files: Fleet, token: str) -> None:
    await apply(files.k8s, consent_policy())
    await apply(files.k8s, grant("alice-write", tools=["write_file"], expires_at=_tomorrow()))
    digest = await files.in_sync(previous=files.server_digest())
    await eventually(lambda: status_of(files.k8s, "ConsentGrant", "alice-write").get("phase"))
    assert await files.decide_all(token, *WRITE) == {"allowed"}
    await patch(files.k8s, "ConsentGrant", "alice-write", {"spec": {"revoked": True}})
    digest = await files.in_sync(previous=digest)
    assert await files.decide_all(token, *WRITE) == {"denied"}
    await eventually(
        lambda: status_of(files.k8s, "ConsentGrant", "alice-write").get("phase") == "Revoked"
    )
    await apply(files.k8s, grant("alice-write-2", tools=["write_file"], expires_at=_tomorrow()))
    digest = await files.in_sync(previous=digest)
    assert await files.decide_all(token, *WRITE) == {"allowed"}
    await delete(files.k8s, "ConsentGrant", "alice-write-2")
    await files.in_sync(previous=digest)
    assert await files.decide_all(token, *WRITE) == {"denied"}


async def _brief_grant(
    files: Fleet, token: str, seconds: float, name: str = "alice-brief"
) -> tuple[datetime, str] | None:
    """A grant of ``seconds`` seen in force on every sidecar before it expires: its expiry and
    the digest that carries it. None when the setup (apply, compile, push, three calls) took
    so long under load that the grant expired first: then nothing was shown either way."""
    expires = datetime.now(UTC) + timedelta(seconds=seconds)
    await apply(files.k8s, grant(name, tools=["write_file"], expires_at=expires))

    async def granted() -> bool:  # not a bundle of the policy alone, compiled in between
        if datetime.now(UTC) >= expires:
            return True  # too late to show anything: judged below
        statuses = [await s.status() for s in files.sidecars]
        return all((s.get("bundle") or {}).get("grants") == 1 for s in statuses)

    await eventually(granted, timeout=max(15, seconds))
    digest = await files.in_sync()
    answers = await files.decide_all(token, *WRITE)
    if datetime.now(UTC) >= expires - timedelta(seconds=seconds / 3):
        return None  # allowed or not, the rest of the test would have no time left to run
    assert answers == {"allowed"}
    return expires, digest


async def _in_force(files: Fleet, token: str) -> tuple[datetime, str, str]:
    """``_brief_grant`` of 6 s, or (when the machine was too busy to show it in force in time)
    of 12 s, then 24 s: each try shows the same thing, only given more time, and the test
    then runs against the one that was shown in force with a third of its life left (its
    expiry, digest and name)."""
    await apply(files.k8s, consent_policy())
    for attempt, seconds in enumerate((6.0, 12.0, 24.0)):
        name = f"alice-brief-{attempt}"
        shown = await _brief_grant(files, token, seconds, name)
        if shown is not None:
            return (*shown, name)

        async def none_left() -> bool:  # the expired grant left every bundle: a clean start
            statuses = [await s.status() for s in files.sidecars]
            return all((s.get("bundle") or {}).get("grants") == 0 for s in statuses)

        await eventually(none_left, timeout=15)
    raise AssertionError("a 24 s grant expired before it was seen in force on every sidecar")


async def test_expired_grant_is_denied_without_any_write(files: Fleet, token: str) -> None:
    expires, digest, name = await _in_force(files, token)
    # From here on the test writes nothing: expiry alone must take the grant away.
    await eventually(lambda: datetime.now(UTC) > expires, timeout=30)
    assert await files.decide_all(token, *WRITE) == {"denied"}
    # The operator recompiled on time by itself: the expired grant left every bundle.
    await files.in_sync(previous=digest, timeout=8)
    statuses = [await s.status() for s in files.sidecars]
    assert {s["bundle"]["grants"] for s in statuses} == {0}
    await eventually(lambda: status_of(files.k8s, "ConsentGrant", name).get("phase") == "Expired")


async def test_operator_down_never_extends_consent(files: Fleet, token: str) -> None:
    # The grant is in force with a third of its life (2 s or more) left, for stopping the
    # operator before it expires: what denies it afterwards is the gateway alone.
    expires, digest, _ = await _in_force(files, token)
    await files.operator.stop()  # about 0.5 s on a busy machine
    assert datetime.now(UTC) < expires, "the operator took the grant's remaining life to stop"
    await eventually(lambda: datetime.now(UTC) > expires, timeout=30)
    assert await files.decide_all(token, *WRITE) == {"denied"}
    assert set(await files.digests()) == {digest}  # nobody pushed: the gateway refused alone


async def test_restarted_sidecar_fails_closed_until_pushed_again(files: Fleet, token: str) -> None:
    await apply(files.k8s, policy("support-bot", rule("read", tools=["read_*"])))
    digest = await files.in_sync(previous=files.server_digest())
    victim = files.sidecars[0]
    victim.restart()
    async with httpx.AsyncClient() as http:
        ready = await http.get(f"http://{victim.ip}:{victim.admin_port}/readyz")
    assert ready.status_code == 503
    assert await victim.digest() is None
    assert await decide(victim.url, token, *READ) in ("unavailable", "denied")
    await files.update_pod(victim)  # the kubelet reports the restart
    await eventually(lambda: _has(victim, digest), timeout=10)
    assert await decide(victim.url, token, *READ) == "allowed"


async def _has(sidecar: object, digest: str) -> bool:
    return await sidecar.digest() == digest  # type: ignore[attr-defined]


async def test_drifted_sidecar_is_pushed_again_on_resync(
    k8s: kmock.KubernetesEmulator, issuer: Issuer, upstream: str, tmp_path: Path, token: str
) -> None:
    settings = operator_settings(tmp_path, {"REMIT_RESYNC_SECONDS": "0.5"})
    async with (
        running_operator(k8s, settings) as operator,
        fleet(k8s, operator, issuer.issuer, issuer.jwks_uri, upstream, 2, tmp_path) as files,
    ):
        digest = files.server_digest()
        files.sidecars[1].restart()  # no pod event at all: only the periodic check notices
        await eventually(lambda: _has(files.sidecars[1], digest or ""), timeout=10)


async def test_operator_metrics_count_pushes_and_sidecars_in_sync(
    files: Fleet, operator: RunningOperator, token: str
) -> None:
    before = files.server_digest()
    await apply(files.k8s, policy("support-bot", rule("read", tools=["read_*"])))
    await files.in_sync(previous=before)
    url = f"http://127.0.0.1:{operator.settings.metrics.port}/metrics"
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(url)).text
    samples = {
        (family.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    server = ("server", "agents/files")
    assert samples[("remit_operator_pushes", (("result", "ok"), server))] >= 3
    assert samples[("remit_operator_sidecars", (server, ("state", "in_sync")))] == 3
    assert samples[("remit_operator_sidecars", (server, ("state", "desired")))] == 3
    assert any(
        name == "remit_operator_syncs" and value >= 1 for (name, _), value in samples.items()
    )
