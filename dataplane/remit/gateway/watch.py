"""Noticing a client that goes away while its call is at the upstream.

Once a request's body is read, the only ASGI message left for it is ``http.disconnect``. One
task per forwarded request waits for it (``ClientWatch``, the only reader of ``receive`` from
then on). Each wait on the upstream (the request until its headers, a JSON body) races it: when
the client goes first, the wait is cancelled and ``ClientGoneError`` raised, so the gateway
drops the upstream connection (the upstream sees the call cancelled) and records the call
``cancelled`` at once, not when a timeout ends it. An SSE relay asks to be told instead
(``on_gone``) and ends its stream. The disconnect and the upstream's end (its EOF, a stall, a
broken read) may wake their tasks in the same loop pass, the relay's first: before an upstream
failure or a stream's end becomes the outcome, ``left`` lets a disconnect already delivered
be seen, so the call is ``cancelled`` in either order.

A stopping gateway cuts a request off the same way (``drain.py``): its race raises the
shutdown ``UpstreamError`` instead, and an SSE relay is told through ``on_cut``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Final, TypeVar

from remit.errors import ClientGoneError, UpstreamError
from remit.gateway.asgi import Receive
from remit.gateway.drain import Drain, shutdown_error

T = TypeVar("T")

CANCELLED: Final = "cancelled"  # the outcome of a call whose client left before its answer
CLIENT_GONE: Final = "client disconnected"


async def _disconnected(receive: Receive) -> None:
    """Return when the client has gone (its request body was already read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class ClientWatch:
    """Watches one HTTP request's client from forwarding to the end of the answer."""

    def __init__(
        self, receive: Receive, drain: Drain | None = None, *, stream: bool = False
    ) -> None:
        self._task = asyncio.create_task(_disconnected(receive))
        self.cut = False  # the gateway is stopping and cut this request off (drain.py)
        self._on_cut: list[Callable[[], None]] = []
        self._drain = drain
        self._token = None if drain is None else drain.enter(self._cut_off, stream=stream)

    def _cut_off(self) -> None:
        if not self.cut:
            self.cut = True
            for callback in self._on_cut:
                callback()

    def on_cut(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the gateway cuts this request off (at once if it has)."""
        self._on_cut.append(callback)
        if self.cut:
            callback()

    @property
    def gone(self) -> bool:
        """Whether the client has disconnected."""
        return self._task.done() and not self._task.cancelled()

    async def left(self) -> bool:
        """Whether the client has gone, counting a disconnect the server has delivered but
        the watcher has yet to see: woken in the same loop pass as the caller (say with the
        upstream's end of stream), it may not have run. The caller yields once, so that it
        does; nothing waits on the client."""
        if not self._task.done():
            await asyncio.sleep(0)
        return self.gone

    def on_gone(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the client disconnects (never after ``close``)."""
        self._task.add_done_callback(lambda task: None if task.cancelled() else callback())

    async def race(self, awaitable: Awaitable[T]) -> T:
        """The result of ``awaitable``, unless the client goes first: then it is cancelled
        and ``ClientGoneError`` raised; if the gateway cuts the request off first, it is
        cancelled and the shutdown ``UpstreamError`` raised.

        ``awaitable`` runs in the calling task (no task of its own, no ``asyncio.wait``: this
        is on every call's path twice); a disconnect cancels the calling task, and that one
        cancellation is taken back here and turned into ``ClientGoneError``.
        """
        if self.gone:
            if isinstance(awaitable, Coroutine):
                awaitable.close()
            raise ClientGoneError
        if self.cut:
            if isinstance(awaitable, Coroutine):
                awaitable.close()
            raise shutdown_error()
        task = asyncio.current_task()
        assert task is not None
        fired = False
        stopped = False
        waiting = True  # a callback scheduled before the finally below may run after it

        def cancel(_: object) -> None:
            nonlocal fired
            # ``close`` cancels the watcher: that is not a disconnect.
            if waiting and not stopped and not self._task.cancelled():
                fired = True
                task.cancel()

        def stop() -> None:
            nonlocal stopped
            if waiting and not fired and not stopped:
                stopped = True
                task.cancel()

        self._task.add_done_callback(cancel)
        self._on_cut.append(stop)
        try:
            return await awaitable
        except (asyncio.CancelledError, UpstreamError) as exc:
            # The work may have turned the cancellation into its own error (a broken read).
            if fired:
                task.uncancel()
                raise ClientGoneError from None
            if stopped:
                task.uncancel()
                raise shutdown_error() from None
            waiting = False
            # A failure woken in the same pass as the client's disconnect is the client's.
            if isinstance(exc, UpstreamError) and await self.left():
                raise ClientGoneError from None
            raise
        finally:
            waiting = False
            self._task.remove_done_callback(cancel)
            self._on_cut.remove(stop)

    def close(self) -> None:
        """Stop watching (the answer is complete)."""
        self._task.cancel()
        if self._drain is not None and self._token is not None:
            self._drain.leave(self._token)
