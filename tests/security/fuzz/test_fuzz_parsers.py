"""Fuzzing the parsers the gateway trusts: media types, SSE, JSON-RPC framing, routing headers.

Each target has a property that must hold for every input (what may be raised, and what
must agree with what), checked two ways: every file of ``corpus/<target>/`` is replayed as a
regression case, and hypothesis generates inputs from grammars built to reach the edges
(case, whitespace, quoting, line endings, chunk boundaries, BOMs, invalid UTF-8, nesting).
Runs are derandomized and bounded: ``REMIT_FUZZ_EXAMPLES`` inputs per target (default 200, a
few seconds each); raise it for a longer session, e.g. ``REMIT_FUZZ_EXAMPLES=20000``.
An input that once broke a property belongs in the corpus.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from remit.errors import MediaTypeError, ProtocolError, SseEventTooLargeError
from remit.gateway.mediatype import format_media_type, parse_media_type
from remit.gateway.protocol import (
    MODERN_VERSIONS,
    check_routing_headers,
    decode_header_value,
    parse_body,
    server_message_kind,
)
from remit.gateway.protocol import (
    PROTOCOL_VERSION_META as VERSION_META,
)
from remit.gateway.sse import SseEvent, SseParser, encode_event
from remit.gateway.upstream import body_kind

CORPUS = Path(__file__).parent / "corpus"
FUZZ = settings(
    max_examples=int(os.environ.get("REMIT_FUZZ_EXAMPLES", "200")),
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def corpus(target: str) -> list[Any]:
    files = sorted((CORPUS / target).iterdir())
    assert files, f"no corpus for {target}"
    return [pytest.param(path.read_bytes(), id=path.name) for path in files]


# -- media types --------------------------------------------------------------------------

TYPE_PIECES = [
    "application", "Application", "APPLICATION", "text", "Text", "tExT", "json", "JSON", "Json",
    "event-stream", "Event-Stream", "EVENT-STREAM", "jsonx", "json-seq", "html", "*", "/", ";",
    " ; ", ";;", " ", "\t", ",", "=", '"', "\\", "charset", "Charset", "utf-8", "UTF-8",
    "utf-16", '"utf-8"', '"UTF-\\8"', "boundary", "x", "\x00", "\x7f", "é", "+json", "\r\n",
]  # fmt: skip
media_types = st.one_of(
    st.lists(st.sampled_from(TYPE_PIECES), max_size=12).map("".join),
    st.text(max_size=40),
)


def client_kind(value: str) -> str | None:
    """How the MCP SDK's client reads a Content-Type: lowercase prefix matching."""
    lowered = value.strip(" \t").lower()
    if lowered.startswith("application/json"):
        return "json"
    if lowered.startswith("text/event-stream"):
        return "sse"
    return None


def check_media_type(value: str) -> None:
    """Only MediaTypeError; a parsed type round-trips; the gateway never reads a body as
    something other than what a prefix-matching client would (a disagreement is a bypass)."""
    try:
        media = parse_media_type(value)
    except MediaTypeError:
        media = None
    if media is not None:
        assert media.type == media.type.lower()
        assert parse_media_type(format_media_type(media)) == media
    kind = body_kind([value.encode("latin-1", "replace")], [])
    if kind is not None:
        assert kind == client_kind(value), (value, kind)


@pytest.mark.parametrize("data", corpus("media_type"))
def test_media_type_corpus(data: bytes) -> None:
    check_media_type(data.decode("latin-1"))


@FUZZ
@given(media_types)
def test_fuzz_media_types(value: str) -> None:
    check_media_type(value)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("application/json", "json"),
        ("Application/JSON", "json"),
        ('application/json ; charset="UTF-8"', "json"),
        ("application/json;charset=utf-16", None),
        ("Text/Event-Stream", "sse"),
        ("text/event-stream;\tcharset=utf-8", "sse"),
        ("application/jsonx", None),
        ("application/json, text/html", None),
        ("application/json; charset=utf-8; charset=latin1", None),
        ("", None),
    ],
)
def test_media_type_decisions(value: str, kind: str | None) -> None:
    assert body_kind([value.encode()], []) == kind


# -- SSE ----------------------------------------------------------------------------------

