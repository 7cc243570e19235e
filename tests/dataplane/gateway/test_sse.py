"""The SSE parser reads a stream as the HTML standard says a client does, whatever the chunking,
and ``encode_event`` writes an event back so that a client reads the same thing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remit.errors import SseEventTooLargeError
from remit.gateway.sse import SseEvent, SseParser, encode_event

STREAM = (
    b": keep-alive comment\n\n"
    b"retry: 3000\nid: 1:1\ndata: \n\n"
    b'id: 1:2\r\nevent: message\r\ndata: {"jsonrpc":"2.0","id":1,"result":{}}\r\n\r\n'
    b"data: line one\rdata: line two\r\r"
)
EVENTS = [
    SseEvent(comment=True),
    SseEvent(data="", id="1:1", retry=3000),
    SseEvent(data='{"jsonrpc":"2.0","id":1,"result":{}}', event="message", id="1:2"),
    SseEvent(data="line one\nline two"),
]


def parse(chunks: list[bytes]) -> list[SseEvent]:
    parser = SseParser()
    return [event for chunk in chunks for event in parser.feed(chunk)]


def test_events_end_at_blank_lines_with_any_line_ending() -> None:
    assert parse([STREAM]) == EVENTS


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_chunking_yields_the_same_events(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    chunks = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)], strict=True)]
    assert parse(chunks) == EVENTS


def test_a_cr_ending_one_chunk_and_an_lf_starting_the_next_are_one_line_end() -> None:
    # Were the LF read as a second line end, the blank line would dispatch a half event.
    assert parse([b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]) == [SseEvent(data="a\nb")]


def test_cr_only_lines_are_lines() -> None:
    assert parse([b'data: {"id":1}\r\r']) == [SseEvent(data='{"id":1}')]


def test_an_unterminated_event_is_never_dispatched() -> None:
    parser = SseParser()
    assert parser.feed(b"id: 9\ndata: {}\n") == []
    assert parser.pending


def test_fields_follow_the_standard() -> None:
    stream = (
        "\ufeffdata:no space\ndata:  two spaces\ndata\nevent:x\nid: a\0b\nretry: 12a\n"
        "unknown: field\n\n"
    ).encode()
    assert parse([stream]) == [SseEvent(data="no space\n two spaces\n", event="x")]


def test_a_bom_is_dropped_only_at_the_start() -> None:
    assert parse([b"\xef\xbb", b"\xbfdata: 1\n\n"]) == [SseEvent(data="1")]
    assert parse([b"data: 1\n\n\xef\xbb\xbfdata: 2\n\n"]) == [SseEvent(data="1")]  # "\ufeffdata"


def test_invalid_utf8_is_replaced_as_a_client_would() -> None:
    assert parse([b"data: \xff\n\n"]) == [SseEvent(data="\ufffd")]


def test_huge_retry_values_are_ignored_not_crashed_on() -> None:
    assert parse([b"retry: " + b"9" * 5000 + b"\ndata: x\n\n"]) == [SseEvent(data="x")]


def test_an_event_past_the_limit_is_refused_before_it_completes() -> None:
    parser = SseParser(max_event_bytes=100)
    for _ in range(5):  # 85 characters of lines so far: within the limit
        assert parser.feed(b"data: " + b"x" * 10 + b"\n") == []
    with pytest.raises(SseEventTooLargeError):
        parser.feed(b"data: " + b"x" * 10 + b"\n")
    with pytest.raises(SseEventTooLargeError):
        SseParser(max_event_bytes=100).feed(b"data: " + b"x" * 200)


def test_encoding_round_trips() -> None:
    for event in EVENTS:
        assert parse([encode_event(event, event.data)]) == [event]


def test_encoding_replaces_data_and_reduces_comments_to_a_keep_alive() -> None:
    event = SseEvent(data="old", event="message", id="7", retry=5)
    assert encode_event(event, '{"b":2}') == b'event: message\nid: 7\nretry: 5\ndata: {"b":2}\n\n'
    assert encode_event(SseEvent(comment=True), None) == b":\n\n"
    assert encode_event(SseEvent(), None) == b""
