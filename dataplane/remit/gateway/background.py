"""Serving an ASGI app on a thread of its own, next to the caller's event loop.

Tests and embedding need a real socket served while their own code (and loop) runs. The port
accepts connections from the moment it is listened on (``ports.listen_on``: they wait in the
backlog), so a connect proves nothing about the server: ``start`` returns when the server
itself says it serves (uvicorn after its start-up and the app's lifespan, granian once the
lifespan completed), and a server that stops before that is a ``StartupError`` with its cause
rather than clients left waiting on a backlog no one accepts from.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from remit.errors import StartupError
from remit.gateway.runner import App, ListenerSettings, bind, serve_app


class BackgroundServer:
    """``app`` served on a daemon thread with its own event loop; ``start`` returns once the
    server serves (start-up and lifespan done), or raises why it did not."""

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
        """Start serving and block until the server reports it serves.

        A server that ends before that (a lifespan start-up that fails, an error in its
        thread) is a ``StartupError`` with the cause; none of both in ``timeout`` seconds: the
        server is stopped and ``TimeoutError`` raised.
        """
        serving = threading.Event()
        settled = threading.Event()  # serving, or the thread is over
        failure: list[BaseException] = []
        sock = bind(self.settings)
        loop = asyncio.new_event_loop()
        self._loop, self._stop = loop, asyncio.Event()

        def started() -> None:
            serving.set()
            settled.set()

        def run() -> None:
            assert self._stop is not None
            try:
                loop.run_until_complete(
                    serve_app(self.app, self.settings, self._stop, sock, started)
                )
            except BaseException as exc:  # noqa: BLE001 - uvicorn exits on failure: reported
                failure.append(exc)
            finally:
                sock.close()  # a no-op once the server closed (or granian took) it
                loop.close()
                settled.set()

        self._thread = threading.Thread(target=run, name="remit-server", daemon=True)
        self._thread.start()
        if not settled.wait(timeout):
            self.stop()
            raise TimeoutError(f"{self.url} did not start serving in {timeout:g} s")
        if not serving.is_set():
            cause = failure[0] if failure else None
            why = f": {cause!r}" if cause is not None else " (see its log)"
            raise StartupError(f"the server for {self.url} stopped before serving{why}") from cause

    def stop(self) -> None:
        """Stop serving and join the thread."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nothing to stop
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(10)


__all__ = ["BackgroundServer"]
