"""Delivering a server's argument digest key to one sidecar, readable by that process alone.

Argument digests are keyed (``arguments.py``) so that a guessable argument cannot be found from
its digest; the key is worth nothing once it sits where a pod author can swap or read it. So in
a cluster the operator hands it over on the admin port the way it hands over the consent key
(``remit.policy.consentdelivery``), never in a pod spec or a Secret of the server's namespace:

1. the sidecar makes an X25519 key pair at start and shows only the public half in
   ``GET /v1/status`` (``auditKey.recipient``), with the id of the key it holds (``holds``);
2. the operator encrypts ``{server, key, iat}`` to that public key (JWE), signs the JWE with
   the bundle-signing key (JWS, ``typ: remit-audit-key+jws``) and ``PUT``s ``/v1/audit-key``;
3. the sidecar installs it only if the signature verifies with the key it trusts for bundles,
   it decrypts with its private half, names its own server, is fresh and long enough, and
   was issued after the delivery it holds (a replay cannot roll a rotation back).

Someone who can reach the admin port cannot install a key they know (no signing key), and
someone who reads the traffic or the pod spec learns nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from joserfc.jwk import OKPKey

from remit.audit.anchors import MIN_KEY_BYTES
from remit.errors import AuditError, ConsentRequestError
from remit.policy.consentdelivery import MAX_AGE, Recipient, seal_body

TYPE = "remit-audit-key+jws"
MAX_KEY_BYTES = 1024
_WHAT = "digest key delivery"


def server_key(root: bytes, server: str) -> bytes:
    """``server``'s (``namespace/name``) digest key, derived from the operator's root key:
    HMAC-SHA256(root, ``remit audit digest key v1\0`` + server), as 64 hex digits. Holding
    one server's key reveals neither the root nor another server's key."""
    message = b"remit audit digest key v1\0" + server.encode()
    return hmac.new(root, message, hashlib.sha256).hexdigest().encode()


def seal_key(
    signing_key: OKPKey, recipient: dict[str, Any], server: str, key: bytes, now: float
) -> bytes:
    """The signed delivery of ``server``'s digest ``key``, encrypted to ``recipient``."""
    body = {"server": server, "key": base64.b64encode(key).decode(), "iat": now}
    try:
        return seal_body(signing_key, recipient, body, TYPE, _WHAT)
    except ConsentRequestError as exc:
        raise AuditError(str(exc)) from exc


def open_key(
    recipient: Recipient, token: bytes, verify_key: OKPKey, server: str, now: float
) -> bytes:
    """The digest key in a delivery to ``recipient``; ``AuditError`` saying why it is refused."""
    return open_delivery(recipient, token, verify_key, server, now)[0]


def open_delivery(
    recipient: Recipient, token: bytes, verify_key: OKPKey, server: str, now: float
) -> tuple[bytes, float]:
    """The digest key in a delivery to ``recipient`` and its issue time (``iat``);
    ``AuditError`` saying why it is refused."""
    try:
        body = recipient.unseal(token, verify_key, TYPE, _WHAT)
    except ConsentRequestError as exc:
        raise AuditError(str(exc)) from exc
    if not isinstance(body, dict):
        raise AuditError(f"{_WHAT} is not an object")
    if body.get("server") != server:
        raise AuditError(f"{_WHAT} is for {str(body.get('server'))[:300]!r}, not {server}")
    iat = body.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, int | float):
        raise AuditError(f"{_WHAT} has no issue time (iat)")
    if not now - MAX_AGE <= iat <= now + MAX_AGE:
        raise AuditError(f"{_WHAT} is stale or from the future")
    value = body.get("key")
    try:
        key = base64.b64decode(value if isinstance(value, str) else "", validate=True)
    except ValueError as exc:
        raise AuditError(f"{_WHAT}: key is not base64") from exc
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise AuditError(f"{_WHAT}: the key must be {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes")
    return key, float(iat)


__all__ = ["TYPE", "open_delivery", "open_key", "seal_key", "server_key"]
