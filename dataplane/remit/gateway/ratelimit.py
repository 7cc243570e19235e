"""Rate limits from the bundle, enforced per (subject, agent, rule) with token buckets.

Buckets live in this process (one sidecar per pod, so per pod). A bucket that has refilled
completely is indistinguishable from a new one, so pruning such buckets when the table grows
past its bound loses nothing and keeps memory flat. ``RateLimiter.limit`` turns an allowed
decision whose rules carry limits into a ``rate_limited`` denial when a bucket is empty.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from remit.policy.decision import Decision, RateLimitRef, Reason
from remit.policy.request import Identity


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


@dataclass(frozen=True, slots=True)
class Exceeded:
    """Which rule's limit a call exceeded, and when a retry may succeed (seconds)."""

    rule: str
    retry_after: float


class RateLimiter:
    """Token buckets keyed by (subject, agent, rule id)."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_buckets: int = 100_000
    ) -> None:
        self._clock = clock
        self._max = max_buckets
        self._buckets: dict[tuple[str, str, str, int, int], _Bucket] = {}

    def take(self, subject: str, agent: str, limits: Sequence[RateLimitRef]) -> Exceeded | None:
        """Spend one call from every limit that applies; None if all allow it.

        All-or-nothing: when one limit is exhausted no bucket is charged.
        """
        if not limits:
            return None
        now = self._clock()
        buckets = []
        for ref in limits:
            calls, per = ref.limit.calls, ref.limit.per_seconds
            key = (subject, agent, ref.rule, calls, per)
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self._max:
                    self._prune(now)
                bucket = self._buckets[key] = _Bucket(float(calls), now)
            else:
                rate = calls / per
                bucket.tokens = min(float(calls), bucket.tokens + (now - bucket.updated) * rate)
                bucket.updated = now
            if bucket.tokens < 1.0:
                return Exceeded(ref.rule, (1.0 - bucket.tokens) * per / calls)
            buckets.append(bucket)
        for bucket in buckets:
            bucket.tokens -= 1.0
        return None

    def limit(self, decision: Decision, identity: Identity) -> Decision:
        """``decision``, or a denial naming the rule whose limit the call exceeds."""
        if not decision.allowed or not decision.rate_limits:
            return decision
        exceeded = self.take(identity.subject, identity.agent, decision.rate_limits)
        if exceeded is None:
            return decision
        message = (
            f"rate limit of rule {exceeded.rule} exceeded; retry in {exceeded.retry_after:.1f}s"
        )
        return Decision("deny", Reason.RATE_LIMITED, message, decision.bundle, (exceeded.rule,))

    def _prune(self, now: float) -> None:
        full = [
            key
            for key, b in self._buckets.items()
            if b.tokens + (now - b.updated) * key[3] / key[4] >= key[3]
        ]
        for key in full:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)
