"""The incremental SSE splitter and re-emitter: faithful bytes whatever the chunking."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from remit.gateway.sse import SseSplitter, replace_data

STREAM = (
    b": keep-alive comment\n\n"
    b"retry: 3000\nid: 1:1\ndata: \n\n"
    b'id: 1:2\r\nevent: message\r\ndata: {"jsonrpc":"2.0","id":1,"result":{}}\r\n\r\n'
    b"data: line one\ndata: line two\n\n"
)


def split(chunks: list[bytes]) -> tuple[list[bytes], list[bytes | None], bytes]:
    splitter = SseSplitter()
    events = [event for chunk in chunks for event in splitter.feed(chunk)]
    return [e.raw for e in events], [e.data for e in events], splitter.flush()


def test_events_are_cut_at_blank_lines_and_keep_their_bytes() -> None:
    raws, datas, tail = split([STREAM])
    assert b"".join(raws) == STREAM
    assert datas == [None, b"", b'{"jsonrpc":"2.0","id":1,"result":{}}', b"line one\nline two"]
    assert tail == b""


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_chunking_yields_the_same_events(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    chunks = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)], strict=True)]
    assert split(chunks) == split([STREAM])


def test_an_unterminated_event_waits_and_is_flushed_at_the_end() -> None:
    raws, _, tail = split([b"id: 9\ndata: {}\n"])
    assert raws == []
    assert tail == b"id: 9\ndata: {}\n"


def test_replace_data_keeps_every_other_line_and_the_line_endings() -> None:
    raw = b'id: 1:2\r\nevent: message\r\ndata: {"a":1}\r\n\r\n'
    assert replace_data(raw, b'{"b":2}') == b'id: 1:2\r\nevent: message\r\ndata: {"b":2}\r\n\r\n'
    multi = b"retry: 5\ndata: x\ndata: y\nid: 3\n\n"
    assert replace_data(multi, b"z") == b"retry: 5\ndata: z\nid: 3\n\n"
