"""Media types (``Content-Type``) parsed with RFC 9110's full grammar, never by prefix.

The gateway decides whether it can inspect an upstream response from its media type, so a
sloppy reading is a bypass: ``Application/JSON`` is JSON (type and subtype are
case-insensitive), ``application/json ; charset="UTF-8"`` is JSON (whitespace around ``;``,
quoted parameter values), ``application/jsonx`` is not. RFC 9110 §8.3.1 and §5.6::

    media-type = type "/" subtype parameters
    parameters = *( OWS ";" OWS [ parameter ] )
    parameter  = token "=" ( token / quoted-string )

Anything else (a list of types, a repeated parameter, a control character) is malformed and
raises ``MediaTypeError``: the caller treats the body as one it cannot inspect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from remit.errors import MediaTypeError

_TCHARS: Final = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED: Final = r'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_OWS: Final = r"[ \t]*"
_ESSENCE: Final = re.compile(rf"({_TCHARS})/({_TCHARS})")
_PARAMETER: Final = re.compile(rf"{_OWS};{_OWS}(?:({_TCHARS})=({_TCHARS}|{_QUOTED}))?")
_QUOTED_PAIR: Final = re.compile(r"\\(.)", re.DOTALL)

JSON: Final = "application/json"
EVENT_STREAM: Final = "text/event-stream"


@dataclass(frozen=True, slots=True)
class MediaType:
    """A parsed media type: lowercase ``type``/``subtype``, parameters with lowercase names."""

    type: str
    subtype: str
    parameters: tuple[tuple[str, str], ...] = ()

    @property
    def essence(self) -> str:
        """``type/subtype`` (lowercase)."""
        return f"{self.type}/{self.subtype}"

    def parameter(self, name: str) -> str | None:
        """The value of parameter ``name`` (case-insensitive), unquoted; None if absent."""
        wanted = name.lower()
        for key, value in self.parameters:
            if key == wanted:
                return value
        return None

    def is_utf8_text(self) -> bool:
        """Whether the charset, if any, is UTF-8 (JSON and SSE are UTF-8 only)."""
        charset = self.parameter("charset")
        return charset is None or charset.lower() == "utf-8"


def parse_media_type(value: str) -> MediaType:
    """Parse one ``Content-Type`` field value; raise ``MediaTypeError`` if it is not one."""
    text = value.strip(" \t")
    essence = _ESSENCE.match(text)
    if essence is None:
        raise MediaTypeError(f"not a media type: {value[:80]!r}")
    parameters: list[tuple[str, str]] = []
    position = essence.end()
    while position < len(text):
        match = _PARAMETER.match(text, position)
        if match is None or match.end() == position:
            raise MediaTypeError(f"malformed media type parameters: {value[:80]!r}")
        name, raw = match.group(1), match.group(2)
        if name is not None:
            key = name.lower()
            if any(key == seen for seen, _ in parameters):
                raise MediaTypeError(f"media type parameter {key!r} appears twice")
            parameters.append((key, _unquote(raw)))
        position = match.end()
    return MediaType(essence.group(1).lower(), essence.group(2).lower(), tuple(parameters))


def _unquote(raw: str) -> str:
    if raw.startswith('"'):
        return _QUOTED_PAIR.sub(r"\1", raw[1:-1])
    return raw


def format_media_type(media: MediaType) -> str:
    """The canonical text of ``media`` (parameter values quoted when they must be)."""
    out = media.essence
    for name, value in media.parameters:
        if re.fullmatch(_TCHARS, value):
            out += f";{name}={value}"
        else:
            escaped = value.replace("\\", "\\\\").replace('"', '\\"')
            out += f';{name}="{escaped}"'
    return out
