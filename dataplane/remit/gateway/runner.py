"""Running an ASGI app (the proxy) on a real socket, under the measured-fastest server.

``serve`` blocks in the current process (the sidecar's main); ``BackgroundServer`` runs the
app on its own thread and event loop (tests and embedding need real sockets next to the
caller's own loop). Uvicorn with httptools (and uvloop for ``serve``) is the default: in
benchmarks/bench_proxy.py it used less CPU per proxied call (~0.38-0.42 ms vs ~0.42-0.54 ms)
and less memory than granian's embedded server (which granian calls experimental);
granian stays selectable.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

App = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[MutableMapping[str, Any]]],
        Callable[[dict[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]


@dataclass(frozen=True, slots=True)
class ListenerSettings:
    """Where to listen and which ASGI server to use."""

    host: str = "127.0.0.1"
    port: int = 9000
    server: Literal["granian", "uvicorn"] = "uvicorn"


def serve(app: App, settings: ListenerSettings) -> None:
    """Serve ``app`` until interrupted (blocking; installs signal handlers), on uvloop."""
    import uvloop  # noqa: PLC0415 - only the standalone server needs it

    uvloop.run(serve_app(app, settings, None))


async def serve_many(apps: list[tuple[App, ListenerSettings]], stop: asyncio.Event) -> None:
    """Serve several apps (the gateway's MCP and admin ports) in this loop until ``stop``."""
    await asyncio.gather(*(serve_app(app, settings, stop) for app, settings in apps))


async def serve_app(app: App, settings: ListenerSettings, stop: asyncio.Event | None) -> None:
    """Serve ``app`` in the running loop until ``stop`` is set (or forever if None)."""
    if settings.server == "granian":
        from granian.constants import Interfaces  # noqa: PLC0415 - optional server
        from granian.log import LogLevels  # noqa: PLC0415
        from granian.server.embed import Server  # noqa: PLC0415

        granian = Server(
            app,
            address=settings.host,
            port=settings.port,
            interface=Interfaces.ASGI,
            log_level=LogLevels.warning,
            websockets=False,
            backlog=1024,
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
        lifespan="on",
        loop="none",
        http="httptools",
        interface="asgi3",  # never guess: a bound method looks like an ASGI2 app to uvicorn
        access_log=False,
        log_config=None,  # uvicorn's loggers go to the root handler, which never blocks
    )
    server = uvicorn.Server(config)
    if stop is None:
        await server.serve()
        return
    task = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await task


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

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._stop = asyncio.Event()
            ready.set()
            loop.run_until_complete(serve_app(self.app, self.settings, self._stop))
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


def wait_for_port(host: str, port: int, timeout: float) -> None:
    """Block until ``host:port`` accepts a TCP connection; TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port}") from exc
            time.sleep(0.02)


def free_port(host: str = "127.0.0.1") -> int:
    """An ephemeral port that is free right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
