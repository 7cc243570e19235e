"""Canonical JSON: the one byte form that record hashes and argument digests are taken over.

Canonical JSON here is what ``msgspec.json.Encoder(order="sorted")`` prints: object keys sorted
(recursively), no whitespace, UTF-8, floats in shortest round-trip form. Every hash in a log is
computed with this encoder, and ``remit audit verify`` re-encodes with it, so the choice of
serialiser is part of the log format.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import msgspec

ENCODER = msgspec.json.Encoder(order="sorted")


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` as canonical JSON; raises ``TypeError`` for non-JSON values."""
    return ENCODER.encode(value)


def digest_json(value: Any, key: bytes | None = None) -> str:
    """Return the sha256 hex digest of ``value``'s canonical JSON, or with ``key`` its
    HMAC-SHA256 (so a low-entropy value cannot be found by hashing guesses)."""
    if key is not None:
        return hmac.new(key, ENCODER.encode(value), hashlib.sha256).hexdigest()
    return hashlib.sha256(ENCODER.encode(value)).hexdigest()
