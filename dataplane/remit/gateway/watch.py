"""Noticing a client that goes away while its call is at the upstream.

Once a request's body is read, the only ASGI message left for it is ``http.disconnect``. One
task per forwarded request waits for it (``ClientWatch``, the only reader of ``receive`` from
then on). Each wait on the upstream (the request until its headers, a JSON body) races it: when
the client goes first, the wait is cancelled and ``ClientGoneError`` raised, so the gateway
drops the upstream connection (the upstream sees the call cancelled) and records the call
``cancelled`` at once, not when a timeout ends it. An SSE relay asks to be told instead
(``on_gone``) and ends its stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Final, TypeVar

from remit.errors import ClientGoneError, UpstreamError
from remit.gateway.asgi import Receive

T = TypeVar("T")

CANCELLED: Final = "cancelled"  # the outcome of a call whose client left before its answer
CLIENT_GONE: Final = "client disconnected"


async def _disconnected(receive: Receive) -> None:
    """Return when the client has gone (its request body was already read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class ClientWatch:
    """Watches one HTTP request's client from forwarding to the end of the answer."""

    def __init__(self, receive: Receive) -> None:
        self._task = asyncio.create_task(_disconnected(receive))

    @property
    def gone(self) -> bool:
        """Whether the client has disconnected."""
        return self._task.done() and not self._task.cancelled()

    def on_gone(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the client disconnects (never after ``close``)."""
        self._task.add_done_callback(lambda task: None if task.cancelled() else callback())

    async def race(self, awaitable: Awaitable[T]) -> T:
        """The result of ``awaitable``, unless the client goes first: then it is cancelled
        and ``ClientGoneError`` raised.

        ``awaitable`` runs in the calling task (no task of its own, no ``asyncio.wait``: this
        is on every call's path twice); a disconnect cancels the calling task, and that one
        cancellation is taken back here and turned into ``ClientGoneError``.
        """
        if self.gone:
            if isinstance(awaitable, Coroutine):
                awaitable.close()
            raise ClientGoneError
        task = asyncio.current_task()
        assert task is not None
        fired = False
        waiting = True  # a callback scheduled before the finally below may run after it

        def cancel(_: object) -> None:
            nonlocal fired
            # ``close`` cancels the watcher: that is not a disconnect.
            if waiting and not self._task.cancelled():
                fired = True
                task.cancel()

        self._task.add_done_callback(cancel)
        try:
            return await awaitable
        except (asyncio.CancelledError, UpstreamError):
            # The work may have turned the cancellation into its own error (a broken read).
            if not fired:
                raise
            task.uncancel()
            raise ClientGoneError from None
        finally:
            waiting = False
            self._task.remove_done_callback(cancel)

    def close(self) -> None:
        """Stop watching (the answer is complete)."""
        self._task.cancel()
