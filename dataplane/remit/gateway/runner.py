"""Running an ASGI app (the proxy) on a real socket, under the measured-fastest server.

``serve`` blocks in the current process (the sidecar's main); ``BackgroundServer`` runs the
app on its own thread and event loop (tests and embedding need real sockets next to the
caller's own loop). Uvicorn with httptools (and uvloop for ``serve``) is the default: in
benchmarks/bench_proxy.py it used less CPU per proxied call (~0.38-0.42 ms vs ~0.42-0.54 ms)
and less memory than granian's embedded server (which granian calls experimental);
granian stays selectable. benchmarks/bench_server_interface.py compares the servers' own CPU
per request (uvicorn with ``LimitedProtocol``, granian ASGI and RSGI, socketify): none pays
enough to leave ASGI (docs/architecture.md).

Each listener has its own ``ConnectionLimits`` (remit.gateway.connections): under uvicorn all
of them apply; granian offers only a header timeout and a request cap, which are mapped. The
address is listened on before serving (``ports.listen_on``: bound alone, a port could still be
lost, silently under uvloop) so a taken port is one clear ``StartupError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal

from remit.errors import StartupError
from remit.gateway.connections import ConnectionLimits, Record, Refusal, protocol_class
from remit.gateway.ports import BACKLOG, listen_on, wait_for_port

log = logging.getLogger(__name__)

App = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[MutableMapping[str, Any]]],
        Callable[[dict[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]


def _uncounted(reason: str) -> None:
    """The default refusal counter: none."""


@dataclass(frozen=True, slots=True)
class ListenerSettings:
    """Where to listen, which ASGI server to use, and the listener's connection limits.

    ``name`` is the setting that chose the address (named when it cannot be bound);
    ``jsonrpc_errors`` shapes refusals as JSON-RPC errors (the MCP port) or ``{"error"}``.
    """

    host: str = "127.0.0.1"
    port: int = 9000
    server: Literal["granian", "uvicorn"] = "uvicorn"
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    jsonrpc_errors: bool = True
    on_refusal: Refusal = _uncounted
    record: Record | None = None  # refusals answered by the HTTP protocol, for the log
    name: str = "listen"
    lifespan: bool = True  # False when the caller starts and stops the app itself


def serve(app: App, settings: ListenerSettings) -> None:
    """Serve ``app`` until interrupted (blocking; installs signal handlers), on uvloop."""
    import uvloop  # noqa: PLC0415 - only the standalone server needs it

    sock = bind(settings)
    uvloop.run(serve_app(app, settings, None, sock))


def _without_lifespan(app: App) -> App:
    """``app`` with ASGI lifespan events answered here (the caller starts and stops it)."""

    async def wrapped(
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while True:
            message = await receive()
            kind = str(message["type"]).removeprefix("lifespan.")
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return

    return wrapped


def bind(settings: ListenerSettings) -> socket.socket:
    """A socket listening on the listener's address (``ports.listen_on``); ``StartupError``
    naming its setting if that fails."""
    return listen_on(settings.host, settings.port, settings.name)


def bind_all(settings: list[ListenerSettings]) -> list[socket.socket]:
    """Listen on every listener's address, or none: ``StartupError`` names the one that failed
    (two listeners given the same port: the second)."""
    sockets: list[socket.socket] = []
    try:
        for one in settings:
            sockets.append(bind(one))
    except StartupError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


async def serve_many(
    apps: list[tuple[App, ListenerSettings]],
    stop: asyncio.Event,
    sockets: list[socket.socket] | None = None,
) -> None:
    """Serve several apps (the gateway's MCP and admin ports) in this loop until ``stop``.

    Every address is bound (here, or by the caller with ``bind_all``) before anything is
    served, so a taken port fails the start and nothing else.
    """
    if sockets is None:
        sockets = bind_all([settings for _, settings in apps])
    await asyncio.gather(
        *(
            serve_app(app, settings, stop, sock)
            for (app, settings), sock in zip(apps, sockets, strict=True)
        )
    )


async def serve_app(
    app: App,
    settings: ListenerSettings,
    stop: asyncio.Event | None,
    sock: socket.socket | None = None,
) -> None:
    """Serve ``app`` in the running loop until ``stop`` is set (or forever if None)."""
    limits = settings.limits
    if settings.server == "granian":
        from granian.constants import Interfaces  # noqa: PLC0415 - optional server
        from granian.http import HTTP1Settings  # noqa: PLC0415
        from granian.log import LogLevels  # noqa: PLC0415
        from granian.server.embed import Server  # noqa: PLC0415

        if sock is not None:
            sock.close()  # granian binds itself; the socket only proved the port is free
        granian = Server(
            app if settings.lifespan else _without_lifespan(app),
            address=settings.host,
            port=settings.port,
            interface=Interfaces.ASGI,
            log_level=LogLevels.warning,
            websockets=False,
            backlog=1024,
            backpressure=limits.max_concurrent_requests,
            http1_settings=HTTP1Settings(
                header_read_timeout=int(limits.header_timeout * 1000),
                max_buffer_size=max(limits.max_header_bytes, 65536),
            ),
        )
        if stop is None:
            await granian.serve()
            return
        task = asyncio.create_task(granian.serve())
        await stop.wait()
        granian.stop()  # type: ignore[no-untyped-call]
        await task
        return
    import uvicorn  # noqa: PLC0415 - optional server

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        backlog=BACKLOG,
        lifespan="on" if settings.lifespan else "off",
        loop="none",
        http=protocol_class(
            limits, settings.on_refusal, jsonrpc=settings.jsonrpc_errors, record=settings.record
        ),
        ws="none",
        timeout_keep_alive=limits.idle_timeout,  # type: ignore[arg-type] # seconds, float is fine
        interface="asgi3",  # never guess: a bound method looks like an ASGI2 app to uvicorn
        access_log=False,
        # No X-Forwarded-* rewriting of the client address: a loopback caller could name any
        # source (refusals are aggregated per source), and it is one ASGI layer less per call.
        proxy_headers=False,
        log_config=None,  # uvicorn's loggers go to the root handler, which never blocks
    )
    from remit.gateway.quietserver import QuietServer  # noqa: PLC0415 - with uvicorn

    server = QuietServer(config)  # no 100 ms tick: an idle gateway sleeps (quietserver.py)
    sockets = [sock] if sock is not None else None
    if stop is None:
        await server.serve(sockets)
        return
    task = asyncio.create_task(server.serve(sockets))
    await stop.wait()
    server.should_exit = True
    await task


RESERVED_DESCRIPTORS = 64  # stdio, event loop, audit file, JWKS and key files, logs


def fit_descriptors(
    mcp: ConnectionLimits, others: int, *, adjustable: bool, setting: str = "max connections"
) -> ConnectionLimits:
    """``mcp`` with ``max_connections`` that fits the process's file-descriptor limit.

    ``others`` is what the rest needs (admin connections, upstream pool). The soft
    RLIMIT_NOFILE is raised towards the hard one first; if it is still too low an
    ``adjustable`` limit is lowered (with a warning), an explicit one fails the start.
    """
    import resource  # noqa: PLC0415 - POSIX only, and only here

    need = mcp.max_connections + others + RESERVED_DESCRIPTORS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        raised = need if hard == resource.RLIM_INFINITY else min(need, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
    if soft == resource.RLIM_INFINITY or soft >= need:
        return mcp
    room = soft - others - RESERVED_DESCRIPTORS
    if not adjustable or room < 16:
        raise StartupError(
            f"{setting}: {mcp.max_connections} connections need {need} file descriptors, "
            f"but the limit (ulimit -n) is {soft}"
        )
    log.warning(
        "file-descriptor limit %d allows %d client connections (not %d); raise ulimit -n",
        soft,
        room,
        mcp.max_connections,
    )
    return dataclasses.replace(mcp, max_connections=room)


class BackgroundServer:
    """``app`` served on a daemon thread with its own event loop; ``start`` waits until ready."""

    def __init__(self, app: App, settings: ListenerSettings) -> None:
        self.app = app
        self.settings = settings
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL (no path)."""
        return f"http://{self.settings.host}:{self.settings.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start serving and block until the port accepts connections."""
        ready = threading.Event()
        sock = bind(self.settings)

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._stop = asyncio.Event()
            ready.set()
            loop.run_until_complete(serve_app(self.app, self.settings, self._stop, sock))
            loop.close()

        self._thread = threading.Thread(target=run, name="remit-server", daemon=True)
        self._thread.start()
        ready.wait(timeout)
        wait_for_port(self.settings.host, self.settings.port, timeout)

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
