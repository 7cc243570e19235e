"""The consent page a standalone ``remit gateway -f DIR`` serves beside the gateway, loaded on
its first request.

The standalone gateway and its consent page share one process: the key that seals consent
requests is made for the run, the page logs humans in at the MCPServer's issuer, writes grants
into the policy directory (which the gateway reloads) and records answers on the gateway's own
audit chain, so ``remit audit explain`` finds them next to the decisions. An approval is
recorded, and synced, before its grant file appears; a record that fails makes no grant.

Why lazily: the page's stack (FastAPI, Starlette, Jinja, Authlib, pydantic, PyYAML and the
resource models) is ~25 MiB of a process that otherwise holds ~80 MiB with 10,000 grants, and
most gateways never serve a consent page. The port is bound and its settings checked at start
(a bad ``REMIT_CONSENT_*`` variable still stops the start, exit code 2); the first request
imports the stack in a worker thread (the gateway keeps serving meanwhile), builds the page and
hands it that request and every later one. Nothing here imports the stack at module level.
That the stack's modules can be found is checked at start (``importlib.util.find_spec``, which
imports nothing): a gateway installed without the ``consent`` extra stops with one line, exit
code 2, rather than answering 503 on the page's first request. A page that still cannot be
built answers 503 on every request (each tries again), and logs why once a minute at most.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from remit.audit.records import ConsentRecord
from remit.consent.settings import ConsentSettings
from remit.errors import AuditError, StartupError
from remit.gateway.app import Gateway
from remit.gateway.asgi import reply
from remit.gateway.connections import ConnectionLimits
from remit.gateway.ports import listen_on
from remit.gateway.runner import App, ListenerSettings
from remit.gateway.settings import GatewaySettings
from remit.gateway.values import Address
from remit.policy.consentrequest import load_consent_key, new_key
from remit.settings import load

if TYPE_CHECKING:
    from remit.api.consentgrant import ConsentGrant

log = logging.getLogger(__name__)

# What the page imports when it loads, as alternatives (python-multipart's module was renamed).
PAGE_MODULES: tuple[tuple[str, ...], ...] = (
    ("fastapi",), ("starlette",), ("jinja2",), ("authlib",), ("itsdangerous",), ("httpx",),
    ("python_multipart", "multipart"), ("yaml",), ("remit.consent.serve",),
    ("remit.consent.store",),
)  # fmt: skip
FAILURE_LOG_SECONDS = 60.0  # a page that cannot be built logs why at most this often


def check_page_modules() -> None:
    """Raise :class:`StartupError` when a module the page needs cannot be found (no import)."""
    missing = [names[0] for names in PAGE_MODULES if not any(map(_findable, names))]
    if missing:
        raise StartupError(
            f"the consent page needs {', '.join(missing)}, which cannot be found: install "
            "remit[consent], or pass --consent-listen off"
        )


def _findable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a parent package missing, or a broken module entry
        return False


class PageListen(NamedTuple):
    """Where the standalone consent page listens, and (``auto``) the socket already listening
    there, which only the page's listener takes (``ListenerSettings.sock``)."""

    address: str  # host:port
    sock: socket.socket | None = None

    def close(self) -> None:
        """Release the socket (a start that fails before the page's listener takes it)."""
        if self.sock is not None:
            self.sock.close()


def standalone_listen(settings: GatewaySettings, listen: str) -> PageListen | None:
    """Where the standalone consent page listens (``auto``: a loopback port listened on from
    now, its socket kept for the page), or None when there is none (``off``, or the policy is a
    file: grants need a directory)."""
    if listen not in ("auto", "off"):
        Address.parse(listen, "--consent-listen")  # a bad value: SettingsError, exit code 2
    dirs = settings.bundle.policy_dirs
    if listen == "off" or not dirs or not dirs[0].is_dir():
        return None
    if listen != "auto":
        return PageListen(listen)
    sock = listen_on("127.0.0.1", 0, "--consent-listen")
    return PageListen(f"127.0.0.1:{sock.getsockname()[1]}", sock)


def standalone_settings(settings: GatewaySettings, listen: str) -> GatewaySettings:
    """Gateway settings linking denied calls to the consent page on ``listen``."""
    links = settings.consent
    key = links.key
    if key is None:
        key = load_consent_key(links.key_file) if links.key_file is not None else new_key()
    links = dataclasses.replace(links, url=links.url or f"http://{listen}", key=key)
    return dataclasses.replace(settings, consent=links)


