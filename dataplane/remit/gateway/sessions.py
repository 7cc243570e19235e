"""Bind each MCP session to the identity that created it, so a session id cannot be hijacked.

On protocol revisions with sessions, the upstream issues ``Mcp-Session-Id`` on ``initialize``.
The gateway remembers (issuer, subject, agent) for it; the same id presented by anyone else is
rejected (404, as the MCP transport specification answers unknown sessions) and recorded.
"""

from __future__ import annotations

from collections import OrderedDict

from remit.policy.request import Identity

Owner = tuple[str, str, str]


def owner_of(identity: Identity) -> Owner:
    """The part of an identity a session is bound to."""
    return (identity.issuer, identity.subject, identity.agent)


class SessionBindings:
    """Session id → owner, bounded (least recently used sessions are forgotten first)."""

    def __init__(self, max_sessions: int = 100_000) -> None:
        self._owners: OrderedDict[str, Owner] = OrderedDict()
        self._max = max_sessions

    def bind(self, session_id: str, identity: Identity) -> None:
        """Remember that ``identity`` created ``session_id``."""
        self._owners[session_id] = owner_of(identity)
        self._owners.move_to_end(session_id)
        while len(self._owners) > self._max:
            self._owners.popitem(last=False)

    def allows(self, session_id: str, identity: Identity) -> bool:
        """Whether ``identity`` owns ``session_id``. Unknown ids are refused (fail closed)."""
        owner = self._owners.get(session_id)
        if owner is None or owner != owner_of(identity):
            return False
        self._owners.move_to_end(session_id)
        return True

    def end(self, session_id: str) -> None:
        """Forget a session the upstream ended."""
        self._owners.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._owners)
