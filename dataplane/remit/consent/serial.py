"""Answers to one consent request, one at a time.

An approval checks that no grant answers its request yet, records itself, then writes the grant
(``approval.py``). Two answers to the same request at once (a double click, two tabs) would both
pass the check while the first waits for its record to sync, and both be recorded as
approvals. ``KeyedLocks`` holds one ``asyncio.Lock`` per request id being answered, so the
second answer runs its check only once the first is done, and is refused with nothing recorded.

The map holds only the ids being answered right now: an entry goes when the last answer holding
or waiting for it leaves, and at most ``limit`` ids are held at once (``ConsentBusyError``
beyond: the page answers 503, try again). One process only: replicas of the consent service
each have their own, and a grant that another replica wrote first is caught when the grant is
created (``GrantExistsError``, recorded ``duplicate``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from remit.errors import ConsentBusyError

LIMIT = 1024  # consent requests answered at once by one consent service


@dataclass
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # answers holding or waiting for the lock


class KeyedLocks:
    """One lock per key, present only while an answer holds or waits for it."""

    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        """How many keys are held or waited for now."""
        return len(self._entries)

    def locked(self, key: str) -> bool:
        """Whether an answer holds ``key`` now."""
        entry = self._entries.get(key)
        return entry is not None and entry.lock.locked()

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold ``key``'s lock for the block (waiting for an earlier holder to leave)."""
        entry = self._entries.get(key)
        if entry is None:
            if len(self._entries) >= self.limit:
                raise ConsentBusyError(
                    f"{len(self._entries)} consent requests are being answered at once; "
                    "try again in a moment"
                )
            entry = self._entries[key] = _Entry()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[key]


__all__ = ["LIMIT", "KeyedLocks"]
