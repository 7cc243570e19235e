"""Bind each MCP session to the identity that created it, so a session id cannot be hijacked.

On protocol revisions with sessions, the upstream issues ``Mcp-Session-Id`` on ``initialize``.
The gateway remembers (issuer, subject, agent) for it; the same id presented by anyone else is
rejected (404, as the MCP transport specification answers unknown sessions) and recorded.

The table is bounded per caller, so one caller cannot evict the bindings of others (which
would end their sessions): each identity holds at most ``per_identity`` bindings, and an
``initialize`` beyond that is refused (``session_quota``, recorded) before it reaches the
upstream. A binding that still overflows a quota (initializes racing each other) replaces that
caller's own least recently used binding. When the whole table (``max_sessions``) is full,
the least recently used binding of the caller holding the *most* bindings goes: a caller can
only push out bindings of callers holding at least as many as it does.

Session ids the upstream issues are checked first (``valid_session_id``): the MCP transport
allows only visible ASCII (0x21-0x7E); the gateway also bounds the length. An id already bound
to another caller is never moved to a new one.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Final

from remit.policy.request import Identity

Owner = tuple[str, str, str]
MAX_SESSION_ID_CHARS: Final = 256
_SESSION_ID = re.compile(rf"[\x21-\x7e]{{1,{MAX_SESSION_ID_CHARS}}}")
DEFAULT_PER_IDENTITY: Final = 64
DEFAULT_MAX_SESSIONS: Final = 100_000


def owner_of(identity: Identity) -> Owner:
    """The part of an identity a session is bound to."""
    return (identity.issuer, identity.subject, identity.agent)


def valid_session_id(value: str) -> bool:
    """Whether ``value`` is a session id the gateway accepts (visible ASCII, bounded)."""
    return _SESSION_ID.fullmatch(value) is not None


class SessionBindings:
    """Session id → owner, bounded per owner and in total (see the module docstring)."""

    def __init__(
        self, max_sessions: int = DEFAULT_MAX_SESSIONS, per_identity: int = DEFAULT_PER_IDENTITY
    ) -> None:
        self._owners: dict[str, Owner] = {}
        self._held: dict[Owner, OrderedDict[str, None]] = {}
        self._max = max_sessions
        self.per_identity = per_identity
        self.evicted = 0

    def has_room(self, identity: Identity) -> bool:
        """Whether ``identity`` may open one more session."""
        return len(self._held.get(owner_of(identity), ())) < self.per_identity

    def held(self, identity: Identity) -> int:
        """How many sessions ``identity`` holds."""
        return len(self._held.get(owner_of(identity), ()))

    def bind(self, session_id: str, identity: Identity) -> bool:
        """Remember that ``identity`` created ``session_id``; False (nothing changes) when the
        id is bound to someone else already."""
        owner = owner_of(identity)
        current = self._owners.get(session_id)
        if current is not None and current != owner:
            return False
        held = self._held.setdefault(owner, OrderedDict())
        self._owners[session_id] = owner
        held[session_id] = None
        held.move_to_end(session_id)
        while len(held) > self.per_identity:
            self._drop(owner, next(iter(held)))
        while len(self._owners) > self._max:
            largest = max(self._held, key=lambda o: len(self._held[o]))
            self._drop(largest, next(iter(self._held[largest])))
        return True

    def _drop(self, owner: Owner, session_id: str) -> None:
        held = self._held[owner]
        held.pop(session_id, None)
        self._owners.pop(session_id, None)
        if not held:
            del self._held[owner]
        self.evicted += 1

    def allows(self, session_id: str, identity: Identity) -> bool:
        """Whether ``identity`` owns ``session_id``. Unknown ids are refused (fail closed)."""
        owner = self._owners.get(session_id)
        if owner is None or owner != owner_of(identity):
            return False
        self._held[owner].move_to_end(session_id)
        return True

    def end(self, session_id: str) -> None:
        """Forget a session the upstream ended."""
        owner = self._owners.pop(session_id, None)
        if owner is not None:
            held = self._held[owner]
            held.pop(session_id, None)
            if not held:
                del self._held[owner]

    def __len__(self) -> int:
        return len(self._owners)
