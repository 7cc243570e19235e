"""Consent requests: sealed so only the gateway's key opens them, expiring, and binding a grant
to the call's arguments in CEL without ever writing a secret's value into a grant."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from remit.audit.arguments import is_secret_key
from remit.consent.grants import Login, build_grant, scopes
from remit.errors import ConsentRequestError
from remit.policy.consentrequest import ConsentRequest, ConsentSealer, bindings, new_key
from remit.policy.engine import Engine
from remit.policy.request import Identity, Request
from tests.support.policies import NOW as POLICY_NOW
from tests.support.policies import engine_for, grant, policy, rule, server

NOW = 1_800_000_000


def _request(**changes: object) -> ConsentRequest:
    call, fields = bindings({"path": "/data/a.txt", "token": "s3cret", "n": 2}, is_secret_key)
    values: dict[str, object] = {
        "id": "01ABC", "server": "agents/files", "issuer": "https://i", "subject": "alice",
        "agent": "bot", "tool": "write_file", "tool_hash": None, "rule": "agents/p#r",
        "rule_when": None, "max_seconds": 3600, "issued_at": NOW, "expires_at": NOW + 60,
        "shown": {"path": "/data/a.txt", "token": "[REDACTED]", "n": 2},
        "call": call, "fields": fields,
    }  # fmt: skip
    values.update(changes)
    return ConsentRequest(**values)  # type: ignore[arg-type]


def test_only_the_gateways_key_opens_a_request_and_only_until_it_expires() -> None:
    key = new_key()
    token = ConsentSealer(key).seal(_request())
    assert ConsentSealer(key).open(token, NOW).id == "01ABC"
    with pytest.raises(ConsentRequestError, match="expired"):
        ConsentSealer(key).open(token, NOW + 60)
    with pytest.raises(ConsentRequestError, match="not a consent request"):
        ConsentSealer(new_key()).open(token, NOW)
    assert "s3cret" not in token  # encrypted, not only signed
    assert "data" not in token


def test_the_exact_call_binding_never_holds_a_secret_value() -> None:
    request = _request()
    assert request.call is not None
    assert "s3cret" not in request.call
    assert '"token" in args' in request.call
    assert set(request.fields) == {"path", "n"}


def _engine(when: str | None) -> Engine:
    return engine_for(
        server(),
        policy("p", rule("r", tools=["write_file"], consent=True), agents=["bot"]),
        grant("g", subject="alice", agent="bot", when=when),
    )


@pytest.mark.parametrize(
    ("arguments", "allowed"),
    [
        ({"path": "/data/a.txt", "token": "other", "n": 2}, True),  # secrets may differ
        ({"path": "/data/b.txt", "token": "s3cret", "n": 2}, False),
        ({"path": "/data/a.txt", "token": "s3cret", "n": 3}, False),
        ({"path": "/data/a.txt", "n": 2}, False),
        ({"path": "/data/a.txt", "token": "s3cret", "n": 2, "extra": 1}, False),
    ],
)
def test_a_grant_for_this_exact_call_allows_only_that_call(
    arguments: dict[str, object], allowed: bool
) -> None:
    engine = _engine(_request().call)
    decision = engine.decide(
        Request(Identity("alice", "bot"), "tools/call", "write_file", arguments, {}, POLICY_NOW)
    )
    assert decision.allowed is allowed


def test_the_page_offers_only_scopes_it_can_bind_and_durations_up_to_the_rule() -> None:
    login = Login("https://i", "alice", NOW)
    now = datetime.fromtimestamp(NOW, UTC)
    assert scopes(_request(call=None, fields={})) == ["tool"]
    with pytest.raises(ConsentRequestError):
        build_grant(_request(call=None, fields={}), login, "call", [], 900, now)
    with pytest.raises(ConsentRequestError, match="durations"):
        build_grant(_request(), login, "tool", [], 86_400, now)  # past the rule's 1 h
    with pytest.raises(ConsentRequestError, match="arguments"):
        build_grant(_request(), login, "arguments", ["token"], 900, now)  # never offered
    grant = build_grant(_request(), login, "arguments", ["path"], 900, now)
    assert grant.spec.when == 'args["path"] == "/data/a.txt"'
    assert grant.spec.granted_by == "alice"
    assert grant.spec.evidence is not None
    assert (grant.spec.evidence.request, grant.spec.evidence.scope) == ("01ABC", "arguments")


def test_a_request_too_long_for_a_link_drops_its_arguments_but_stays_answerable() -> None:
    key = new_key()
    big = {"path": "/data/a.txt", "content": "x" * 5000}
    call, fields = bindings(big, is_secret_key)
    token = ConsentSealer(key).seal(_request(shown=big, call=call, fields=fields))
    assert len(token) <= 2_400
    opened = ConsentSealer(key).open(token, NOW)
    assert (opened.shown, opened.call, dict(opened.fields)) == (None, None, {})
    assert scopes(opened) == ["tool"]
