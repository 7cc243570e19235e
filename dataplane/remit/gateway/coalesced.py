"""A complete response written to the socket once, not once for its head and once for its body.

Uvicorn's ``RequestResponseCycle.send`` writes the status line and headers at
``http.response.start`` and the body at ``http.response.body``: two ``send`` system calls and
two TCP segments for every answer the gateway gives, although the gateway always has the
whole body in hand when it starts a response with a ``Content-Length`` (relay.py, asgi.py).
``CoalescingCycle`` keeps such a head (built and checked by uvicorn itself, unchanged) until
the first body message and writes both together; in benchmarks/bench_server_interface.py
that is one write and one client wake-up less per call. Everything else is uvicorn's: a
response without a length (an SSE stream, chunked) is written as it comes, a body that does
not complete the response in one message is written after the head, and a client that left
meanwhile gets nothing more, as before. ``LimitedProtocol`` turns each cycle into this class.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import RequestResponseCycle


class _Held:
    """Stands in for the transport while uvicorn writes a response head: keeps the bytes."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data


class CoalescingCycle(RequestResponseCycle):
    """Uvicorn's cycle, writing a head with a ``Content-Length`` together with its body."""

    held: bytes | None = None  # a response head not yet written

    async def send(self, message: Any) -> None:
        """ASGI ``send``: uvicorn's, with the one write a whole response needs."""
        held = self.held
        if held is not None:
            if self.flow.write_paused and not self.disconnected:
                await self.flow.drain()  # back-pressure as uvicorn's send applies it
            self.held = None
            body = message.get("body", b"")
            if (
                message["type"] == "http.response.body"
                and not message.get("more_body", False)
                and len(body) == self.expected_content_length
                and not self.disconnected
            ):
                self.transport.write(held + body)
                self.expected_content_length = 0
                self.response_complete = True
                self.message_event.set()
                if not self.keep_alive:
                    self.transport.close()
                self.on_response()
                return
            if not self.disconnected:
                self.transport.write(held)
        elif (
            not self.response_started
            and message["type"] == "http.response.start"
            and not self.disconnected
            and not self.flow.write_paused  # uvicorn's send then writes without awaiting
        ):
            transport, hold = self.transport, _Held()
            self.transport = hold  # type: ignore[assignment]
            try:
                await super().send(message)
            finally:
                self.transport = transport
            if self.chunked_encoding is False and self.scope["method"] != "HEAD":
                self.held = hold.data  # the body follows (a length of 0 included)
            elif hold.data:
                transport.write(hold.data)
            return
        await super().send(message)
