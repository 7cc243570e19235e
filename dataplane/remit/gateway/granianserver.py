"""Granian's embedded server on the socket the gateway already listens on (``serve_granian``:
``runner.serve_app`` when ``REMIT_ASGI_SERVER=granian``; imported only then).

Granian's embedded ``Server`` binds its address itself (on Linux a ``SO_REUSEPORT`` socket per
worker) and takes no socket made elsewhere. Closing the gateway's listening socket so granian
could bind the port (what ``runner.py`` did) reset the connections queued during start-up, left
the port unlistened for a moment and free for another socket to take: granian's start then
failed ("Address already in use"), and ``runner.serve_app``, waiting only for its stop event,
raised that only when the gateway stopped: until then the listener was silently missing.
``HandedServer`` gives granian the listening socket's descriptor where granian makes its
shared socket (``Server._init_shared_socket``: a ``SocketHolder`` its worker turns into the
listener, as granian does itself off Linux, granian 2.5-2.8); from then on granian owns the
descriptor and closes it when its worker ends. That method is private: a granian that stops
calling it is caught by ``tests/dataplane/gateway/test_listen_first.py`` (a connection made
before granian starts must be answered).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

from granian._granian import SocketHolder  # granian.net re-exports it, untyped
from granian.constants import Interfaces
from granian.errors import FatalError
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.server.embed import Server

from remit.errors import StartupError
from remit.gateway.asgi import Receive, Scope, Send
from remit.gateway.ports import BACKLOG
from remit.gateway.runner import App, ListenerSettings, until_stopped


class HandedServer(Server):
    """Granian's embedded server serving ``sock`` (listening already) instead of binding."""

    def __init__(self, target: Any, sock: socket.socket, **options: Any) -> None:
        super().__init__(target, **options)
        self._handed: socket.socket | None = sock
        self._given: tuple[int, int] | None = None  # (fd, inode) granian was given

    def _init_shared_socket(self) -> None:
        """Hand the listening socket to granian (called once, as the server starts)."""
        sock, self._handed = self._handed, None
        if sock is None:
            raise RuntimeError("granian asked for its socket twice")
        fd = sock.detach()  # granian's listener closes it
        self._given = fd, os.fstat(fd).st_ino
        # Granian's stub declares no constructor; it takes (fd, uds[, backlog]) by platform.
        if sys.platform.startswith(("linux", "freebsd")):
            holder = SocketHolder(fd, False, self.backlog)  # type: ignore[call-arg]
        else:
            holder = SocketHolder(fd, False)  # type: ignore[call-arg]
        self._shd, self._sfd = holder, fd  # type: ignore[assignment] # None until started

    async def serve(self, *args: Any, **kwargs: Any) -> None:
        """Serve until stopped; the socket is closed if granian never served it."""
        try:
            await super().serve(*args, **kwargs)
        except FatalError:
            # Raised only when the app's lifespan start-up failed, before the worker made its
            # listener of the socket: nothing else will close it (granian's holder forgets it).
            self._close_given()
            raise
        finally:
            self.close_unused()

    def _close_given(self) -> None:
        given, self._given = self._given, None
        if given is None:
            return
        fd, inode = given
        with contextlib.suppress(OSError):  # closed already: nothing to do
            if os.fstat(fd).st_ino == inode:  # still our socket, not a number reused since
                os.close(fd)

    def close_unused(self) -> None:
        """Close the socket if granian never took it (a start that failed before serving)."""
        if self._handed is not None:
            self._handed.close()
            self._handed = None


async def serve_granian(
    app: App,
    settings: ListenerSettings,
    stop: asyncio.Event | None,
    sock: socket.socket,
    started: Callable[[], None],
) -> None:
    """``runner.serve_app`` under granian's embedded server, on ``sock``."""
    limits = settings.limits
    granian = HandedServer(
        _announcing(app if settings.lifespan else _without_lifespan(app), started),
        sock,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        log_level=LogLevels.warning,
        websockets=False,
        backlog=BACKLOG,
        backpressure=limits.max_concurrent_requests,
        http1_settings=HTTP1Settings(
            header_read_timeout=int(limits.header_timeout * 1000),
            max_buffer_size=max(limits.max_header_bytes, 65536),
        ),
    )
    try:
        if stop is None:
            await granian.serve()
            return
        await until_stopped(stop, granian.serve(), granian.stop, settings)
    except FatalError as exc:  # its worker's start-up (the app's lifespan) failed
        raise StartupError(f"{settings.name}: the server could not start: {exc}") from exc


def _announcing(app: App, started: Callable[[], None]) -> App:
    """``app`` calling ``started`` once its lifespan start-up is complete (granian runs the
    lifespan, then serves at once)."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return

        async def sending(message: dict[str, Any]) -> None:
            await send(message)
            if message["type"] == "lifespan.startup.complete":
                started()

        await app(scope, receive, sending)

    return wrapped


def _without_lifespan(app: App) -> App:
    """``app`` with ASGI lifespan events answered here (the caller starts and stops it)."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
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


__all__ = ["HandedServer", "serve_granian"]
