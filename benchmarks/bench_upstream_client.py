"""CPU per POST of HTTP clients for the gateway's upstream hop, side by side, in one run.

The gateway sends each allowed call to the MCP server on loopback over kept-alive connections
(``remit/gateway/upstream.py``). This script measures what that hop costs the client process
alone: a ~1 KB JSON body POSTed, a ~1 KB JSON answer read, on uvloop, over one kept-alive
loopback connection (concurrency 1) and eight (concurrency 8). The server is a minimal raw
asyncio protocol in its own process (so it does not count); each client runs in a fresh
process of its own, and the rounds alternate the clients so load affects all alike.
CPU is the client process's CPU time (all its threads: Rust-backed clients run a runtime
thread) divided by the requests it completed.

Clients (those not installed are reported as such; the candidates are not the gateway's
dependencies: ``.venv/bin/pip install pyreqwest pyqwest aiosonic`` to measure them):
  aiohttp-gateway   ``Upstream.send`` and what the relay asks of a JSON answer (``kind``,
                    bounded ``read``, ``client_headers``, ``close``), exactly as the gateway
                    runs them; ``--baseline TREE`` adds the same from another source tree
  aiohttp-headers   the same with the request headers built once, not per call
  aiohttp-untimed   ... and without the two ``asyncio.timeout`` scopes (send, read)
  aiohttp-lean      the same session, the cheaper usage: headers built once, no
                    ``asyncio.timeout`` per read, ``response.read()`` for a declared length
  httpcore          httpcore.AsyncConnectionPool (anyio backend), streamed body
  pyreqwest         Rust (reqwest/hyper) async client, streamed body
  pyqwest           Rust (reqwest/hyper) async client, streamed body
  aiosonic          pure-Python async client

    .venv/bin/python benchmarks/bench_upstream_client.py [--rounds 5] [--clients a,b]
        [--baseline TREE] [--requests 2000]
"""

# ruff: noqa: PLC0415  (each client is imported in its own child process, when installed)

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop

CLIENTS = (
    "aiohttp-gateway",
    "aiohttp-headers",
    "aiohttp-untimed",
    "aiohttp-lean",
    "httpcore",
    "pyreqwest",
    "pyqwest",
    "aiosonic",
)
PATH = "/mcp"
BASE = "@base"
BODY = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": "read_file", "arguments": {"path": "/data/" + "x" * 900}},
    }
).encode()
ANSWER = json.dumps(
    {"jsonrpc": "2.0", "id": 7, "result": {"content": [{"type": "text", "text": "y" * 960}]}}
).encode()
HEADERS = {  # what the gateway sends upstream for a tools/call
    "content-type": "application/json",
    "accept": "application/json, text/event-stream",
    "mcp-protocol-version": "2025-06-18",
    "mcp-session-id": "3f0c2a9e6b1d4e5f8a7b6c5d4e3f2a1b",
    "user-agent": "python-httpx/0.28.1",
}

# -- the server: minimal keep-alive HTTP/1.1 over raw asyncio --------------------------------

_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    b"mcp-session-id: 3f0c2a9e6b1d4e5f8a7b6c5d4e3f2a1b\r\n"
    b"date: Wed, 02 Dec 2026 07:00:00 GMT\r\nserver: uvicorn\r\n"
    b"content-length: " + str(len(ANSWER)).encode() + b"\r\n\r\n" + ANSWER
)


