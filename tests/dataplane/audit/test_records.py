"""Records: fields, argument evidence, redaction, session hashing, line round trip."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest

from remit.audit import (
    GENESIS,
    DecisionRecord,
    build_decision,
    build_outcome,
    canonical_json,
    parse_line,
    redact,
    seal,
)
from remit.audit.records import format_time, new_record_id, stamp
from remit.errors import AuditError
from remit.policy.request import Request
from remit.times import utc_millis_at, utc_text
from tests.dataplane.audit.helpers import ALICE, NOW, allowed_by_consent, clock


def test_decision_line_has_every_field() -> None:
    entry = seal(allowed_by_consent(), GENESIS)
    data = msgspec.json.decode(entry.line)

    assert data["type"] == "decision"
    assert data["time"] == "2026-03-01T12:00:00.123Z"
    assert data["grant"] == {
        "name": "alice-support-bot-write",
        "uid": "6f1c2a",
        "resourceVersion": "4242",
        "expiresAt": "2026-12-31T00:00:00Z",
    }
    assert data["session"] == hashlib.sha256(b"session-1").hexdigest()
    assert b"session-1" not in entry.line
    assert data["arguments"] == {
        "digest": hashlib.sha256(
            canonical_json({"content": "hi", "path": "/data/alice/notes.txt"})
        ).hexdigest()
    }
    assert (data["prev"], data["hash"]) == (GENESIS, entry.hash)
    assert entry.line.endswith(b'"}\n')
    assert entry.line.count(b"\n") == 1
    assert parse_line(entry.line) == entry.record


def test_argument_digest_ignores_key_order() -> None:
    def digest(arguments: dict[str, object]) -> str:
        request = Request(
            identity=ALICE, method="tools/call", name="t", arguments=arguments, now=NOW
        )
        record = build_decision(request, server="s/s", pod="p", decision="allow", reason="r")
        assert record.arguments is not None
        return record.arguments.digest

    assert digest({"a": 1, "b": [1, {"y": 2, "x": 1}]}) == digest(
        {"b": [1, {"x": 1, "y": 2}], "a": 1}
    )
    assert digest({"a": 1}) != digest({"a": 2})


def test_redacted_mode_keeps_values_but_not_secrets() -> None:
    arguments = {
        "path": "/data/x",
        "apiKey": "k-123",
        "headers": {"Authorization": "Bearer abc", "Accept": "text/plain"},
        "items": [{"password": "hunter2"}, {"name": "n"}],
        "session_token": "tok-999",
        "Cookie": "sid=777",
        "db_credentials": {"user": "dbadmin"},
        "client_secret": "shh-555",
    }
    request = Request(identity=ALICE, method="tools/call", name="t", arguments=arguments, now=NOW)
    record = build_decision(
        request, server="s/s", pod="p", decision="allow", reason="r", argument_mode="redacted"
    )

    assert record.arguments is not None
    assert record.arguments.values == {
        "path": "/data/x",
        "apiKey": "[REDACTED]",
        "headers": {"Authorization": "[REDACTED]", "Accept": "text/plain"},
        "items": [{"password": "[REDACTED]"}, {"name": "n"}],
        "session_token": "[REDACTED]",
        "Cookie": "[REDACTED]",
        "db_credentials": "[REDACTED]",
        "client_secret": "[REDACTED]",
    }
    assert record.arguments.digest == hashlib.sha256(canonical_json(arguments)).hexdigest()
    line = seal(record, GENESIS).line
    for secret in (
        b"k-123",
        b"Bearer abc",
        b"hunter2",
        b"tok-999",
        b"sid=777",
        b"dbadmin",
        b"shh-555",
    ):
        assert secret not in line
    assert redact(arguments)["path"] == "/data/x"


def test_digest_mode_keeps_no_values_and_listing_methods_keep_no_arguments() -> None:
    record = allowed_by_consent()
    assert record.arguments is not None
    assert record.arguments.values is None
    listing = Request(identity=ALICE, method="tools/list", now=NOW)
    assert (
        build_decision(listing, server="s/s", pod="p", decision="allow", reason="r").arguments
        is None
    )


def test_arguments_that_are_not_json_raise_audit_error() -> None:
    request = Request(
        identity=ALICE, method="tools/call", name="t", arguments={"x": object()}, now=NOW
    )
    with pytest.raises(AuditError, match="cannot be recorded"):
        build_decision(request, server="s/s", pod="p", decision="allow", reason="r")


def test_outcome_completes_its_decision() -> None:
    decision = allowed_by_consent()
    outcome = build_outcome(
        decision,
        outcome="upstream_error",
        latency_ms=12.34567,
        status=502,
        error="refused",
        clock=clock,
    )
    data = msgspec.json.decode(seal(outcome, GENESIS).line)
    assert data["decisionId"] == decision.id
    assert (data["outcome"], data["status"], data["latencyMs"], data["error"]) == (
        "upstream_error",
        502,
        12.346,
        "refused",
    )
    assert data["time"] == "2026-03-01T12:00:00.123Z"


def test_times_are_rfc3339_utc_with_milliseconds() -> None:
    plus_two = datetime(2026, 3, 1, 14, 0, 0, 5000, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(plus_two) == "2026-03-01T12:00:00.005Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        format_time(datetime(2026, 3, 1))


def test_record_times_in_utc_are_the_text_of_utc_text_across_seconds() -> None:
    # format_time keeps the text of the current second: it must never serve a stale one.
    start = datetime(2026, 12, 31, 23, 59, 59, 999_500, tzinfo=UTC)
    for step in (0, 1, 499, 500, 1_000, 1_001, 999_999, 1_000_000, 1_500_000, 3_600_000_000):
        moment = start + timedelta(microseconds=step)
        assert format_time(moment) == utc_text(moment, "milliseconds")
    assert format_time(start) == "2026-12-31T23:59:59.999Z"
    assert format_time(start + timedelta(milliseconds=1)) == "2027-01-01T00:00:00.000Z"
    assert format_time(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00.000Z"


def test_record_times_from_the_clock_in_nanoseconds_are_the_text_of_utc_text() -> None:
    # utc_millis_at keeps the text of the current second: never a stale one, in either
    # direction (the clock may step back), and milliseconds truncated as datetime.now does.
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    start = 1_798_761_599_999_000_000  # 2026-12-31T23:59:59.999Z
    steps = (0, 999_999, 1_000_000, 1_000_001, 999_999_999, 3_600_000_000_000, -1, -1_000_000)
    for nanoseconds in (*(start + step for step in steps), 0, 999_999, 1_000_000, start):
        moment = epoch + timedelta(microseconds=nanoseconds // 1000)
        assert utc_millis_at(nanoseconds) == utc_text(moment, "milliseconds"), nanoseconds
    assert utc_millis_at(start) == "2026-12-31T23:59:59.999Z"
    assert utc_millis_at(start + 999_999) == "2026-12-31T23:59:59.999Z"
    assert utc_millis_at(start + 1_000_000) == "2027-01-01T00:00:00.000Z"


def test_a_record_stamp_takes_id_and_time_from_one_reading_of_the_clock() -> None:
    for _ in range(50):
        record_id, moment = stamp()
        millis = int(record_id[:12], 16)
        assert moment == utc_millis_at(millis * 1_000_000)
    injected = datetime(2026, 3, 1, 12, 0, 0, 123_456, tzinfo=UTC)
    assert stamp(injected)[1] == "2026-03-01T12:00:00.123Z"
    assert stamp(None, lambda: injected)[1] == "2026-03-01T12:00:00.123Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        stamp(datetime(2026, 3, 1))


def test_record_ids_are_unique_within_a_millisecond() -> None:
    same_instant = 1_767_225_600_000_000_000
    ids = [new_record_id(lambda: same_instant) for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_record_ids_sort_by_time_whatever_their_random_bits() -> None:
    start = 1_767_225_600_000_000_000
    moments = [start + step * 1_000_000 for step in range(200)]  # one per millisecond
    ids = [new_record_id(lambda moment=moment: moment) for moment in moments]
    assert sorted(ids) == ids
    assert ids[0][:12] == f"{start // 1_000_000:012x}"
    assert new_record_id(lambda: 0)[:12] == "0" * 12  # zero-padded to 12 + 20 digits


def test_a_line_with_a_bad_field_names_it() -> None:
    line = seal(allowed_by_consent(), GENESIS).line.replace(
        b'"decision":"allow"', b'"decision":"maybe"'
    )
    with pytest.raises(ValueError, match=r"\$\.decision"):
        parse_line(line)
    assert isinstance(parse_line(seal(allowed_by_consent(), GENESIS).line), DecisionRecord)
