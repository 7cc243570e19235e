"""Server-Sent Events parsed exactly as a client parses them, and re-emitted canonically.

The gateway must see every event the client will see, so it parses an upstream stream with the
HTML standard's algorithm (§9.2.6 "Interpreting an event stream") rather than guessing at
bytes: UTF-8 decoding with replacement, one leading BOM dropped, lines ending in CRLF, LF *or
a lone CR* (a CR at the end of one chunk followed by LF at the start of the next is one line
end), ``field: value`` with one optional space, ``data`` lines joined by LF, ``id`` values
holding NUL ignored, ``retry`` only when all ASCII digits, a blank line dispatching. An
unterminated event at the end of the stream is discarded, as clients do.

The relay never forwards upstream bytes: it writes each parsed event again with
``encode_event`` (LF line ends, comments reduced to a bare ``:`` line), so the client's
parser and the gateway's cannot disagree about what was sent.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from typing import Final

from remit.errors import SseEventTooLargeError

_LINE_END: Final = re.compile(r"\r\n|\r|\n")
_MAX_RETRY_DIGITS: Final = 10


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One blank-line-terminated block of an event stream, as a client interprets it.

    ``data`` is the joined data (None when the block had no ``data`` line, so a client would
    dispatch nothing); ``event`` the event type ("" is ``message``); ``id`` the new last event
    id if the block set one; ``retry`` the reconnection time if set; ``comment`` whether the
    block held a comment line (a keep-alive).
    """

    data: str | None = None
    event: str = ""
    id: str | None = None
    retry: int | None = None
    comment: bool = False


class SseParser:
    """Feed byte chunks, get complete events; bounded to ``max_event_bytes`` per event."""

    __slots__ = (
        "_comment",
        "_data",
        "_decoder",
        "_event",
        "_id",
        "_limit",
        "_lines_size",
        "_partial",
        "_partial_size",
        "_retry",
        "_skip_lf",
        "_started",
    )

    def __init__(self, max_event_bytes: int = 8 * 1024 * 1024) -> None:
        self._limit = max_event_bytes
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._started = False
        self._skip_lf = False
        self._partial: list[str] = []
        self._partial_size = 0
        self._reset()

    def _reset(self) -> None:
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None
        self._comment = False
        self._lines_size = 0

    @property
    def pending(self) -> bool:
        """Whether part of an event has arrived but not its end."""
        return self._lines_size > 0 or self._partial_size > 0

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Events completed by ``chunk``, in order; ``SseEventTooLargeError`` past the limit."""
        text = self._decoder.decode(chunk)
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        if self._skip_lf and text:
            text = text.removeprefix("\n")
            self._skip_lf = False
        if not text:
            return []
        self._skip_lf = text.endswith("\r")
        events: list[SseEvent] = []
        position = 0
        for match in _LINE_END.finditer(text):
            self._partial.append(text[position : match.start()])
            line = "".join(self._partial)
            self._partial, self._partial_size = [], 0
            position = match.end()
            event = self._line(line)
            if event is not None:
                events.append(event)
        if position < len(text):
            self._partial.append(text[position:])
            self._partial_size += len(text) - position
        if self._lines_size + self._partial_size > self._limit:
            raise SseEventTooLargeError(self._limit)
        return events

    def _line(self, line: str) -> SseEvent | None:
        if not line:
            return self._dispatch()
        self._lines_size += len(line) + 1
        if self._lines_size > self._limit:
            raise SseEventTooLargeError(self._limit)
        if line.startswith(":"):
            self._comment = True
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and _is_retry(value):
            self._retry = int(value)
        return None

    def _dispatch(self) -> SseEvent | None:
        data = "\n".join(self._data) if self._data else None
        if data is None and self._id is None and self._retry is None and not self._comment:
            self._reset()
            return None
        kind = self._event if data is not None else ""  # a type without data dispatches nothing
        event = SseEvent(data, kind, self._id, self._retry, self._comment)
        self._reset()
        return event


def _is_retry(value: str) -> bool:
    return value.isascii() and value.isdigit() and len(value) <= _MAX_RETRY_DIGITS


def encode_event(event: SseEvent, data: str | None) -> bytes:
    """``event`` written canonically with ``data`` (None: no data lines) in place of its own."""
    lines: list[str] = [":"] if event.comment else []
    if event.event and data is not None:  # (without data the type means nothing)
        lines.append(f"event: {event.event}")
    if event.id is not None:
        lines.append(f"id: {event.id}")
    if event.retry is not None:
        lines.append(f"retry: {event.retry}")
    if data is not None:
        lines.extend(f"data: {line}" for line in data.split("\n"))
    if not lines:
        return b""
    return ("\n".join(lines) + "\n\n").encode()
