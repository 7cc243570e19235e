"""Why an upstream body is refused from its headers (``remit.gateway.foreign``): the record
names the media type as parsed per RFC 9110, and what the MCP transport allows instead."""

from __future__ import annotations

import pytest

from remit.gateway.foreign import why
from remit.gateway.upstream import body_kind

ALLOWED = "(the MCP transport allows only application/json or text/event-stream"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ([], f"without a Content-Type {ALLOWED})"),
        (
            [(b"content-type", b'Application/Octet-Stream ; name="a;b"')],
            f"of type application/octet-stream {ALLOWED}; "
            "Content-Type: 'Application/Octet-Stream ; name=\"a;b\"')",
        ),
        (
            [(b"content-type", b"TEXT/plain;charset=utf-8")],
            f"of type text/plain {ALLOWED}; Content-Type: 'TEXT/plain;charset=utf-8')",
        ),
        (
            [(b"content-type", b"text/html"), (b"content-type", b"application/json")],
            f"with 2 Content-Type fields {ALLOWED})",
        ),
        (
            [(b"content-type", b"application/json; charset")],
            f"with a malformed Content-Type 'application/json; charset' {ALLOWED})",
        ),
        (
            [(b"content-type", b"application/json"), (b"content-encoding", b"gzip")],
            "of type application/json with Content-Encoding 'gzip' (not negotiated)",
        ),
        (
            [(b"content-type", b'application/json; charset="ISO-8859-1"')],
            "of type application/json in charset 'ISO-8859-1' (UTF-8 only)",
        ),
    ],
)
def test_a_refused_body_is_named_by_its_parsed_media_type(
    headers: list[tuple[bytes, bytes]], reason: str
) -> None:
    types = [v for k, v in headers if k == b"content-type"]
    encodings = [v for k, v in headers if k == b"content-encoding"]
    assert body_kind(types, encodings) is None  # the bodies the gateway refuses
    assert why(headers) == reason
