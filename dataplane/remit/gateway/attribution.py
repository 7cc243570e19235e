"""Which session a server-to-client message belongs to, and which client responses answer one.

Server requests (``sampling/createMessage``, ``elicitation/create``, ``roots/list``, ...) and log
messages (``notifications/message``) speak to one client: a sampling request asks *that* user's
model, an elicitation asks *that* user a question, a log line may carry their data. So each is
bound to the session it arrives on (``Origin``):

- on the event stream answering a caller's POST, it belongs to that caller (the upstream sends
  it while handling their request);
- on a GET stream with an ``Mcp-Session-Id`` still bound to the caller, it belongs to that
  session;
- on a GET stream without a session (a stream every caller of a session-less upstream shares),
  it cannot be attributed: it is dropped, and recorded (``unattributed_message``).

Each server request relayed is remembered (``ServerRequests``) under the session it was sent
on (or the caller, without one); a client response is relayed only if it answers a request
the upstream sent there and is still unanswered, else it is refused (``unmatched_response``):
a client cannot feed the upstream answers to questions it was never asked, nor answer another
session's sampling request.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final

import orjson

from remit.gateway.sessions import Owner, owner_of
from remit.policy.request import Identity

SESSION_BOUND_NOTIFICATIONS: Final = frozenset({"notifications/message"})
"""Server notifications that speak to one session (the rest are judged in ``notices``)."""
DEFAULT_PER_KEY: Final = 256
DEFAULT_LIMIT: Final = 100_000


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a server message arrived: the request's ``Mcp-Session-Id`` (checked to be the
    caller's) and whether the stream is a GET stream (not the answer to one of their POSTs)."""

    session: str | None = None
    standalone: bool = False


POST_ORIGIN: Final = Origin()
"""A message on the answer to the caller's own POST (sessionless)."""

Key = tuple[str, str | Owner]


def key_of(identity: Identity, session: str | None) -> Key:
    """Where a server request waits for its answer: the session, else the caller."""
    return ("session", session) if session is not None else ("caller", owner_of(identity))


def _id_key(id_: Any) -> str:
    """A JSON-RPC id as comparable text (``1`` and ``"1"`` stay distinct)."""
    return orjson.dumps(id_).decode()


class ServerRequests:
    """Server requests relayed and not yet answered: at most ``per_key`` per session (the
    oldest forgotten first) and ``limit`` in all (least recently used first)."""

    def __init__(self, per_key: int = DEFAULT_PER_KEY, limit: int = DEFAULT_LIMIT) -> None:
        self._waiting: OrderedDict[Key, OrderedDict[str, None]] = OrderedDict()
        self._count = 0
        self._per_key = per_key
        self._limit = limit

    def sent(self, key: Key, id_: Any) -> None:
        """The upstream's request ``id_`` was relayed to the client of ``key``."""
        ids = self._waiting.setdefault(key, OrderedDict())
        self._waiting.move_to_end(key)
        if _id_key(id_) not in ids:
            self._count += 1
        ids[_id_key(id_)] = None
        if len(ids) > self._per_key:
            ids.popitem(last=False)
            self._count -= 1
        while self._count > self._limit:
            oldest_key, oldest = next(iter(self._waiting.items()))
            oldest.popitem(last=False)
            self._count -= 1
            if not oldest:
                del self._waiting[oldest_key]

    def answered(self, key: Key, id_: Any) -> bool:
        """Whether a client response with ``id_`` answers a request sent to ``key``; the
        request is then forgotten (one answer each)."""
        ids = self._waiting.get(key)
        wanted = _id_key(id_)
        if ids is None or wanted not in ids:
            return False
        del ids[wanted]
        self._count -= 1
        if not ids:
            del self._waiting[key]
        return True

    def forget(self, session: str) -> None:
        """The session ended: its requests will never be answered."""
        ids = self._waiting.pop(("session", session), None)
        if ids is not None:
            self._count -= len(ids)

    def __len__(self) -> int:
        return self._count


__all__ = [
    "POST_ORIGIN",
    "SESSION_BOUND_NOTIFICATIONS",
    "Origin",
    "ServerRequests",
    "key_of",
]
