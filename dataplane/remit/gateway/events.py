"""SSE event ids bound to the caller they were issued to, so a stream cannot be replayed by another.

The upstream's event store resumes *any* stream from a ``Last-Event-ID``, whoever presents it:
a caller with their own session and another user's event id received that user's progress
notifications. So the gateway never shows the upstream's event ids. Each id it relays is sealed:
``<mac>.<upstream id>``, where ``mac`` is an HMAC-SHA256 (this process's random key) over the
caller's (issuer, subject, agent) and the upstream id. A ``Last-Event-ID`` is opened again with
the presenting caller's identity; if the mac does not match (another caller's id, an edited or
invented id) the stream is refused and recorded, and nothing reaches the upstream.

The key lives only in memory: after a restart old ids no longer open, and clients start a new
stream (the upstream's own event store does not outlive its pod either).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Final

import orjson

from remit.policy.request import Identity

_MAC_CHARS: Final = 22  # 132 bits of base64url
_SEPARATOR: Final = "."


class EventIds:
    """Seal and open event ids for one gateway process."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)

    def _mac(self, identity: Identity, upstream_id: str) -> str:
        message = orjson.dumps([identity.issuer, identity.subject, identity.agent, upstream_id])
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode()[:_MAC_CHARS]

    def seal(self, identity: Identity, upstream_id: str) -> str:
        """The id the caller sees for the upstream's ``upstream_id``."""
        return f"{self._mac(identity, upstream_id)}{_SEPARATOR}{upstream_id}"

    def open(self, identity: Identity, presented: str) -> str | None:
        """The upstream id behind ``presented`` if it was sealed for ``identity``; else None."""
        mac, separator, upstream_id = presented.partition(_SEPARATOR)
        if not separator or len(mac) != _MAC_CHARS:
            return None
        if not hmac.compare_digest(mac.encode(), self._mac(identity, upstream_id).encode()):
            return None
        return upstream_id


__all__ = ["EventIds"]
