"""The issuer's signing keys, fetched over HTTP and cached, so tokens verify without a round trip.

``JwksCache`` finds the JWKS URL (configured, else OIDC discovery, else RFC 8414 metadata),
fetches the key set with the gateway's shared ``aiohttp.ClientSession`` and keeps it for
``cache_seconds``. A token naming an unknown ``kid`` triggers a refresh (key rotation), but at
most one fetch per ``min_refresh_interval_seconds`` so a flood of made-up kids cannot turn the
gateway into a load generator against the identity provider. Every failure (network, HTTP
status, malformed JSON, no usable key) becomes an ``AuthenticationError``: the call is denied,
never crashed, and a stale key set is not trusted past its lifetime (fail closed).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry, Key, KeySet

from remit.errors import AuthenticationError

logger = logging.getLogger(__name__)

#: JWS algorithm → the JWK key type that can verify it.
KEY_TYPES = {
    "EdDSA": "OKP",
    "Ed25519": "OKP",
    "ES256": "EC",
    "ES384": "EC",
    "ES512": "EC",
    "RS256": "RSA",
    "RS384": "RSA",
    "RS512": "RSA",
    "PS256": "RSA",
    "PS384": "RSA",
    "PS512": "RSA",
}

_FETCH_TIMEOUT = aiohttp.ClientTimeout(total=5.0)
_MAX_DOCUMENT_BYTES = 1 << 20


def discovery_urls(issuer: str) -> tuple[str, str]:
    """The OIDC discovery URL and the RFC 8414 metadata URL for ``issuer``, in that order.

    OIDC appends ``/.well-known/openid-configuration`` to the issuer; RFC 8414 §3 inserts
    ``/.well-known/oauth-authorization-server`` between the host and the issuer's path.
    """
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    origin = f"{parts.scheme}://{parts.netloc}"
    return (
        f"{origin}{path}/.well-known/openid-configuration",
        f"{origin}/.well-known/oauth-authorization-server{path}",
    )


class JwksCache:
    """The issuer's public keys, fetched lazily, refreshed when stale or on an unknown ``kid``.

    ``clock`` is a monotonic clock in seconds (injected so tests move time without sleeping).
    ``generation`` increases whenever the fetched key set differs from the previous one, so
    callers holding results derived from the old keys know to drop them.
    """

    def __init__(
        self,
        client: aiohttp.ClientSession,
        issuer: str,
        *,
        jwks_uri: str | None = None,
        cache_seconds: float = 300.0,
        min_refresh_interval_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._issuer = issuer
        self._jwks_uri = jwks_uri
        self._cache_seconds = cache_seconds
        self._min_interval = min_refresh_interval_seconds
        self._clock = clock
        self._lock = asyncio.Lock()
        self._keys: KeySet | None = None
        self._by_kid: dict[str | None, list[Key]] = {}
        self._loaded_at = 0.0
        self._attempted_at: float | None = None
        self._last_error = ""
        self.generation = 0

    @property
    def jwks_uri(self) -> str | None:
        """The key set URL: configured, or found by discovery (``None`` until discovered)."""
        return self._jwks_uri

    def is_fresh(self) -> bool:
        """Whether a key set is loaded and younger than ``cache_seconds``."""
        return self._keys is not None and self._clock() - self._loaded_at < self._cache_seconds

    async def key_for(self, kid: str | None, alg: str) -> Key:
        """The key that verifies a token signed with ``alg`` under ``kid``.

        Refreshes when the set is stale, or once (rate-limited) when ``kid`` is unknown.
        Raises ``AuthenticationError`` when no such key exists or the keys cannot be fetched.
        """
        if not self.is_fresh():
            async with self._lock:
                if not self.is_fresh():
                    await self._refresh()
        key = self._find(kid, alg)
        if key is not None:
            return key
        async with self._lock:
            key = self._find(kid, alg)  # another request may have refreshed meanwhile
            if key is None and self._may_fetch():
                await self._refresh()
                key = self._find(kid, alg)
        if key is None:
            if kid is None:
                raise AuthenticationError(
                    "invalid_token",
                    f"token has no 'kid' header and the issuer publishes several {alg} keys",
                )
            raise AuthenticationError("invalid_token", f"unknown signing key id {kid!r}")
        return key

    def _find(self, kid: str | None, alg: str) -> Key | None:
        if self._keys is None:
            return None
        if kid is None:
            candidates = [k for k in self._keys if _fits(k, alg)]
            return candidates[0] if len(candidates) == 1 else None
        named = self._by_kid.get(kid)
        if not named:
            return None
        for key in named:
            if _fits(key, alg):
                return key
        raise AuthenticationError(
            "invalid_token", f"signing key {kid!r} cannot verify algorithm {alg!r}"
        )

    def _may_fetch(self) -> bool:
        return (
            self._attempted_at is None or self._clock() - self._attempted_at >= self._min_interval
        )

    async def _refresh(self) -> None:
        if not self._may_fetch():
            raise AuthenticationError(
                "invalid_token", f"the issuer's signing keys are unavailable: {self._last_error}"
            )
        self._attempted_at = self._clock()
        try:
            if self._jwks_uri is None:
                self._jwks_uri = await self._discover()
            document = await self._get_json(self._jwks_uri)
            keys = _import_keys(document)
        except AuthenticationError as error:
            self._last_error = error.description
            logger.warning("JWKS refresh failed: %s", error.description)
            raise
        if self._keys is None or keys.as_dict() != self._keys.as_dict():
            self.generation += 1
        self._keys = keys
        self._by_kid = {}
        for key in keys:
            self._by_kid.setdefault(key.kid, []).append(key)
        self._loaded_at = self._attempted_at
        self._last_error = ""

    async def _discover(self) -> str:
        failures = []
        for url in discovery_urls(self._issuer):
            try:
                metadata = await self._get_json(url)
            except AuthenticationError as error:
                failures.append(error.description)
                continue
            if metadata.get("issuer") != self._issuer:
                raise AuthenticationError(
                    "invalid_token",
                    f"metadata at {url} names issuer {metadata.get('issuer')!r}, "
                    f"expected {self._issuer!r}",
                )
            jwks_uri = metadata.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri:
                raise AuthenticationError("invalid_token", f"metadata at {url} has no jwks_uri")
            return jwks_uri
        raise AuthenticationError(
            "invalid_token", "cannot discover the issuer's JWKS URL: " + "; ".join(failures)
        )

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with self._client.get(
                url,
                headers={"Accept": "application/json"},
                timeout=_FETCH_TIMEOUT,
                allow_redirects=False,
            ) as response:
                status = response.status
                content = await response.content.read(_MAX_DOCUMENT_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise AuthenticationError(
                "invalid_token", f"cannot fetch {url}: {type(error).__name__} {error}".rstrip()
            ) from error
        if status != 200:
            raise AuthenticationError("invalid_token", f"cannot fetch {url}: HTTP {status}")
        if len(content) > _MAX_DOCUMENT_BYTES:
            raise AuthenticationError("invalid_token", f"document at {url} is too large")
        try:
            document = orjson.loads(content)
        except orjson.JSONDecodeError as error:
            raise AuthenticationError("invalid_token", f"{url} did not return JSON") from error
        if not isinstance(document, dict):
            raise AuthenticationError("invalid_token", f"{url} did not return a JSON object")
        return document


def _fits(key: Key, alg: str) -> bool:
    """Whether ``key`` may verify ``alg``: right key type, not an encryption key, alg agrees."""
    return (
        key.key_type == KEY_TYPES.get(alg)
        and key.get("use") in (None, "sig")
        and key.get("alg") in (None, alg)
    )


def _import_keys(document: dict[str, Any]) -> KeySet:
    """Import a JWKS document's usable signing keys, skipping the rest (RFC 7517 §5)."""
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise AuthenticationError("invalid_token", "the JWKS document has no 'keys' list")
    keys: list[Key] = []
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("kty") not in ("OKP", "EC", "RSA"):
            continue  # symmetric ("oct") keys never verify tokens here
        try:
            keys.append(JWKRegistry.import_key(entry))
        except (JoseError, ValueError, TypeError) as error:
            logger.warning("skipping unusable JWK %r: %s", entry.get("kid"), error)
    if not keys:
        raise AuthenticationError("invalid_token", "the JWKS document has no usable signing key")
    return KeySet(keys)
