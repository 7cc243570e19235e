"""Delivering the consent service's URL and sealing key to one sidecar, readable by it alone.

A sidecar links ``consent_required`` denials to the consent page only if it holds the page's
URL and the key consent requests are sealed with. In a cluster the operator hands them over on
the admin port, never in the pod spec or in a Secret of the server's namespace:

1. the sidecar makes an X25519 key pair at start (``Recipient``) and shows only the public
   half in ``GET /v1/status`` (``consent.recipient``), with a digest of what it holds;
2. the operator encrypts ``{server, url, key, iat}`` to that public key (JWE,
   ``ECDH-ES+A256KW`` + ``A256GCM``), signs the JWE with the bundle-signing key (JWS,
   ``typ: remit-consent+jws``) and ``PUT``s it to ``/v1/consent``;
3. the sidecar installs it only if the signature verifies with the key it trusts for
   bundles, it decrypts with its private half, names its own server, is fresh and was issued
   after the delivery it holds (``replaces``: a captured delivery replayed within its
   freshness window cannot undo a rotation).

So the key travels encrypted to one process; someone who can reach the admin port cannot
install a URL of their choosing (no signing key), and someone who can read the traffic or the
pod spec learns nothing. A new process makes a new pair and is sent the key again.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from joserfc import jwe, jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey
from joserfc.jws import JWSRegistry

from remit.errors import ConsentRequestError

TYPE = "remit-consent+jws"
_SIGNING = "EdDSA"
_JWE = {"alg": "ECDH-ES+A256KW", "enc": "A256GCM"}
MAX_TOKEN = 16 * 1024
MAX_AGE = 300.0


def holding(url: str, key: bytes) -> str:
    """A digest naming what a sidecar holds (the key cannot be recovered from it)."""
    data = hashlib.sha256(b"remit consent delivery v1\0" + url.encode() + b"\0" + key)
    return "sha256:" + data.hexdigest()


def _registry() -> JWSRegistry:
    return JWSRegistry(algorithms=[_SIGNING])


def seal_delivery(
    signing_key: OKPKey, recipient: dict[str, Any], server: str, url: str, key: bytes, now: float
) -> bytes:
    """The signed, encrypted delivery of ``url`` and ``key`` to the sidecar ``recipient``."""
    body = {"server": server, "url": url, "key": base64.b64encode(key).decode(), "iat": now}
    return seal_body(signing_key, recipient, body, TYPE, "consent delivery")


def seal_body(
    signing_key: OKPKey, recipient: dict[str, Any], body: dict[str, Any], typ: str, what: str
) -> bytes:
    """``body`` encrypted to ``recipient`` (a public X25519 JWK), signed as ``typ``."""
    try:
        public = OKPKey.import_key(recipient)
        if public.curve_name != "X25519" or public.is_private:
            raise ConsentRequestError("the recipient must be a public X25519 key")
        sealed = jwe.encrypt_compact(_JWE, json.dumps(body).encode(), public)
        header = {"alg": _SIGNING, "typ": typ}
        token = jws.serialize_compact(header, sealed.encode(), signing_key, registry=_registry())
    except (JoseError, ValueError, TypeError) as exc:
        raise ConsentRequestError(f"cannot seal the {what}: {exc}") from exc
    return token.encode()


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a sidecar was given: the consent page's URL and the sealing key."""

    url: str
    key: bytes
    iat: float = 0.0


class Recipient:
    """A sidecar's X25519 key pair for receiving the delivery (made per process)."""

    def __init__(self) -> None:
        self._key = OKPKey.generate_key("X25519")

    def public(self) -> dict[str, Any]:
        """The public half as a JWK (what ``/v1/status`` shows)."""
        return dict(self._key.as_dict(private=False))

    def open(self, token: bytes, verify_key: OKPKey, server: str, now: float) -> Delivery:
        """Verify, decrypt and check a delivery; ``ConsentRequestError`` saying why not."""
        return _checked(self.unseal(token, verify_key, TYPE, "consent delivery"), server, now)

    def unseal(self, token: bytes, verify_key: OKPKey, typ: str, what: str) -> Any:
        """The JSON body of a signed (``typ``) and encrypted delivery to this recipient;
        ``ConsentRequestError`` naming ``what`` when it is too large, unsigned or unreadable.
        (Other deliveries on the admin port, e.g. ``keydelivery.py``, take the same path.)"""
        if len(token) > MAX_TOKEN:
            raise ConsentRequestError(f"a {what} is at most {MAX_TOKEN} bytes")
        try:
            signed = jws.deserialize_compact(token.decode("ascii").strip(), verify_key,
                                             registry=_registry())  # fmt: skip
        except (JoseError, ValueError, UnicodeDecodeError) as exc:
            raise ConsentRequestError(f"{what} signature does not verify: {exc}") from exc
        if signed.protected.get("typ") != typ:
            raise ConsentRequestError(f"not a {what} (typ must be {typ})")
        try:
            plain = jwe.decrypt_compact(signed.payload.decode("ascii"), self._key).plaintext
            return json.loads(plain or b"")
        except (JoseError, ValueError, UnicodeDecodeError) as exc:
            raise ConsentRequestError(f"{what} does not open: {exc}") from exc


def _checked(body: Any, server: str, now: float) -> Delivery:
    if not isinstance(body, dict):
        raise ConsentRequestError("consent delivery is not an object")
    url, key, iat = body.get("url"), body.get("key"), body.get("iat")
    if body.get("server") != server:
        raise ConsentRequestError(f"consent delivery is for {body.get('server')!r}, not {server}")
    if not isinstance(iat, int | float) or not now - MAX_AGE <= iat <= now + MAX_AGE:
        raise ConsentRequestError("consent delivery is stale or from the future")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")) or len(url) > 2048:
        raise ConsentRequestError("consent delivery has no valid url")
    try:
        raw = base64.b64decode(key if isinstance(key, str) else "", validate=True)
    except ValueError as exc:
        raise ConsentRequestError("consent delivery key is not base64") from exc
    if len(raw) != 32:
        raise ConsentRequestError("consent delivery key must be 32 bytes")
    return Delivery(url, raw, float(iat))


def replaces(installed: tuple[float, str] | None, iat: float, holds: str, what: str) -> bool:
    """Whether a delivery issued at ``iat`` of what ``holds`` names replaces the one
    ``installed`` (its issue time and what it named): issue times only move forward, so a
    captured delivery replayed after a rotation cannot roll it back (it is fresh for
    ``MAX_AGE``). The same delivery again (equal ``iat``, same content) changes nothing
    (False); an older one, or another at the same instant, is ``ConsentRequestError``."""
    if installed is None or iat > installed[0]:
        return True
    if iat == installed[0] and holds == installed[1]:
        return False
    raise ConsentRequestError(
        f"{what} was issued at {iat:.3f}, not after the one installed ({installed[0]:.3f}): "
        "a replay of an earlier delivery"
    )


__all__ = ["Delivery", "Recipient", "holding", "replaces", "seal_body", "seal_delivery"]
