"""Who is calling: verify the caller's OAuth 2.1 access token and turn it into an ``Identity``.

The gateway is an OAuth resource server as the MCP authorization specification requires: the
token comes only from the ``Authorization: Bearer`` header (never the URL), its signature must
verify with the issuer's published key named by ``kid`` under an algorithm the settings allow
(never ``none``, never an HMAC ``HS*``), and ``iss``, ``aud`` (RFC 8707 resource), ``exp``,
``nbf``, ``iat`` and the required scopes are checked. Every refusal is an
``AuthenticationError`` whose ``reason`` is an RFC 6750 error code and whose ``description`` is
a sentence naming the problem, ready for the ``WWW-Authenticate`` header.

Verified tokens may be remembered (keyed by the exact token string, bounded LRU, never past
``exp``, dropped when the key set changes) so a repeated token costs a dictionary lookup.
``AuthenticatorCache`` keeps the authenticator for the issuer of the bundle in force.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import orjson
from joserfc import jws
from joserfc.errors import ClaimError, ExpiredTokenError, JoseError, MissingClaimError
from joserfc.jwa import JWSAlgModel
from joserfc.jws import JWSRegistry
from joserfc.jwt import JWTClaimsRegistry

from remit.errors import AuthenticationError, InsufficientScopeError, MissingCredentialsError
from remit.gateway.agents import DEFAULT_AGENT_SOURCES, AgentSource, actors, agent_sources
from remit.gateway.claims import DEFAULT_GROUP_SOURCES, GroupSource, group_sources, groups_from
from remit.gateway.jwks import KEY_TYPES, JwksCache
from remit.policy.bundle import ServerSettings
from remit.policy.request import Identity
from remit.times import utc_text


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """How to verify tokens for one protected MCP server.

    ``audience`` is the server's RFC 8707 resource identifier, accepted when the token's ``aud``
    (string or list) contains it. ``jwks_uri`` is optional: without it the key set URL comes
    from OIDC discovery, falling back to RFC 8414 metadata. ``verified_token_cache_size`` bounds
    the verified-token cache (0 turns it off). ``group_sources`` say where ``subject.groups``
    come from (``remit.gateway.claims``), ``agent_sources`` where the agent does when the token
    has no ``act`` (``remit.gateway.agents``).
    """

    issuer: str
    audience: str
    jwks_uri: str | None = None
    required_scopes: tuple[str, ...] = ()
    clock_skew_seconds: int = 30
    algorithms: tuple[str, ...] = ("EdDSA", "ES256", "RS256")
    jwks_cache_seconds: float = 300.0
    jwks_min_refresh_interval_seconds: float = 10.0
    verified_token_cache_size: int = 10_000
    group_sources: tuple[GroupSource, ...] = DEFAULT_GROUP_SOURCES
    agent_sources: tuple[AgentSource, ...] = DEFAULT_AGENT_SOURCES

    def __post_init__(self) -> None:
        if not self.issuer:
            raise ValueError("authentication settings: issuer is required")
        if not self.audience:
            raise ValueError("authentication settings: audience is required")
        if not self.algorithms:
            raise ValueError("authentication settings: at least one algorithm is required")
        for alg in self.algorithms:
            if alg.lower() == "none" or alg.upper().startswith("HS"):
                raise ValueError(
                    f"authentication settings: algorithm {alg!r} is never accepted "
                    "(unsigned and shared-secret tokens cannot prove the issuer signed them)"
                )
            if alg not in KEY_TYPES:
                raise ValueError(f"authentication settings: unknown algorithm {alg!r}")
        if self.clock_skew_seconds < 0 or self.verified_token_cache_size < 0:
            raise ValueError("authentication settings: negative skew or cache size")
        if self.jwks_cache_seconds <= 0 or self.jwks_min_refresh_interval_seconds < 0:
            raise ValueError("authentication settings: invalid JWKS cache intervals")


class _AllowedAlgorithms(JWSRegistry):
    """joserfc's registry, limited to the configured algorithms and without the per-token
    deprecation warning for ``EdDSA`` (RFC 9864): accepting it is the operator's choice."""

    def get_alg(self, name: str) -> JWSAlgModel:
        if self.allowed is None or name not in self.allowed or name not in self.algorithms:
            raise AuthenticationError("invalid_token", f"signing algorithm {name!r} not accepted")
        return self.algorithms[name]


@dataclass(frozen=True, slots=True)
class _Verified:
    identity: Identity
    expires_at: float
    generation: int


