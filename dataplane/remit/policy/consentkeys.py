"""Consent link keys by id, so a rotated key does not break the links issued under the old one.

A consent request link is sealed with one key (``dir`` + ``A256GCM``) and names it in its
protected header (``kid``: a digest of the key, which reveals nothing of it). The consent
service holds the current key and the previous one(s) (the Secret's ``previous`` entry during a
rotation): a link opens with the key it names, so links issued before a rotation keep opening
until they expire. A link's lifetime is at most ``MAX_REQUEST_SECONDS``, which is therefore
how long a previous key must be kept after every gateway seals with the new one.
"""

from __future__ import annotations

import base64
import hashlib
import json

MAX_REQUEST_SECONDS = 3600
"""The longest a consent request link may live (``REMIT_CONSENT_REQUEST_SECONDS`` at most)."""
KEY_BYTES = 32
_MAX_HEADER_CHARS = 512


def key_id(key: bytes) -> str:
    """The id a link names its key by (a truncated, domain-separated SHA-256 of it)."""
    digest = hashlib.sha256(b"remit consent key id v1\0" + key).digest()
    return base64.urlsafe_b64encode(digest[:12]).decode().rstrip("=")


def header_kid(token: str) -> str | None:
    """The ``kid`` of a compact JWE's protected header, or None (absent or unreadable: the
    opening then fails or falls back, it is never trusted beyond choosing a key)."""
    encoded = token.partition(".")[0]
    if not encoded or len(encoded) > _MAX_HEADER_CHARS:
        return None
    try:
        header = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except ValueError:
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) else None


def parse_keys(text: bytes) -> list[bytes]:
    """Keys from a file: one raw 32-byte key, or base64 keys separated by whitespace or commas
    (a Secret's ``previous`` entry may list several). Raises ``ValueError`` saying why not."""
    if len(text) == KEY_BYTES:
        return [text]
    keys: list[bytes] = []
    for word in text.replace(b",", b" ").split():
        try:
            key = base64.b64decode(word, validate=True)
        except ValueError as exc:
            raise ValueError("not 32 bytes nor base64 of 32") from exc
        if len(key) != KEY_BYTES:
            raise ValueError("a key must be 32 bytes")
        keys.append(key)
    return keys


__all__ = ["KEY_BYTES", "MAX_REQUEST_SECONDS", "header_kid", "key_id", "parse_keys"]
