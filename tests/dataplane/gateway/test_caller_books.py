"""The books the guard keeps per caller: session bindings, open streams, server requests.

Each is bounded so that one caller filling it cannot push out what belongs to others.
"""

from __future__ import annotations

import pytest

from remit.gateway.attribution import ServerRequests, key_of
from remit.gateway.quotas import CallerLimits, OpenStreams
from remit.gateway.sessions import SessionBindings, valid_session_id
from remit.policy.request import Identity

ALICE = Identity("alice", "bot", "https://idp")
BOB = Identity("bob", "bot", "https://idp")
MALLORY = Identity("mallory", "bot", "https://idp")


def test_a_caller_filling_the_table_evicts_only_its_own_bindings() -> None:
    sessions = SessionBindings(max_sessions=10, per_identity=4)
    sessions.bind("bob-1", BOB)
    sessions.bind("alice-1", ALICE)
    for index in range(100):
        sessions.bind(f"mallory-{index}", MALLORY)
    assert sessions.allows("bob-1", BOB)
    assert sessions.allows("alice-1", ALICE)
    assert sessions.held(MALLORY) == 4
    assert not sessions.allows("mallory-0", MALLORY)  # its own oldest went first
    assert sessions.allows("mallory-99", MALLORY)
    assert not sessions.has_room(MALLORY)
    assert sessions.has_room(ALICE)


def test_a_full_table_takes_from_the_caller_holding_the_most() -> None:
    sessions = SessionBindings(max_sessions=5, per_identity=4)
    sessions.bind("bob-1", BOB)
    for index in range(4):
        sessions.bind(f"mallory-{index}", MALLORY)
    sessions.bind("alice-1", ALICE)  # the sixth binding: Mallory (four) gives one up
    assert len(sessions) == 5
    assert sessions.allows("bob-1", BOB)
    assert sessions.allows("alice-1", ALICE)
    assert sessions.held(MALLORY) == 3


def test_a_session_bound_to_one_caller_is_never_moved_to_another() -> None:
    sessions = SessionBindings()
    assert sessions.bind("shared", ALICE)
    assert not sessions.bind("shared", MALLORY)
    assert sessions.allows("shared", ALICE)
    assert not sessions.allows("shared", MALLORY)
    sessions.end("shared")
    assert sessions.held(ALICE) == 0
    assert sessions.bind("shared", MALLORY)  # ended: the id may be issued again


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("1868a90c-4a2b-4c5d", True),
        ("!~", True),
        ("x" * 256, True),
        ("x" * 257, False),
        ("", False),
        ("has space", False),
        ("tab\there", False),
        ("caf\u00e9", False),
        ("del\x7f", False),
    ],
)
def test_session_ids_are_visible_ascii_and_bounded(value: str, valid: bool) -> None:
    assert valid_session_id(value) is valid


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_open_streams_are_counted_per_caller_and_released() -> None:
    streams = OpenStreams(CallerLimits(streams_per_identity=2, stream_lifetime=10))
    first, second = streams.reserve(ALICE), streams.reserve(ALICE)
    assert first is not None
    assert second is not None
    assert streams.reserve(ALICE) is None
    assert streams.reserve(BOB) is not None  # Bob's quota is his own
    streams.attach(first, "decision-1")
    streams.release("decision-1")
    assert streams.reserve(ALICE) is not None


def test_a_lease_never_released_stops_counting_after_the_lifetime() -> None:
    clock = Clock()
    streams = OpenStreams(CallerLimits(streams_per_identity=1, stream_lifetime=10), clock)
    assert streams.reserve(ALICE) is not None
    assert streams.reserve(ALICE) is None
    clock.now = 10 + 61  # the stream must have ended by now; its end was never reported
    assert streams.reserve(ALICE) is not None


def test_a_client_response_must_answer_a_request_sent_to_its_session() -> None:
    requests = ServerRequests()
    requests.sent(key_of(ALICE, "s-1"), "sample-1")
    requests.sent(key_of(ALICE, "s-1"), 7)
    assert not requests.answered(key_of(ALICE, "s-2"), "sample-1")  # another session
    assert not requests.answered(key_of(ALICE, "s-1"), "7")  # 7 and "7" differ
    assert requests.answered(key_of(ALICE, "s-1"), 7)
    assert requests.answered(key_of(ALICE, "s-1"), "sample-1")
    assert not requests.answered(key_of(ALICE, "s-1"), "sample-1")  # answered once
    requests.sent(key_of(ALICE, None), "x")  # without a session: the caller's
    assert not requests.answered(key_of(BOB, None), "x")
    assert requests.answered(key_of(ALICE, None), "x")
    assert len(requests) == 0


def test_server_requests_are_bounded_per_session_and_in_all() -> None:
    requests = ServerRequests(per_key=2, limit=3)
    for id_ in range(5):
        requests.sent(key_of(ALICE, "s-1"), id_)
    assert len(requests) == 2
    assert not requests.answered(key_of(ALICE, "s-1"), 0)  # the oldest were forgotten
    requests.sent(key_of(BOB, "s-2"), "a")
    requests.sent(key_of(BOB, "s-2"), "b")
    assert len(requests) == 3
    requests.forget("s-2")
    assert len(requests) == 1