def standalone_page(
    gateway: Gateway, page: PageListen, client_id: str
) -> tuple[App, ListenerSettings]:
    """The consent page for a standalone gateway (built on first use), and where it listens."""
    listen = page.address
    settings = gateway.settings
    policy = gateway.state.current
    if policy is None or not settings.bundle.policy_dirs or settings.consent.key is None:
        raise StartupError("the standalone consent page needs a compiled policy directory")
    check_page_modules()
    public = settings.consent.url
    from_env = load(ConsentSettings, os.environ)  # REMIT_CONSENT_ADMINS applies here too
    consent_settings = ConsentSettings(
        admins=from_env.admins,
        public_url=public,
        listen=listen,
        issuer=policy.bundle.server.issuer,
        client_id=client_id,
        store="directory",
        directory=settings.bundle.policy_dirs[0],
        insecure_cookies=public.startswith("http://") and not _loopback(public),
        key=settings.consent.key,
    )
    where = Address.parse(listen, "--consent-listen")
    return LazyPage(lambda: _build(gateway, consent_settings)), ListenerSettings(
        where.host, where.port, limits=ConnectionLimits(), jsonrpc_errors=False,
        name="--consent-listen", lifespan=False, sock=page.sock,
    )  # fmt: skip


def _import_stack() -> None:
    """Import the page's stack (run in a worker thread: the slow part of the first request)."""
    import remit.consent.serve  # noqa: PLC0415
    import remit.consent.store  # noqa: F401, PLC0415


async def record_durably(gateway: Gateway, entry: ConsentRecord) -> None:
    """Append ``entry`` to ``gateway``'s chain and return once it is on disk (in the default
    durability mode, once its sync point is: ``audit/syncer.py``), so the page answers, and
    an approval's grant is written (``consent/approval.py``: record first), only for a
    consent record a node crash cannot take away."""
    if gateway.chain is None:
        raise AuditError("the gateway's audit chain is not open")
    await gateway.chain.append(entry)
    point = gateway.chain.sync_point()
    if point is not None:
        await point.wait()  # AuditError: the page answers the failure, not the approval


def _build(gateway: Gateway, settings: ConsentSettings) -> App:
    """The consent page's ASGI app, recording on ``gateway``'s chain (stack already imported)."""
    from remit.consent.serve import build_app  # noqa: PLC0415
    from remit.consent.store import DirectoryStore  # noqa: PLC0415

    async def record(entry: ConsentRecord) -> None:
        await record_durably(gateway, entry)

    def last_use(grant: ConsentGrant) -> str | None:
        # Standalone, the gateway is in this process: ask it (records name grants ns/name).
        guard = gateway.guard
        return guard.recorder.grant_use.get(grant.ref) if guard is not None else None

    assert settings.directory is not None  # standalone_page sets it
    app: App = build_app(
        settings, record, store=DirectoryStore(settings.directory), last_use=last_use
    )
    return app


class LazyPage:
    """An ASGI app that builds the real one on its first request (one build, however many
    requests arrive at once); a build that fails answers 503 and is tried again next time,
    and its failure is logged at most once per ``FAILURE_LOG_SECONDS``."""

    def __init__(
        self, build: Callable[[], App], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._build = build
        self._app: App | None = None
        self._building = asyncio.Lock()
        self._clock = clock
        self._logged_at: float | None = None  # when a failure was last logged
        self._unlogged = 0  # failures since then, not logged

    @property
    def loaded(self) -> bool:
        return self._app is not None

    async def _load(self) -> App:
        async with self._building:
            if self._app is None:
                await asyncio.to_thread(_import_stack)
                self._app = self._build()
                log.info("consent page loaded")
        return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        app = self._app
        if app is None:
            try:
                app = await self._load()
            except Exception as exc:  # noqa: BLE001 - any failure to build is a refusal, logged
                self._failed(exc)
                await _unavailable(send)
                return
        await app(scope, receive, send)

    def _failed(self, exc: Exception) -> None:
        now = self._clock()
        if self._logged_at is not None and now - self._logged_at < FAILURE_LOG_SECONDS:
            self._unlogged += 1
            return
        more = f" ({self._unlogged} more failures since the last report)" if self._unlogged else ""
        log.error("the consent page cannot be loaded: %s%s", exc, more)
        self._logged_at, self._unlogged = now, 0


async def _unavailable(send: Any) -> None:
    body = b"the consent page is unavailable: see the gateway's log\n"
    await reply(send, 503, body, content_type=b"text/plain; charset=utf-8")


def _loopback(url: str) -> bool:
    """Browsers keep ``Secure`` cookies of http://127.0.0.1 and http://localhost."""
    host = urlsplit(url).hostname or ""
    return host == "localhost" or host.startswith("127.")


__all__ = [
    "FAILURE_LOG_SECONDS",
    "PAGE_MODULES",
    "LazyPage",
    "PageListen",
    "check_page_modules",
    "standalone_listen",
    "standalone_page",
    "standalone_settings",
]
