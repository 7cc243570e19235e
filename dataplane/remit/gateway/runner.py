"""Running an ASGI app (the proxy) on a real socket, under the measured-fastest server.

``serve`` blocks in the current process (the sidecar's main); ``background.BackgroundServer``
runs the app on its own thread and event loop (tests and embedding need real sockets next to
the caller's own loop). Uvicorn with httptools (and uvloop for ``serve``) is the default: in
benchmarks/bench_proxy.py it used less CPU per proxied call (~0.38-0.42 ms vs ~0.42-0.54 ms)
and less memory than granian's embedded server (which granian calls experimental);
granian stays selectable. benchmarks/bench_server_interface.py compares the servers' own CPU
per request (uvicorn with ``LimitedProtocol``, granian ASGI and RSGI, socketify): none pays
enough to leave ASGI (docs/architecture.md).

Each listener has its own ``ConnectionLimits`` (remit.gateway.connections): under uvicorn all
of them apply; granian offers only a header timeout and a request cap, which are mapped. The
address is listened on before serving (``ports.listen_on``: bound alone, a port could still be
lost, silently under uvloop) so a taken port is one clear ``StartupError``; both servers serve
that socket (granian through ``granianserver.HandedServer``), so the port is never unlistened
between the start's check and serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from remit.errors import StartupError
from remit.gateway.connections import ConnectionLimits, Record, Refusal, protocol_class
from remit.gateway.ports import BACKLOG, listen_on

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


def _unannounced() -> None:
    """The default start callback: none."""


@dataclass(frozen=True, slots=True)
class ListenerSettings:
    """Where to listen, which ASGI server to use, and the listener's connection limits.

    ``name`` is the setting that chose the address (named when it cannot be bound);
    ``jsonrpc_errors`` shapes refusals as JSON-RPC errors (the MCP port) or ``{"error"}``.
    ``sock`` is a socket already listening on the address (``--consent-listen auto`` picks its
    port by listening on port 0): ``bind`` hands it over, once, instead of binding.
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
    # Seconds a stop waits for requests in progress before uvicorn cancels them (None: no
    # bound). The gateway cuts its calls off itself first (drain.py): this is the backstop.
    stop_timeout: float | None = None
    sock: socket.socket | None = field(default=None, compare=False, repr=False)


def serve(app: App, settings: ListenerSettings) -> None:
    """Serve ``app`` until interrupted (blocking; installs signal handlers), on uvloop."""
    import uvloop  # noqa: PLC0415 - only the standalone server needs it

    sock = bind(settings)
    uvloop.run(serve_app(app, settings, None, sock))


def bind(settings: ListenerSettings) -> socket.socket:
    """A socket listening on the listener's address: its own ``sock`` if it has one, else
    ``ports.listen_on``'s; ``StartupError`` naming its setting if that fails."""
    if settings.sock is not None:
        return settings.sock
    return listen_on(settings.host, settings.port, settings.name)


def bind_all(settings: list[ListenerSettings]) -> list[socket.socket]:
    """Listen on every listener's address, or none: ``StartupError`` names the one that failed
    (two listeners given the same port: the second) and every socket is closed, the ones the
    listeners brought (``sock``) too."""
    sockets: list[socket.socket] = []
    try:
        for one in settings:
            sockets.append(bind(one))
    except StartupError:
        release(settings, sockets)
        raise
    return sockets


def release(settings: Sequence[ListenerSettings], sockets: Sequence[socket.socket] = ()) -> None:
    """Close ``sockets`` and every socket a listener of ``settings`` brought (a failed start)."""
    for sock in [*sockets, *(one.sock for one in settings if one.sock is not None)]:
        sock.close()


async def serve_app(
    app: App,
    settings: ListenerSettings,
    stop: asyncio.Event | None,
    sock: socket.socket | None = None,
    started: Callable[[], None] = _unannounced,
) -> None:
    """Serve ``app`` on ``sock`` (default: ``bind(settings)``) in the running loop until
    ``stop`` is set (or forever if None); ``started`` is called once the server serves (its
    start-up, and the app's lifespan start-up, done)."""
    if sock is None:
        sock = bind(settings)
    if settings.server == "granian":
        from remit.gateway.granianserver import serve_granian  # noqa: PLC0415 - optional

        await serve_granian(app, settings, stop, sock, started)
        return
    import uvicorn  # noqa: PLC0415 - optional server

    limits = settings.limits
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
        timeout_graceful_shutdown=settings.stop_timeout,  # type: ignore[arg-type] # float is fine
    )
    from remit.gateway.quietserver import QuietServer  # noqa: PLC0415 - with uvicorn

    # No 100 ms tick: an idle gateway sleeps (quietserver.py).
    server = QuietServer(config, on_started=started, signals=stop is None)
    if stop is None:
        await server.serve([sock])
        return
    await until_stopped(stop, server.serve([sock]), server.exit, settings)


async def until_stopped(
    stop: asyncio.Event,
    serving: Coroutine[Any, Any, None],
    halt: Callable[[], object],
    settings: ListenerSettings,
) -> None:
    """Serve until ``stop`` is set, then ``halt`` the server and wait for it; a server that
    ends first (its start-up failed) ends this too, with its exception (uvicorn's
    ``SystemExit``, which raised from a task would stop the loop, as a ``StartupError``)."""

    async def loudly() -> None:
        try:
            await serving
        except SystemExit as exc:
            raise StartupError(f"{settings.name}: the server exited ({exc.code})") from exc

    server = asyncio.create_task(loudly())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([server, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not server.done():
        halt()
    await server


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
