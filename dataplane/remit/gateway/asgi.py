"""The ASGI vocabulary the gateway's three apps share: types, one reply helper, one lifespan.

The MCP proxy, the gateway app and the admin API are plain ASGI callables (no framework on the
hot path). They answer complete responses the same way (``reply``) and run the same lifespan
protocol (``serve_lifespan``); this module is the one place both are written.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
"""The ASGI connection scope."""
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
"""The ASGI ``receive`` callable."""
Send = Callable[[dict[str, Any]], Awaitable[None]]
"""The ASGI ``send`` callable."""
Headers = list[tuple[bytes, bytes]]
"""Raw response headers (lowercase names)."""
Hook = Callable[[], Awaitable[None]]
"""A startup or shutdown step."""

JSON = b"application/json"


async def reply(
    send: Send,
    status: int,
    body: bytes,
    headers: Headers | None = None,
    content_type: bytes = JSON,
) -> None:
    """Send a complete response. ``content-type`` is sent only with a non-empty body."""
    out = [*(headers or []), (b"content-length", str(len(body)).encode())]
    if body:
        out.append((b"content-type", content_type))
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """A request's whole body, or None as soon as it grows past ``limit`` bytes."""
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > limit:
            return None
        if not message.get("more_body"):
            return bytes(body)


async def reply_json(send: Send, status: int, body: Any, headers: Headers | None = None) -> None:
    """Send ``body`` serialised as JSON."""
    await reply(send, status, orjson.dumps(body), headers)


async def serve_lifespan(
    receive: Receive, send: Send, startup: Hook | None = None, shutdown: Hook | None = None
) -> None:
    """Run the ASGI lifespan protocol: ``startup`` before serving, ``shutdown`` after.

    A failing startup is logged and reported as ``lifespan.startup.failed`` (the server then
    refuses to serve) rather than raised into the server.
    """
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if startup is not None:
                try:
                    await startup()
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if shutdown is not None:
                await shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return
