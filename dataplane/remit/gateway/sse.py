"""Incremental Server-Sent Events splitting and faithful re-emission.

Upstream SSE streams must reach the client unbuffered and unchanged (``id:``, ``retry:``,
``event:``, comments), except that JSON-RPC responses inside them pass through the response
hook. ``SseSplitter`` cuts a byte stream into complete events as chunks arrive, keeping each
event's raw bytes; ``replace_data`` rebuilds one event with new data and every other line kept,
``event_id``/``replace_id`` read and rewrite its id (the gateway binds ids to callers).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One complete SSE event: its exact bytes (terminator included) and its joined data."""

    raw: bytes
    data: bytes | None


class SseSplitter:
    """Feed chunks, get complete events; an unterminated tail waits for the next chunk.

    Lines end in LF or CRLF (what HTTP servers emit; a lone CR is not treated as a terminator).
    """

    __slots__ = ("_buffer", "_scan")

    def __init__(self) -> None:
        self._buffer = b""
        self._scan = 0

    def feed(self, chunk: bytes) -> Iterator[SseEvent]:
        """Events completed by ``chunk``, in order."""
        buffer = self._buffer + chunk if self._buffer else chunk
        start = 0
        scan = self._scan
        while True:
            end = _event_end(buffer, scan)
            if end < 0:
                break
            raw = buffer[start:end]
            yield SseEvent(raw, _data(raw))
            start = scan = end
        self._buffer = buffer[start:]
        self._scan = max(len(self._buffer) - 2, 0)

    def flush(self) -> bytes:
        """Bytes of an unterminated final event (sent as they are when the stream ends)."""
        rest, self._buffer, self._scan = self._buffer, b"", 0
        return rest


def _event_end(buffer: bytes, scan: int) -> int:
    """Index just past the blank line ending the first event at or after ``scan``, or -1."""
    lf = buffer.find(b"\n\n", scan)
    crlf = buffer.find(b"\n\r\n", scan)
    if lf < 0 and crlf < 0:
        return -1
    if crlf < 0 or (0 <= lf < crlf):
        return lf + 2
    return crlf + 3


def _data(raw: bytes) -> bytes | None:
    """The event's data lines joined with LF (per the SSE spec), or None if it has none."""
    if b"data" not in raw:
        return None
    parts = []
    for raw_line in raw.split(b"\n"):
        if raw_line.startswith(b"data"):
            line = raw_line.removesuffix(b"\r")
            if line == b"data":
                parts.append(b"")
            elif line.startswith(b"data:"):
                value = line[5:]
                parts.append(value[1:] if value.startswith(b" ") else value)
    return b"\n".join(parts) if parts else None


def replace_data(raw: bytes, data: bytes) -> bytes:
    """``raw`` with its data lines replaced by ``data`` (one line; JSON has no raw newlines)."""
    out: list[bytes] = []
    placed = False
    lines = raw.split(b"\n")
    newline = b"\r\n" if lines[0].endswith(b"\r") else b"\n"
    for line in lines[:-2]:
        stripped = line.removesuffix(b"\r")
        if stripped == b"data" or stripped.startswith(b"data:"):
            if not placed:
                out.append(b"data: " + data)
                placed = True
            continue
        out.append(stripped)
    if not placed:
        out.append(b"data: " + data)
    return newline.join(out) + newline + newline


_LINES = re.compile(rb"(\r\n|\n|\r)")


def _field(line: bytes) -> tuple[bytes, bytes]:
    """A line's field name and value (one leading space of the value removed), per the spec."""
    name, colon, value = line.partition(b":")
    if colon and value.startswith(b" "):
        value = value[1:]
    return name, value


def event_id(raw: bytes) -> str | None:
    """The event's id (its last ``id`` field, lines ended by CRLF, LF or CR), or None."""
    found = None
    for line in _LINES.split(raw)[::2]:
        name, value = _field(line)
        if name == b"id" and b"\0" not in value:  # the spec ignores an id containing NULL
            found = value.decode("utf-8", "replace")
    return found


def replace_id(raw: bytes, new: str) -> bytes:
    """``raw`` with every ``id`` field set to ``new`` (the last one wins anyway); the other
    lines and every line terminator are kept as they are."""
    parts = _LINES.split(raw)
    for index in range(0, len(parts), 2):
        if _field(parts[index])[0] == b"id":
            parts[index] = b"id: " + new.encode()
    return b"".join(parts)
