"""Rules on what a client sends, as pure functions: identity-bearing header fields, which
notifications pass undecided per protocol revision, and batch bounds."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from remit.gateway.fields import canonical, check_header_fields, remit_field
from remit.gateway.protocol import ProtocolError, is_client_notification, parse_body
from remit.gateway.upstream import request_headers


@pytest.mark.parametrize(
    "headers",
    [
        [("authorization", "Bearer a"), ("authorization", "Bearer b")],
        [("mcp-session-id", "s1"), ("mcp-session-id", "s2")],
        [("mcp-method", "tools/call"), ("mcp-method", "tools/list")],
        [("last-event-id", "1"), ("last-event-id", "2")],
        [("host", "a"), ("host", "b")],
        [("mcp-param-path", "/a"), ("mcp-param-path", "/b")],
        [("mcp_session_id", "s1")],
        [("mcp-session-id", "s1"), ("mcp_session_id", "s2")],
        [("Authorization", "Bearer a"), ("authorization", "Bearer b")],
    ],
)
def test_identity_bearing_fields_sent_twice_or_misspelled_are_refused(
    headers: list[tuple[str, str]],
) -> None:
    with pytest.raises(ProtocolError) as refused:
        check_header_fields(headers)
    assert (refused.value.status, refused.value.reason) == (400, "duplicate_header")
    assert "Invalid Request: header" in refused.value.message


def test_the_refusal_names_the_field_and_count() -> None:
    with pytest.raises(ProtocolError, match="Mcp-Session-Id appears 2 times"):
        check_header_fields([("mcp-session-id", "a"), ("mcp-session-id", "b")])
    with pytest.raises(ProtocolError, match="'Mcp_Name' must be spelled 'Mcp-Name'"):
        check_header_fields([("Mcp_Name", "a")])


def test_list_fields_may_repeat() -> None:
    check_header_fields([("accept", "application/json"), ("accept", "text/event-stream")])
    check_header_fields([("x_custom_thing", "1"), ("authorization", "Bearer a")])


@pytest.mark.parametrize(
    "name",
    ["x-remit-subject", "X-Remit-Subject", "X_Remit_Subject", "x_remit-decision", "X-REMIT-A"],
)
def test_client_remit_fields_are_dropped_in_every_spelling(name: str) -> None:
    assert remit_field(canonical(name))
    sent = request_headers([(name.lower(), "forged"), ("accept", "*/*")], {"x-remit-agent": "a"})
    assert [k.lower() for k in sent] == ["accept", "x-remit-agent"]
    assert "forged" not in sent.values()


def test_forwarding_headers_are_dropped_with_underscores_too() -> None:
    sent = request_headers([("x_forwarded_for", "1.2.3.4"), ("accept", "*/*")], {})
    assert list(sent) == ["accept"]


@pytest.mark.parametrize(
    ("method", "version", "passes"),
    [
        ("notifications/initialized", "2025-06-18", True),
        ("notifications/cancelled", "2026-07-28", True),
        ("notifications/progress", "2025-11-25", True),
        ("notifications/tasks/status", "2025-11-25", True),
        ("notifications/tasks/status", "2025-06-18", False),
        ("notifications/initialized", "2026-07-28", False),
        ("notifications/progress", "2026-07-28", False),
        ("notifications/roots/list_changed", None, True),
        ("tools/call", None, False),
        ("notifications/tools/list_changed", "2025-06-18", False),  # a server notification
        ("notifications/anything", None, False),
    ],
)
def test_only_client_notifications_of_the_revision_pass_undecided(
    method: str, version: str | None, passes: bool
) -> None:
    assert is_client_notification(method, version) is passes


def _batch(*messages: dict[str, Any]) -> bytes:
    return orjson.dumps(list(messages))


def ping(id_: int | str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "method": "ping"}


def test_batches_are_bounded() -> None:
    assert len(parse_body(_batch(*(ping(i) for i in range(4))), max_batch=4).messages) == 4
    with pytest.raises(ProtocolError) as refused:
        parse_body(_batch(*(ping(i) for i in range(5))), max_batch=4)
    assert refused.value.reason == "batch_too_large"
    assert "batch of 5 messages exceeds the limit of 4" in refused.value.message


def test_duplicate_ids_refuse_the_batch_before_anything_is_decided() -> None:
    with pytest.raises(ProtocolError) as refused:
        parse_body(_batch(ping(1), ping(2), ping(1)))
    assert (refused.value.reason, refused.value.id) == ("batch_rejected", 1)
    assert len(parse_body(_batch(ping(1), ping("1"))).messages) == 2  # 1 and "1" differ
