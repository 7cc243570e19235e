"""Uvicorn's server without its 100 ms tick: an idle gateway sleeps until something happens.

``uvicorn.Server.main_loop`` wakes ten times a second to refresh the ``Date`` header, check a
request cap and notice ``should_exit``. For a sidecar with no traffic that tick was all the
CPU it spent (~1.3-1.6 ms a second, ~10 wake-ups a second, ``benchmarks/bench_idle.py``): at
2,000 pods, some 3 CPU-seconds a second cluster-wide doing nothing. ``QuietServer`` keeps what
the tick did, without the tick:

- the ``Date`` header is computed when a response reads the default headers, once per second
  of the wall clock (``DatedState``): it is exact to the second, where the tick's was up to a
  second stale;
- setting ``should_exit`` (uvicorn's own signal handler, or ``runner.serve_app`` when its
  ``stop`` event is set) wakes the main loop at once: shutdown starts as promptly as before,
  without a 100 ms poll;
- a server given a ``stop`` event (``runner.serve_app``) leaves signals to its caller
  (``serve.run`` drains on SIGTERM, ``drain.py``): uvicorn's own handlers, chained through
  each server in the process, would stop every listener at once;
- a request cap or a notify callback (``limit_max_requests``, ``callback_notify``; the gateway
  sets neither) still need the tick: the server then falls back to uvicorn's own loop.

Connection timeouts and limits do not depend on the tick: uvicorn and ``connections.py`` run
them on the event loop's timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from email.utils import formatdate

import uvicorn
from uvicorn.server import ServerState


class DatedState(ServerState):
    """Uvicorn's shared server state whose ``default_headers`` carry the current ``Date``.

    Uvicorn's protocols read ``default_headers`` once per response; the list is rebuilt when
    the wall clock's second has changed since the last read (one ``time.time()`` per response
    otherwise). Writes (uvicorn's tick, if it ever runs) are ignored: the value is derived.
    """

    def __init__(self, config: uvicorn.Config, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._clock = clock
        self._second = -1
        self._headers: list[tuple[bytes, bytes]] = []
        super().__init__()

    @property
    def default_headers(self) -> list[tuple[bytes, bytes]]:
        """``Date`` of this second (if the config sends one) plus the configured headers."""
        second = int(self._clock())
        if second != self._second:
            config = self._config
            date = [(b"date", formatdate(second, usegmt=True).encode())]
            self._headers = (date if config.date_header else []) + config.encoded_headers
            self._second = second
        return self._headers

    @default_headers.setter
    def default_headers(self, value: list[tuple[bytes, bytes]]) -> None:
        """Ignored: the headers are computed on read."""


class QuietServer(uvicorn.Server):
    """``uvicorn.Server`` whose main loop waits for ``should_exit`` instead of polling it."""

    def __init__(
        self,
        config: uvicorn.Config,
        on_started: Callable[[], None] | None = None,
        *,
        signals: bool = True,
    ) -> None:
        self._on_started = on_started  # called once start-up is done and serving begins
        self._signals = signals  # False: the caller handles SIGINT/SIGTERM
        self._exit = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        super().__init__(config)
        self.server_state = DatedState(config)

    @property
    def should_exit(self) -> bool:
        """Whether the server should stop; setting it wakes the main loop."""
        return self._exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._exit = value
        loop = self._loop
        if value and loop is not None and self._wake is not None and not loop.is_closed():
            # Thread-safe and signal-safe: uvicorn's handler sets this from a signal handler.
            # (A loop already closed has nothing left to wake: setting it then is a no-op.)
            loop.call_soon_threadsafe(self._wake.set)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Uvicorn's signal handlers, unless the caller handles signals itself."""
        if not self._signals:
            yield
            return
        with super().capture_signals():
            yield

    def exit(self) -> None:
        """Stop serving (as uvicorn's signal handler does)."""
        self.should_exit = True

    async def main_loop(self) -> None:
        """Wait until told to exit (uvicorn's polling loop when a tick has work to do).

        Uvicorn runs this only after a successful start-up (lifespan and listeners), so it is
        where ``on_started`` is called."""
        if self._on_started is not None:
            self._on_started()
        if self.config.callback_notify is not None or self.limit_max_requests is not None:
            await super().main_loop()
            return
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        if not self._exit:  # set before the event existed: nothing would wake it
            await self._wake.wait()


__all__ = ["DatedState", "QuietServer"]
