"""The admin port's PUT bodies (bundles, deltas, key and consent deliveries) are read whole only
within their bound; one byte more stops the read."""

from __future__ import annotations

from typing import Any

from remit.gateway.asgi import read_body


def _chunks(*parts: bytes) -> Any:
    sent = list(parts)

    async def receive() -> dict[str, Any]:
        body = sent.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(sent)}

    return receive, sent


async def test_a_body_within_its_bound_is_read_whole() -> None:
    receive, _ = _chunks(b"ab", b"cd", b"e")
    assert await read_body(receive, 5) == b"abcde"


async def test_a_body_past_its_bound_stops_the_read_at_the_chunk_that_crosses_it() -> None:
    receive, left = _chunks(b"abc", b"def", b"never read")
    assert await read_body(receive, 5) is None
    assert left == [b"never read"]
