"""Ended ConsentGrants in a bundle: named truthfully in a denial, never allowing anything.

A grant that had expired, or was revoked, when the bundle was compiled stays in it (recent ones,
bounded), in the same wire format as an active grant, so the denial can say so.
"""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from remit.policy import ended
from remit.policy.bundle import parse_bundle
from remit.policy.ended import ENDED_HORIZON, REVOKED_AT, is_active
from tests.support.policies import EARLIER, NOW, bundle_for, call, engine_for, grant, policy, rule

CONSENT = policy("p", rule("w", tools=["write_file"], consent=True))
TOOLS = [{"name": "write_file", "annotations": {"destructiveHint": False}}]


def test_a_grant_expired_before_compiling_is_named_as_expired() -> None:
    decision = engine_for(CONSENT, grant("g", expires_at=EARLIER)).decide(call("write_file"))
    assert (decision.effect, decision.reason) == ("deny", "consent_required")
    assert "ConsentGrant agents/g expired at 2026-03-01T10:00:00Z" in decision.message
    assert "has no active ConsentGrant" not in decision.message
    assert decision.grant is None


def test_a_grant_revoked_before_compiling_is_named_as_revoked() -> None:
    for revoked in (grant("g", revoked=True), grant("g", revoked=True, expires_at=EARLIER)):
        decision = engine_for(CONSENT, revoked).decide(call("write_file"))
        assert (decision.effect, decision.reason) == ("deny", "consent_required")
        assert "ConsentGrant agents/g was revoked" in decision.message
        assert "expired" not in decision.message


def test_an_ended_grant_never_allows_or_reveals_even_at_any_later_or_earlier_time() -> None:
    for ended_grant in (
        grant("g", expires_at=EARLIER, when="true"),
        grant("g", revoked=True, when="true"),
        grant("g", revoked=True, expires_at=NOW + timedelta(days=365)),
    ):
        engine = engine_for(CONSENT, ended_grant)
        for at in (NOW, NOW - timedelta(hours=1), NOW + timedelta(days=400)):
            assert not engine.decide(call("write_file", now=at)).allowed
        alice = call("write_file").identity
        assert engine.visible_tools(alice, TOOLS, now=NOW) == []


def test_an_active_grant_beside_an_ended_one_still_allows() -> None:
    engine = engine_for(CONSENT, grant("a-old", expires_at=EARLIER), grant("b-new"))
    decision = engine.decide(call("write_file"))
    assert decision.allowed
    assert decision.grant is not None
    assert decision.grant.name == "agents/b-new"


def test_grants_ended_beyond_the_horizon_are_left_out_and_counted() -> None:
    old = NOW - ENDED_HORIZON - timedelta(seconds=1)
    bundle = bundle_for(
        CONSENT,
        grant("old", expires_at=old),
        grant("old-revoked", expires_at=old, revoked=True),
    )
    assert bundle.grants == ()
    assert (bundle.excluded_grants.expired, bundle.excluded_grants.revoked) == (1, 1)
    decision = engine_for(CONSENT, grant("old", expires_at=old)).decide(call("write_file"))
    assert "has no active ConsentGrant" in decision.message


def test_at_most_the_newest_ended_grants_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ended, "MAX_ENDED_GRANTS", 3)
    grants = [grant(f"g{i}", expires_at=NOW - timedelta(hours=i)) for i in range(1, 6)]
    bundle = bundle_for(CONSENT, grant("live"), *grants)
    kept = sorted(g.id for g in bundle.grants)
    assert kept == ["agents/g1", "agents/g2", "agents/g3", "agents/live"]
    assert [g.id for g in bundle.grants if is_active(g, NOW)] == ["agents/live"]
    assert bundle.excluded_grants.expired == 5


def test_ended_grants_use_only_fields_a_previous_gateway_knows() -> None:
    """No new field: a sidecar on the previous image, whose decoder rejects unknown fields,
    accepts a bundle holding ended grants (and treats them as expired)."""
    active_only = orjson.loads(bundle_for(CONSENT, grant("live")).canonical())
    known = set(active_only) | set(active_only["grants"][0])
    with_ended = bundle_for(
        CONSENT, grant("live"), grant("x", expires_at=EARLIER), grant("y", revoked=True)
    )
    document = orjson.loads(with_ended.canonical())
    assert set(document) <= known
    for item in document["grants"]:
        assert set(item) <= set(active_only["grants"][0]) <= known
    assert parse_bundle(with_ended.canonical()) == with_ended
    revoked = next(g for g in with_ended.grants if g.id == "agents/y")
    assert revoked.expires_at == REVOKED_AT
    assert (revoked.when, revoked.reason) == (None, "")
    assert (
        with_ended.next_expiry
        == next(g for g in with_ended.grants if g.id == "agents/live").expires_at
    )