class Authenticator:
    """Turns an ``Authorization`` header into a verified ``Identity``, or refuses.

    ``now`` is the wall clock in seconds since the epoch (injected so tests need no sleeps).
    Build one with ``Authenticator.create(settings, client)`` or pass a ``JwksCache``.
    """

    def __init__(
        self, settings: AuthSettings, keys: JwksCache, *, now: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.keys = keys
        self._now = now
        self._registry = _AllowedAlgorithms(
            algorithms=settings.algorithms, strict_check_header=False
        )
        self._claims = JWTClaimsRegistry(
            now=lambda: int(self._now()),
            leeway=settings.clock_skew_seconds,
            iss={"essential": True, "value": settings.issuer},
            aud={"essential": True, "value": settings.audience},
            exp={"essential": True},
            sub={"essential": True},
        )
        self._verified: OrderedDict[str, _Verified] = OrderedDict()
        self._verified_generation = 0

    @classmethod
    def create(
        cls,
        settings: AuthSettings,
        client: aiohttp.ClientSession,
        *,
        now: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> Authenticator:
        """An authenticator with its own ``JwksCache`` fetching through the shared ``client``."""
        keys = JwksCache(
            client,
            settings.issuer,
            jwks_uri=settings.jwks_uri,
            cache_seconds=settings.jwks_cache_seconds,
            min_refresh_interval_seconds=settings.jwks_min_refresh_interval_seconds,
            clock=clock,
        )
        return cls(settings, keys, now=now)

    async def authenticate(
        self, authorization_header: str | None, query_string: bytes = b""
    ) -> Identity:
        """Verify the bearer token and return who is calling.

        Raises ``MissingCredentialsError`` when no bearer token is presented,
        ``InsufficientScopeError`` when a valid token lacks required scopes, and
        ``AuthenticationError`` for everything else.
        """
        if query_string and any(
            name == "access_token"
            for name, _ in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
        ):
            raise AuthenticationError(
                "invalid_request",
                "access token in the URL query string is not accepted; "
                "send it in the Authorization header",
            )
        token = _bearer_token(authorization_header)
        remembered = self._verified.get(token)
        if (
            remembered is not None
            and self._now() < remembered.expires_at
            and remembered.generation == self.keys.generation
            and self.keys.is_fresh()
        ):
            self._verified.move_to_end(token)
            return remembered.identity
        identity, expires_at = await self._verify(token)
        if self.settings.verified_token_cache_size:
            self._remember(token, _Verified(identity, expires_at, self.keys.generation))
        return identity

    def _remember(self, token: str, entry: _Verified) -> None:
        if entry.generation != self._verified_generation:
            self._verified.clear()  # the key set changed: nothing verified before counts
            self._verified_generation = entry.generation
        self._verified[token] = entry
        while len(self._verified) > self.settings.verified_token_cache_size:
            self._verified.popitem(last=False)

    async def _verify(self, token: str) -> tuple[Identity, float]:
        try:
            signed = jws.extract_compact(token.encode("ascii"), registry=self._registry)
            header = signed.headers()
        except (JoseError, ValueError, UnicodeEncodeError) as error:
            raise AuthenticationError(
                "invalid_token", "malformed token: not a signed JWT"
            ) from error
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.settings.algorithms:
            raise AuthenticationError("invalid_token", f"signing algorithm {alg!r} not accepted")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthenticationError("invalid_token", "the 'kid' header is not a string")
        key = await self.keys.key_for(kid, alg)
        try:
            valid = jws.validate_compact(signed, key, registry=self._registry)
        except (JoseError, ValueError, TypeError) as error:
            raise AuthenticationError(
                "invalid_token", f"token cannot be verified with key {kid!r}: {error}"
            ) from error
        if not valid:
            raise AuthenticationError("invalid_token", "signature does not verify")
        try:
            claims = orjson.loads(signed.payload or b"")
        except orjson.JSONDecodeError as error:
            raise AuthenticationError("invalid_token", "token payload is not JSON") from error
        if not isinstance(claims, dict):
            raise AuthenticationError("invalid_token", "token payload is not a JSON object")
        self._check_claims(claims)
        return self._identity(claims), float(claims["exp"])

    def _check_claims(self, claims: dict[str, Any]) -> None:
        try:
            self._claims.validate(claims)
        except ExpiredTokenError as error:
            raise AuthenticationError(
                "invalid_token", f"token expired at {_when(claims['exp'])}"
            ) from error
        except MissingClaimError as error:
            raise AuthenticationError(
                "invalid_token", f"token lacks required claim(s): {error.claim}"
            ) from error
        except ClaimError as error:
            raise AuthenticationError(
                "invalid_token", _describe(error.claim, claims, self.settings)
            ) from error
        scopes = _scopes(claims)
        missing = [s for s in self.settings.required_scopes if s not in scopes]
        if missing:
            raise InsufficientScopeError(missing)

    def _identity(self, claims: dict[str, Any]) -> Identity:
        agent, chain = actors(claims, self.settings.agent_sources)
        return Identity(
            subject=claims["sub"],
            agent=agent,
            issuer=claims["iss"],
            groups=groups_from(claims, self.settings.group_sources),
            scopes=tuple(_scopes(claims)),
            chain=chain,
            claims=MappingProxyType(claims),
        )


def _bearer_token(authorization_header: str | None) -> str:
    if not authorization_header or not authorization_header.strip():
        raise MissingCredentialsError(
            "no Authorization header; send 'Authorization: Bearer <token>'"
        )
    scheme, _, rest = authorization_header.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise MissingCredentialsError(
            f"authorization scheme {_show(scheme)} not supported; use 'Bearer'"
        )
    token = rest.strip()
    if not token or " " in token:
        raise AuthenticationError(
            "invalid_request", "the Authorization header must be 'Bearer' and one token"
        )
    return token


def _scopes(claims: Mapping[str, Any]) -> list[str]:
    """Scopes from ``scope`` (space-separated string, RFC 8693/9068) or ``scp`` (list)."""
    scope = claims.get("scope")
    if isinstance(scope, str):
        return scope.split()
    scp = claims.get("scp")
    if isinstance(scp, str):
        return scp.split()
    if isinstance(scp, list):
        return [s for s in scp if isinstance(s, str)]
    return []


def _describe(claim: str, claims: Mapping[str, Any], settings: AuthSettings) -> str:
    value = claims.get(claim)
    if claim == "aud":
        return f"audience {_show(value)} not accepted (expected {settings.audience!r})"
    if claim == "iss":
        return f"issuer {_show(value)} not accepted (expected {settings.issuer!r})"
    if claim == "nbf" and isinstance(value, int | float) and not isinstance(value, bool):
        return f"token not valid before {_when(value)}"
    if claim == "iat" and isinstance(value, int | float) and not isinstance(value, bool):
        return f"token issued in the future, at {_when(value)}"
    return f"invalid {claim!r} claim: {_show(value)}"


def _when(timestamp: Any) -> str:
    try:
        return utc_text(datetime.fromtimestamp(float(timestamp), UTC))
    except (ValueError, OverflowError, OSError, TypeError):
        return repr(timestamp)


def _show(value: Any) -> str:
    """A claim value for an error message: repr, cut short (it comes from an untrusted token)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def auth_settings_for(server: ServerSettings) -> AuthSettings:
    """How to verify tokens for the MCP server a policy bundle describes."""
    return AuthSettings(
        issuer=server.issuer,
        audience=server.audience,
        jwks_uri=server.jwks_uri,
        required_scopes=tuple(server.required_scopes),
        jwks_cache_seconds=float(server.jwks_cache_seconds),
        jwks_min_refresh_interval_seconds=float(server.jwks_min_refresh_seconds),
        group_sources=group_sources(server.group_claims),
        agent_sources=agent_sources(server.agent_claims),
    )


class AuthenticatorCache:
    """The authenticator for the issuer of the bundle in force, and the HTTP client it uses.

    One issuer at a time: a bundle naming another issuer replaces the authenticator (and its
    verified-token cache and key set). Looking up the same ``ServerSettings`` object again is
    one identity comparison, so the hot path pays nothing for it.
    """

    def __init__(self) -> None:
        self._http: aiohttp.ClientSession | None = None
        self._by_settings: dict[AuthSettings, Authenticator] = {}
        self._server: ServerSettings | None = None
        self._current: Authenticator | None = None

    def for_server(self, server: ServerSettings) -> Authenticator:
        """The authenticator for ``server``; kept while the bundle's settings stay."""
        if server is self._server and self._current is not None:
            return self._current
        settings = auth_settings_for(server)
        authenticator = self._by_settings.get(settings)
        if authenticator is None:
            if self._http is None:
                self._http = aiohttp.ClientSession()
            authenticator = Authenticator.create(settings, self._http)
            self._by_settings = {settings: authenticator}  # one issuer at a time
        self._server, self._current = server, authenticator
        return authenticator

    async def close(self) -> None:
        """Release the JWKS client."""
        if self._http is not None:
            await self._http.close()
            self._http = None