SSE_PIECES = [
    b"data:", b"data: ", b"data", b"id:", b"id: 1", b"event:", b"event: message", b"retry:",
    b"retry: 30", b":", b": ping", b"\r", b"\n", b"\r\n", b"\n\n", b"\r\r", b" ", b"x", b"{}",
    b'{"jsonrpc":"2.0","id":1,"result":{}}', b"\xef\xbb\xbf", b"\xff", b"\xe2\x82", b"\xac",
    b"\x00", b"9" * 12, b"unknown: field",
]  # fmt: skip
sse_streams = st.one_of(
    st.lists(st.sampled_from(SSE_PIECES), max_size=30).map(b"".join),
    st.binary(max_size=200),
)


def reference_events(stream: bytes) -> list[SseEvent]:
    """The HTML standard's algorithm over a whole stream at once: an independent oracle."""
    lines = re.split(r"\r\n|\r|\n", stream.decode("utf-8", "replace").removeprefix("\ufeff"))
    events: list[SseEvent] = []
    data: list[str] = []
    kind, id_, retry, comment = "", None, None, False
    for line in lines[:-1]:  # the last piece has no line end: never dispatched
        if line == "":
            if data or id_ is not None or retry is not None or comment:
                joined = "\n".join(data) if data else None
                events.append(SseEvent(joined, kind if data else "", id_, retry, comment))
            data, kind, id_, retry, comment = [], "", None, None, False
            continue
        if line.startswith(":"):
            comment = True
            continue
        name, colon, value = line.partition(":")
        value = value[1:] if colon and value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "event":
            kind = value
        elif name == "id" and "\0" not in value:
            id_ = value
        elif name == "retry" and re.fullmatch(r"[0-9]{1,10}", value):
            retry = int(value)
    return events


def chunked(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(stream) + 1) for c in cuts})
    return [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]


def check_sse(stream: bytes, cuts: list[int]) -> None:
    """Any chunking gives the oracle's events; each event written again reads back the same."""
    parser = SseParser()
    events = [event for chunk in chunked(stream, cuts) for event in parser.feed(chunk)]
    assert events == reference_events(stream)
    for event in events:
        assert SseParser().feed(encode_event(event, event.data)) == [event]


@pytest.mark.parametrize("data", corpus("sse"))
def test_sse_corpus(data: bytes) -> None:
    for cuts in ([], list(range(len(data)))):  # whole, and one byte at a time
        check_sse(data, cuts)


@FUZZ
@given(sse_streams, st.lists(st.integers(min_value=0), max_size=8))
def test_fuzz_sse(stream: bytes, cuts: list[int]) -> None:
    check_sse(stream, cuts)


@FUZZ
@given(sse_streams, st.integers(min_value=1, max_value=64))
def test_fuzz_sse_limit(stream: bytes, limit: int) -> None:
    """An event is refused past the limit, never silently cut: what passes is complete."""
    try:
        events = SseParser(max_event_bytes=limit).feed(stream)
    except SseEventTooLargeError:
        return
    assert events == reference_events(stream)


# -- JSON-RPC framing ---------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["jsonrpc", "id", "method", "params", "result", "error", "code", "x"]),
            children,
            max_size=5,
        )
    ),
    max_leaves=30,
)
messages = st.fixed_dictionaries(
    {"jsonrpc": st.sampled_from(["2.0", "1.0"])},
    optional={
        "id": st.one_of(st.integers(), st.text(max_size=4), st.none(), st.booleans()),
        "method": st.sampled_from(["tools/call", "tools/list", "initialize", "", 3]),
        "params": json_values,
        "result": json_values,
        "error": json_values,
    },
)


def dumps(value: Any) -> bytes:
    """JSON text of any generated value (orjson refuses integers past 64 bits)."""
    return json.dumps(value).encode()


bodies = st.one_of(
    messages.map(dumps),
    st.lists(messages, max_size=3).map(dumps),
    json_values.map(dumps),
    st.integers(min_value=1, max_value=300).map(lambda n: b"[" * n + b"]" * n),
    st.binary(max_size=80),
)


