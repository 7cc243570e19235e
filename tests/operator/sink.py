"""A stand-in sidecar admin API in its own process: reads every pushed bundle, answers 200.

Run as ``python -m tests.operator.sink``; it prints its port and serves until killed. Being a
separate process, what it allocates never counts in the operator's memory measurements.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web


async def _put(request: web.Request) -> web.Response:
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
    return web.json_response({"digest": f"sha256:{size}", "serial": 1, "changed": True})


async def _serve() -> None:
    app = web.Application(client_max_size=256 * 1024 * 1024)
    app.router.add_put("/v1/bundle", _put)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    print(sock.getsockname()[1], flush=True)
    await asyncio.Event().wait()


@contextmanager
def sink() -> Iterator[int]:
    """Start the sink process; yield its port; stop it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.operator.sink"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    asyncio.run(_serve())
