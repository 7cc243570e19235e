"""A grant's last use: the sidecar reports it in /v1/status, the operator copies it to the
ConsentGrant's status.lastUsedAt on its periodic check (real gateway, real MCP call)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import kmock
import pytest

from remit.demo.issuer import Issuer
from remit_operator.lastuse import LastUse, reported_uses
from tests.operator.support import (
    AUDIENCE,
    RunningOperator,
    apply,
    decide,
    eventually,
    fleet,
    operator_settings,
    running_operator,
    status_of,
)
from tests.support.policies import grant, policy, rule

WRITE = ("write_file", {"path": "/data/alice/notes.txt", "content": "hi"})


@pytest.fixture
async def fast_resync(
    k8s: kmock.KubernetesEmulator, tmp_path: Path
) -> AsyncIterator[RunningOperator]:
    """The operator reading every sidecar's status each second."""
    settings = operator_settings(tmp_path, {"REMIT_RESYNC_SECONDS": "1.0"})
    async with running_operator(k8s, settings) as running:
        yield running


def _last_used(k8s: kmock.KubernetesEmulator, name: str) -> datetime | None:
    text = status_of(k8s, "ConsentGrant", name).get("lastUsedAt")
    return datetime.fromisoformat(text) if text else None


async def test_the_grant_records_when_a_sidecar_last_allowed_a_call_under_it(
    k8s: kmock.KubernetesEmulator,
    fast_resync: RunningOperator,
    issuer: Issuer,
    upstream: str,
    tmp_path: Path,
) -> None:
    token = issuer.mint("alice@example.com", agent="support-bot", audience=AUDIENCE)
    one = (issuer.issuer, issuer.jwks_uri, upstream, 1, tmp_path)
    async with fleet(k8s, fast_resync, *one) as files:
        (sidecar,) = files.sidecars
        await apply(k8s, policy("support-bot", rule("write", tools=["write_file"], consent=True)))
        expires = datetime.now(UTC) + timedelta(days=1)
        await apply(k8s, grant("alice-write", tools=["write_file"], expires_at=expires))
        await apply(k8s, grant("alice-unused", tools=["write_file"], expires_at=expires))
        await files.in_sync(previous=files.server_digest())
        await eventually(lambda: status_of(k8s, "ConsentGrant", "alice-write").get("phase"))
        assert _last_used(k8s, "alice-write") is None

        async def allowed() -> bool:
            return await decide(sidecar.url, token, *WRITE) == "allowed"

        # in_sync can return on a bundle compiled before the grants (the digest only has to
        # differ): the first call is allowed once a bundle with a grant is in force; calls
        # denied before that back no grant, so they cannot set a lastUsedAt
        assert await eventually(allowed, timeout=15)

        reported = (await sidecar.status())["grantsLastUsed"]
        used = datetime.fromisoformat(next(iter(reported.values())))
        assert len(reported) == 1  # one grant backed the call (the engine picks one)
        name = next(iter(reported)).split("/", 1)[1]
        recorded = await eventually(lambda: _last_used(k8s, name), timeout=10)
        assert recorded == used
        other = "alice-unused" if name == "alice-write" else "alice-write"
        assert _last_used(k8s, other) is None  # a grant nobody used gets no lastUsedAt

        assert await decide(sidecar.url, token, *WRITE) == "allowed"
        later = await eventually(lambda: (_last_used(k8s, name) or used) > used or None, timeout=10)
        assert later is True


def test_what_a_sidecar_reports_is_bounded_and_never_in_the_future() -> None:
    now = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
    reported = reported_uses(
        {
            "agents/a": "2026-12-02T01:59:00.000Z",
            "agents/ahead": "2026-12-02T03:00:00.000Z",  # an hour ahead of the operator
            "agents/naive": "2026-12-02T01:00:00",  # no zone: not an RFC 3339 time
            "agents/junk": "yesterday",
            "x" * 400: "2026-12-02T01:00:00Z",
            "agents/number": 5,
        }
    )
    assert set(reported) == {"agents/a", "agents/ahead"}
    assert reported_uses(["not", "a", "map"]) == {}
    uses = LastUse()
    uses.observe(reported, now)
    assert set(uses.seen) == {"agents/a"}
    uses.observe({"agents/a": now - timedelta(hours=1)}, now)  # an older report changes nothing
    assert uses.seen["agents/a"] == datetime(2026, 12, 2, 1, 59, tzinfo=UTC)