def check_body(data: bytes) -> None:
    """Only ProtocolError; what parses is classified consistently and within the depth."""
    try:
        body = parse_body(data, max_depth=16)
    except ProtocolError as exc:
        refused: ProtocolError | None = exc
    else:
        refused = None
    if refused is not None:
        assert refused.code in (-32700, -32600)
        return
    for message in body.messages:
        assert message.kind in ("request", "notification", "response")
        assert (message.kind == "response") == (message.method == "")
        assert message.kind == "notification" or isinstance(message.id, str | int)


def check_server_message(value: Any) -> None:
    """Strict classification of what an upstream sends; never an exception."""
    kind = server_message_kind(value)
    if kind == "response":
        assert "method" not in value
        assert ("result" in value) != ("error" in value)
    elif kind is not None:
        assert isinstance(value["method"], str)
        assert "result" not in value
        assert "error" not in value


@pytest.mark.parametrize("data", corpus("jsonrpc"))
def test_jsonrpc_corpus(data: bytes) -> None:
    check_body(data)
    with contextlib.suppress(orjson.JSONDecodeError):
        check_server_message(orjson.loads(data))


@FUZZ
@given(bodies)
def test_fuzz_jsonrpc_bodies(data: bytes) -> None:
    check_body(data)


@FUZZ
@given(st.one_of(messages, json_values))
def test_fuzz_server_messages(value: Any) -> None:
    check_server_message(value)


# -- routing headers ----------------------------------------------------------------------

HEADER_NAMES = ["mcp-protocol-version", "mcp-method", "mcp-name", "mcp-param-path",
                "mcp-param-x", "mcp-session-id", "content-type"]  # fmt: skip
HEADER_VALUES = ["2026-07-28", "2025-11-25", "tools/call", "tools/list", "read_file", "/a",
                 "=?base64?cmVhZF9maWxl?=", "=?base64?%%%?=", "=?base64?/w==?=", "1", "1.0",
                 "true", ""]  # fmt: skip
header_lists = st.lists(
    st.tuples(st.sampled_from(HEADER_NAMES), st.sampled_from(HEADER_VALUES) | st.text(max_size=6)),
    max_size=5,
)
VERSIONS = ["2026-07-28", "2025-11-25"]
calls = st.fixed_dictionaries(
    {
        "jsonrpc": st.just("2.0"),
        "id": st.integers(min_value=-(2**63), max_value=2**63 - 1),  # what parses as an id
        "method": st.sampled_from(["tools/call", "tools/list", "resources/read", "prompts/get"]),
        "params": st.fixed_dictionaries(
            {},
            optional={
                "name": st.sampled_from(["read_file", "x"]) | st.integers(),
                "uri": st.sampled_from(["/a", "file:///"]),
                "arguments": json_values,
                "_meta": st.fixed_dictionaries({VERSION_META: st.sampled_from(VERSIONS)}),
            },
        ),
    }
)  # fmt: skip


def check_routing(message_value: Any, headers: list[tuple[str, str]], in_batch: bool) -> None:
    """Only ProtocolError (-32020); a modern request that passes agrees with its headers."""
    (message,) = parse_body(dumps(message_value)).messages
    try:
        check_routing_headers(message, headers, in_batch=in_batch)
    except ProtocolError as exc:
        refused: ProtocolError | None = exc
    else:
        refused = None
    if refused is not None:
        assert refused.code == -32020
        return
    version = [v for n, v in headers if n == "mcp-protocol-version"]
    if version and version[0] in MODERN_VERSIONS and not in_batch:
        assert [v for n, v in headers if n == "mcp-method"] == [message.method]


@pytest.mark.parametrize("data", corpus("routing"))
def test_routing_corpus(data: bytes) -> None:
    case = orjson.loads(data)
    check_routing(case["body"], [tuple(h) for h in case["headers"]], case.get("batch", False))


@FUZZ
@given(calls, header_lists, st.booleans())
def test_fuzz_routing_headers(value: Any, headers: list[tuple[str, str]], batch: bool) -> None:
    check_routing(value, headers, batch)


@FUZZ
@given(st.text(max_size=30) | st.builds(lambda s: f"=?base64?{s}?=", st.text(max_size=20)))
def test_fuzz_header_value_decoding(value: str) -> None:
    decoded = decode_header_value(value)
    assert decoded is None or isinstance(decoded, str)
