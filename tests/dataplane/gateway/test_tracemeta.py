"""The trace context in ``params._meta`` (tracemeta.py): read from the first message of a body
small enough to peek, ignored when malformed, and the body replayed to the gateway unchanged."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import orjson

from remit.gateway.tracemeta import PEEK_BYTES, meta_carrier, peek_meta

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _call(meta: Any, **extra: Any) -> dict[str, Any]:
    params = {"name": "list_files", "arguments": {"path": "/"}, "_meta": meta, **extra}
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}


def test_the_first_messages_context_is_read() -> None:
    single = orjson.dumps(_call({"traceparent": PARENT, "tracestate": "a=1"}))
    assert meta_carrier(single) == {"traceparent": [PARENT], "tracestate": ["a=1"]}
    batch = orjson.dumps([_call({"traceparent": PARENT}), _call({"traceparent": "other"})])
    assert meta_carrier(batch) == {"traceparent": [PARENT]}


def test_anything_malformed_yields_no_context() -> None:
    for body in (
        b"not json",
        b"[]",
        orjson.dumps(_call(None)),
        orjson.dumps(_call({"tracestate": "a=1"})),  # no traceparent
        orjson.dumps(_call({"traceparent": 7})),
        orjson.dumps(_call({"traceparent": "x" * 600})),
        orjson.dumps(_call(["traceparent", PARENT])),
        orjson.dumps({"jsonrpc": "2.0", "method": "x", "params": [1, 2]}),
        b"[" * 100_000 + b"]" * 100_000,  # deep: refused, never a crash
    ):
        assert meta_carrier(body) == {}


def _receiver(chunks: list[bytes]) -> Any:
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]

    async def receive() -> MutableMapping[str, Any]:
        return messages.pop(0)

    return receive


async def _drain(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def test_the_body_is_replayed_unchanged() -> None:
    body = orjson.dumps(_call({"traceparent": PARENT}))
    chunks = [body[:10], body[10:20], body[20:]]
    carrier, replay = await peek_meta(_receiver(chunks))
    assert carrier == {"traceparent": [PARENT]}
    assert await _drain(replay) == body


async def test_a_body_beyond_the_peek_is_not_parsed_and_still_reaches_the_gateway() -> None:
    body = orjson.dumps(_call({"traceparent": PARENT}, padding="p" * PEEK_BYTES))
    chunks = [body[i : i + 4096] for i in range(0, len(body), 4096)]
    carrier, replay = await peek_meta(_receiver(chunks))
    assert carrier == {}
    assert await _drain(replay) == body