class _Server(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            assert self.transport is not None
            self.transport.write(_RESPONSE)


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Server, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes stdin


# -- the clients: each returns (setup, one_call, teardown) -------------------------------------

Call = Callable[[], Awaitable[None]]


async def _aiohttp_gateway(url: str) -> tuple[Call, Callable[[], Awaitable[None]]]:
    from remit.gateway.upstream import Upstream, UpstreamSettings, request_headers

    upstream = Upstream(UpstreamSettings(url=url))
    await upstream.start()
    client = list(HEADERS.items())

    async def call() -> None:
        headers = request_headers(client, {})  # built per request, as the proxy does
        response = await upstream.send("POST", headers, BODY)
        try:  # what forward.py and relay.py ask of a JSON answer
            response.header(b"mcp-session-id")
            assert response.kind != "sse"
            assert response.kind == "json"
            body = await response.read()
            response.client_headers()
        finally:
            response.close()
        assert len(body) == len(ANSWER), body[:200]

    return call, upstream.close


async def _aiohttp_variant(
    url: str, *, headers: bool = False, untimed: bool = False
) -> tuple[Call, Callable[[], Awaitable[None]]]:
    """The gateway's usage less one cost at a time: ``headers`` sends headers built once
    (no ``request_headers`` filtering per call); ``untimed`` also drops the two
    ``asyncio.timeout`` scopes (send, read)."""
    from multidict import CIMultiDict

    from remit.gateway.upstream import Upstream, UpstreamSettings

    upstream = Upstream(UpstreamSettings(url=url))
    await upstream.start()
    session = upstream._session
    assert session is not None
    built = CIMultiDict(HEADERS)

    async def call() -> None:
        if untimed:
            response = await session.request(
                "POST", upstream._url, headers=built, data=BODY, allow_redirects=False
            )
            chunks = []
            while chunk := await response.content.readany():
                chunks.append(chunk)
            response.release()
            body = b"".join(chunks)
        else:
            wrapped = await upstream.send("POST", built, BODY)
            try:
                body = await wrapped.read()
            finally:
                wrapped.close()
        assert len(body) == len(ANSWER), body[:200]

    return call, upstream.close


async def _aiohttp_lean(url: str) -> tuple[Call, Callable[[], Awaitable[None]]]:
    import aiohttp
    from multidict import CIMultiDict
    from yarl import URL

    from remit.gateway.upstream import Upstream, UpstreamSettings

    upstream = Upstream(UpstreamSettings(url=url))
    await upstream.start()
    session = upstream._session  # the same session, options and pool
    assert session is not None
    target = URL(url)
    headers = CIMultiDict(HEADERS)  # built once

    async def call() -> None:
        response = await session._request(
            "POST", target, headers=headers, data=BODY, allow_redirects=False
        )
        try:
            body = await response.read()
        finally:
            response.release()
        assert len(body) == len(ANSWER), body[:200]

    del aiohttp
    return call, upstream.close


async def _httpcore(url: str) -> tuple[Call, Callable[[], Awaitable[None]]]:
    import httpcore

    pool = httpcore.AsyncConnectionPool(max_connections=256, http1=True, http2=False)
    headers = [(k.encode(), v.encode()) for k, v in HEADERS.items()]
    headers.append((b"host", url.split("/")[2].encode()))
    timeouts = {"connect": 5.0, "read": 120.0, "write": 120.0, "pool": 120.0}
    target = httpcore.URL(url)

    async def call() -> None:
        async with pool.stream(
            "POST", target, headers=headers, content=BODY, extensions={"timeout": timeouts}
        ) as response:
            chunks = [chunk async for chunk in response.aiter_stream()]
        assert len(b"".join(chunks)) == len(ANSWER)

    return call, pool.aclose


async def _pyreqwest(url: str) -> tuple[Call, Callable[[], Awaitable[None]]]:
    from datetime import timedelta

    from pyreqwest.client import ClientBuilder

    client = (
        ClientBuilder()
        .follow_redirects(False)
        .no_proxy()
        .gzip(False)
        .brotli(False)
        .zstd(False)
        .deflate(False)
        .max_connections(256)
        .connect_timeout(timedelta(seconds=5))
        .http1_only()
        .build()
    )
    await client.__aenter__()

    async def call() -> None:
        request = client.post(url).headers(HEADERS).body_bytes(BODY).build_streamed()
        size = 0
        async with request as response:
            while (chunk := await response.body_reader.read_chunk()) is not None:
                size += len(chunk)
        assert size == len(ANSWER)

    async def close() -> None:
        await client.close()

    return call, close


async def _pyqwest(url: str) -> tuple[Call, Callable[[], Awaitable[None]]]:
    from pyqwest import Client, HTTPTransport

    transport = HTTPTransport(
        connect_timeout=5.0,
        enable_gzip=False,
        enable_brotli=False,
        enable_zstd=False,
        follow_redirects=False,
        enable_otel=False,
        enable_cookie_store=False,
    )
    client = Client(transport)

    async def call() -> None:
        size = 0
        async with client.stream("POST", url, headers=HEADERS, content=BODY) as response:
            async for chunk in response.content:
                size += len(chunk)
        assert size == len(ANSWER), size

    async def close() -> None:
        closer = getattr(transport, "aclose", None) or getattr(transport, "close", None)
        if closer is not None:
            result = closer()
            if asyncio.iscoroutine(result):
                await result

    return call, close


async def _aiosonic(url: str) -> tuple[Call, Callable[[], Awaitable[None]]]:
    import aiosonic

    client = aiosonic.HTTPClient()

    async def call() -> None:
        response = await client.post(url, headers=HEADERS, data=BODY)
        body = await response.content()
        assert len(body) == len(ANSWER)

    async def close() -> None:
        await client.connector.cleanup()

    return call, close


_FACTORIES: dict[str, Callable[[str], Awaitable[tuple[Call, Callable[[], Awaitable[None]]]]]] = {
    "aiohttp-gateway": _aiohttp_gateway,
    "aiohttp-headers": lambda url: _aiohttp_variant(url, headers=True),
    "aiohttp-untimed": lambda url: _aiohttp_variant(url, headers=True, untimed=True),
    "aiohttp-lean": _aiohttp_lean,
    "httpcore": _httpcore,
    "pyreqwest": _pyreqwest,
    "pyqwest": _pyqwest,
    "aiosonic": _aiosonic,
}


async def _measure(name: str, url: str, requests: int, concurrency: int) -> dict[str, Any]:
    try:
        call, close = await _FACTORIES[name](url)
    except ImportError as exc:
        return {"error": f"not installed ({exc.name})"}

    async def worker(count: int) -> None:
        for _ in range(count):
            await call()

    try:
        await asyncio.gather(*(worker(50) for _ in range(concurrency)))  # warm the pool
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await close()
    done = requests // concurrency * concurrency
    return {"cpu_us": cpu / done * 1e6, "wall_us": wall / done * 1e6}  # wall: not shown


def _child(name: str, url: str, requests: int, concurrency: int) -> None:
    result = uvloop.run(_measure(name, url, requests, concurrency))
    print(json.dumps(result), flush=True)


def _run(
    name: str, url: str, requests: int, concurrency: int, baseline: str | None
) -> dict[str, Any]:
    env = dict(os.environ)
    if name.endswith(BASE):  # the gateway's usage as the baseline tree has it
        name = name.removesuffix(BASE)
        env["PYTHONPATH"] = os.path.join(str(baseline), "dataplane")
    argv = [sys.executable, __file__, "--child", name, "--url", url]
    argv += ["--requests", str(requests), "--concurrency", str(concurrency)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False, env=env)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument(
        "--baseline",
        metavar="TREE",
        help="Also run aiohttp-gateway from this source tree (e.g. main), interleaved: an A/B",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        uvloop.run(_serve())
        return
    if args.child:
        _child(args.child, args.url, args.requests, args.concurrency)
        return
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{int(server.stdout.readline())}{PATH}"
        names = args.clients.split(",")
        if args.baseline:
            names.insert(0, "aiohttp-gateway" + BASE)
        results: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for _ in range(args.rounds):
            for concurrency in (1, 8):
                for name in names:
                    results.setdefault((name, concurrency), []).append(
                        _run(name, url, args.requests, concurrency, args.baseline)
                    )
    finally:
        server.communicate(b"", timeout=10)
    print(f"load average {os.getloadavg()[0]:.2f}; {args.requests} POSTs x {args.rounds} rounds")
    print("client CPU us/request, min of rounds (median in []; lower is better), then ratio")
    print(f"{'client':<22}{'c=1 CPU':>16}{'c=8 CPU':>16}  vs {names[0]}")
    base = None
    for name in names:
        row = f"{name:<22}"
        cpus = []
        for concurrency in (1, 8):
            runs = results[(name, concurrency)]
            errors = [r["error"] for r in runs if "error" in r]
            if errors:
                row += f"  {errors[0][:60]}"
                break
            cpu = min(r["cpu_us"] for r in runs)  # the least disturbed round: load only adds
            median = statistics.median(r["cpu_us"] for r in runs)
            cpus.append(cpu)
            row += f"{cpu:>8.1f}{f'[{median:.0f}]':>8}"
        else:
            if base is None:
                base = cpus
            row += "  " + " / ".join(f"{c / b:.2f}x" for c, b in zip(cpus, base, strict=True))
        print(row)


if __name__ == "__main__":
    main()
