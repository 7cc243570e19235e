"""Requests forwarded in a session and not yet answered, and which of them the client cancelled.

A session's responses may arrive on another stream than the POST that carried the request
(replayed on a GET stream with ``Last-Event-ID``), so the gateway remembers each forwarded
request until its response is relayed (bounded, least recently added dropped first).

In the session-based transport (2025-06-18, 2025-11-25) a client gives up on a request by
sending ``notifications/cancelled`` naming its id in the same session (bound to the caller, so
no one cancels another's call). The gateway marks the request cancelled before forwarding the
notice (``cancel_requests``) and withdraws the mark if the upstream does not accept it. The
upstream then stops the request and answers with an error or, as the specification asks, not
at all: either end is recorded ``cancelled``, the client's end, never an upstream failure; a
result that arrives anyway is recorded as the answer it is. Once the upstream accepted the
notice, a relay whose every awaited request is cancelled is told (``add``'s ``on_cancel``) and
closes its upstream connection, so it does not hold the client until a read timeout.
Over 2026-07-28 HTTP, closing the response stream is the cancellation (``watch.py``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from remit.gateway.protocol import Message, RequestId

CANCEL_METHOD: Final = "notifications/cancelled"
CLIENT_CANCELLED: Final = "client cancelled the request (notifications/cancelled)"

Key = tuple[str, RequestId]


@dataclass(frozen=True, slots=True)
class Call:
    """A forwarded request awaiting its response: the request and its decision token."""

    message: Message
    token: Any


class PendingCalls:
    """Requests forwarded in a session whose responses have not been seen, bounded LRU."""

    def __init__(self, limit: int = 10_000) -> None:
        self._calls: OrderedDict[Key, Call] = OrderedDict()
        self._limit = limit
        self._cancelled: set[Key] = set()
        self._on_cancel: dict[Key, Callable[[], None]] = {}

    def add(self, session: str, call: Call, on_cancel: Callable[[], None] | None = None) -> None:
        """Remember ``call`` until its response is relayed; ``on_cancel`` is called when the
        upstream accepted the client's cancellation of it."""
        assert call.message.id is not None
        key = (session, call.message.id)
        self._forget(key)  # an id used again is a new request: not cancelled, newest last
        self._calls[key] = call
        if on_cancel is not None:
            self._on_cancel[key] = on_cancel
        if len(self._calls) > self._limit:
            self._forget(next(iter(self._calls)))

    def pop(self, session: str, id_: RequestId) -> Call | None:
        """Forget and return the call answered by a response with ``id_``."""
        key = (session, id_)
        call = self._calls.get(key)
        self._forget(key)
        return call

    def cancelled(self, session: str | None, id_: RequestId) -> bool:
        """Whether the client cancelled the pending request ``id_`` of ``session``."""
        return session is not None and (session, id_) in self._cancelled

    def cancel(self, session: str, ids: Sequence[RequestId]) -> list[Key]:
        """Mark the pending requests ``ids`` of ``session`` cancelled (before the notices
        cancelling them are forwarded); the keys marked."""
        keys = [(session, id_) for id_ in ids]
        marked = [key for key in keys if key in self._calls and key not in self._cancelled]
        self._cancelled.update(marked)
        return marked

    def settle(self, keys: Sequence[Key], accepted: bool) -> None:
        """The upstream accepted the cancellations (tell each relay) or did not (unmark)."""
        for key in keys:
            if not accepted:
                self._cancelled.discard(key)
            elif key in self._cancelled and (tell := self._on_cancel.get(key)) is not None:
                tell()

    def _forget(self, key: Key) -> None:
        self._calls.pop(key, None)
        self._cancelled.discard(key)
        self._on_cancel.pop(key, None)


def cancelled_ids(messages: Sequence[Message]) -> list[RequestId]:
    """The request ids the ``notifications/cancelled`` among ``messages`` name."""
    ids: list[RequestId] = []
    for message in messages:
        if message.kind != "notification" or message.method != CANCEL_METHOD:
            continue
        id_ = message.params.get("requestId")
        if isinstance(id_, str) or (isinstance(id_, int) and not isinstance(id_, bool)):
            ids.append(id_)
    return ids
