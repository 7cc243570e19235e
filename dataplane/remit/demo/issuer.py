"""A small but real OIDC issuer on loopback, so the demo and the tests use genuine signed tokens.

``Issuer`` generates signing keys (Ed25519 by default, plus ES256 and RS256), serves OIDC
discovery, RFC 8414 metadata and the JWKS over HTTP on ``127.0.0.1`` with an ephemeral port, and
mints JWT access tokens with joserfc. The server runs its own event loop in a background thread,
so it works the same from synchronous code (the demo) and from async tests. For people it
serves an OpenID Connect login (authorization code + PKCE, ``remit.demo.login``), which the
consent page uses. It counts requests
per endpoint and can simulate an outage or a key rotation, which is what the gateway's JWKS
cache must cope with.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from aiohttp import web
from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, Key, KeySet, OKPKey, RSAKey

from remit.demo.login import Login

DEFAULT_AUDIENCE = "http://127.0.0.1/mcp"


def generate_key(alg: str, kid: str) -> Key:
    """A fresh private signing key for ``alg`` (``EdDSA``, ``ES256`` or ``RS256``)."""
    parameters: Any = {"kid": kid, "alg": alg, "use": "sig"}
    if alg == "EdDSA":
        return OKPKey.generate_key("Ed25519", parameters=parameters)
    if alg == "ES256":
        return ECKey.generate_key("P-256", parameters=parameters)
    if alg == "RS256":
        return RSAKey.generate_key(2048, parameters=parameters)
    raise ValueError(f"unsupported algorithm {alg!r}; use EdDSA, ES256 or RS256")


class Issuer:
    """An OIDC issuer on ``http://127.0.0.1:<port><path>`` for demos and tests.

    ``clock`` (seconds since the epoch) stamps ``iat``/``exp`` so tests can share a fake clock
    with the gateway. ``jwks_available = False`` makes the JWKS endpoint answer 503;
    ``serve_oidc_discovery = False`` leaves only RFC 8414 metadata. ``requests`` counts hits
    per path (``issuer.requests["/jwks"]``).
    """

    def __init__(
        self,
        path: str = "",
        *,
        algorithms: Sequence[str] = ("EdDSA", "ES256", "RS256"),
        clock: Callable[[], float] = time.time,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.path = "/" + path.strip("/") if path.strip("/") else ""
        self.clock = clock
        self.jwks_available = True
        self.serve_oidc_discovery = True
        self.requests: Counter[str] = Counter()
        self._keys: list[tuple[Key, bool]] = []  # (private key, published)
        self._lock = threading.Lock()
        for alg in algorithms:
            self.add_key(alg)
        self._host, self._wanted_port = host, port
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self.login = Login(self._id_token, clock)

    # -- keys -------------------------------------------------------------------------------

    def add_key(self, alg: str = "EdDSA", *, kid: str | None = None, publish: bool = True) -> str:
        """Add a signing key (a rotation) and return its kid; it becomes the default for ``alg``.

        ``publish=False`` keeps it out of the JWKS: tokens signed with it have an unknown kid.
        """
        with self._lock:
            kid = kid or f"{alg.lower()}-{len(self._keys) + 1}"
            self._keys.append((generate_key(alg, kid), publish))
        return kid

    def jwks(self) -> dict[str, Any]:
        """The public JWKS document, as served on ``/jwks``."""
        with self._lock:
            published = [key for key, shown in self._keys if shown]
        return dict(KeySet(published).as_dict(private=False))

    def key(self, kid: str) -> Key:
        """The private key named ``kid`` (tests use its public half to craft attacks)."""
        for key, _ in self._keys:
            if key.kid == kid:
                return key
        raise KeyError(kid)

    # -- tokens -----------------------------------------------------------------------------

    def mint(
        self,
        subject: str,
        *,
        agent: str | None = "demo-agent",
        agent_claim: str = "act",
        audience: str | Sequence[str] = DEFAULT_AUDIENCE,
        scopes: Iterable[str] = (),
        groups: Iterable[str] | None = None,
        expires_in: float = 300,
        act_chain: Sequence[str] = (),
        extra_claims: Mapping[str, Any] | None = None,
        kid: str | None = None,
        alg: str = "EdDSA",
    ) -> str:
        """A signed access token for ``subject`` acting through ``agent``.

        ``agent_claim`` says where the agent goes: ``act`` (``act.sub``), ``azp`` or
        ``client_id``. ``act_chain`` lists earlier actors nested below it, the most recent first
        (``act.act.sub``, ``act.act.act.sub``, …). ``extra_claims`` override anything. ``kid``
        picks a key; otherwise the newest key for ``alg`` signs.
        """
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience if isinstance(audience, str) else list(audience),
            "iat": now,
            "nbf": now,
            "exp": int(now + expires_in),
            "jti": uuid.uuid4().hex,
        }
        scope = " ".join(scopes)
        if scope:
            claims["scope"] = scope
        if groups is not None:
            claims["groups"] = list(groups)
        if agent is not None and agent_claim == "act":
            act: dict[str, Any] = {"sub": agent}
            inner = act
            for actor in act_chain:
                inner["act"] = {"sub": actor}
                inner = inner["act"]
            claims["act"] = act
        elif agent is not None:
            claims[agent_claim] = agent
        claims.update(extra_claims or {})
        key = self._signing_key(kid, alg)
        with warnings.catch_warnings():  # joserfc flags "EdDSA" as superseded by RFC 9864
            warnings.simplefilter("ignore", SecurityWarning)
            return jwt.encode({"alg": alg, "kid": key.kid}, claims, key, algorithms=[alg])

    def _id_token(self, claims: dict[str, Any]) -> str:
        """An ID token for the login flow (``remit.demo.login``), signed RS256."""
        alg = "RS256" if any(k.get("alg") == "RS256" for k, _ in self._keys) else "EdDSA"
        key = self._signing_key(None, alg)
        payload = {"iss": self.issuer, **claims}
        with warnings.catch_warnings():  # joserfc flags "EdDSA" as superseded by RFC 9864
            warnings.simplefilter("ignore", SecurityWarning)
            return jwt.encode({"alg": alg, "kid": key.kid}, payload, key, algorithms=[alg])

    def _signing_key(self, kid: str | None, alg: str) -> Key:
        with self._lock:
            for key, _ in reversed(self._keys):
                if (kid is None and key.get("alg") == alg) or (kid is not None and key.kid == kid):
                    return key
        raise KeyError(f"no signing key for kid={kid!r} alg={alg!r}")

    # -- HTTP -------------------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        """The issuer URL (``iss``); available once started."""
        if self._port is None:
            raise RuntimeError("the issuer is not running; call start() first")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}{self.path}"

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/jwks"

    @property
    def jwks_fetches(self) -> int:
        """How many times the JWKS endpoint was requested (including refused requests)."""
        return self.requests[self.path + "/jwks"]

    def start(self) -> Issuer:
        """Serve on an ephemeral loopback port; returns once the socket is listening."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._serve, args=(ready, failure), name="remit-demo-issuer", daemon=True
        )
        self._thread.start()
        ready.wait()
        if failure:
            self._thread = None
            raise RuntimeError("the demo issuer could not start") from failure[0]
        return self

    def stop(self) -> None:
        """Stop serving and join the server thread (the port then refuses connections)."""
        if self._thread is None or self._loop is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._thread = self._loop = self._runner = None

    def __enter__(self) -> Issuer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _serve(self, ready: threading.Event, failure: list[BaseException]) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._listen())
        except BaseException as error:  # noqa: BLE001 - handed to start() in the caller's thread
            failure.append(error)
            ready.set()
            return
        ready.set()
        self._loop.run_forever()

    async def _listen(self) -> None:
        app = web.Application()
        app.router.add_get(self.path + "/.well-known/openid-configuration", self._oidc)
        app.router.add_get("/.well-known/oauth-authorization-server" + self.path, self._oauth)
        app.router.add_get(self.path + "/jwks", self._jwks)
        self.login.add_routes(app, self.path)
        self.add_routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._wanted_port)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    def add_routes(self, app: web.Application) -> None:
        """More endpoints (``remit dev`` adds its login page and token endpoint)."""

    def _metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": self.jwks_uri,
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["EdDSA", "ES256", "RS256"],
            "grant_types_supported": [
                "urn:ietf:params:oauth:grant-type:token-exchange",
                "authorization_code",
            ],
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/oauth/token",
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid"],
            "token_endpoint_auth_methods_supported": ["none"],
        }

    async def _oidc(self, request: web.Request) -> web.Response:
        self.requests[request.path] += 1
        if not self.serve_oidc_discovery:
            raise web.HTTPNotFound()
        return web.json_response(self._metadata())

    async def _oauth(self, request: web.Request) -> web.Response:
        self.requests[request.path] += 1
        return web.json_response(self._metadata())

    async def _jwks(self, request: web.Request) -> web.Response:
        self.requests[request.path] += 1
        if not self.jwks_available:
            raise web.HTTPServiceUnavailable()
        return web.json_response(self.jwks())
