"""Server-side CPU per request of the HTTP servers and interfaces the gateway could run on.

One app, written once per interface: read a ~1 KB JSON body, parse it, answer ~1 KB of JSON
(the shape of a proxied ``tools/call``, without the proxying). Each server runs alone in its
own process on loopback; a lean raw-socket client (keep-alive, in this process) sends the same
request at concurrency 1 and 8. Printed per server, side by side: the server process's CPU per
request (user+system, all its threads, from /proc), its context switches per request (thread
hand-overs show up here), its thread count, and the client-seen p50 at c=1. Rounds alternate
the servers so drift on a shared machine hits all alike.

    .venv/bin/python benchmarks/bench_server_interface.py [--requests 3000] [--rounds 2]
        [--only uvicorn-gw,granian-rsgi] [--baseline TREE]

Servers (``--list``): ``uvicorn`` (stock httptools protocol), ``uvicorn-gw`` (the gateway's
``runner.serve_app`` with its ``LimitedProtocol``, as the gateway runs it),
``uvicorn-gw-base`` (the same from the source tree ``--baseline``, for A/B),
``granian-asgi`` / ``granian-rsgi`` (granian's embedded server, as ``runner`` would run it) and
``socketify`` (when it is installed).

Measured 2026-12-02 (2 cores, load average 7-11, medians of 3 rounds, us of server CPU per
request at c=1 / c=8): uvicorn-gw 88-105 / 65-73 (before the one-write response and on-demand
timers: 104-113 / 72-83), stock uvicorn 104-127 / 65-72, granian RSGI 94-108 / 75-77 with
~16 / ~10 context switches per request (its Rust threads hand each request to the Python
loop and back; uvicorn: ~1 / ~0.4), granian ASGI 118-170 / 101-127, socketify 144-164 /
114-166. No interface pays enough to leave ASGI (docs/architecture.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

REQUEST_BODY = orjson.dumps(
    {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": "read_file", "arguments": {"path": "/data/" + "x" * 900}},
    }
)
RESULT = {"content": [{"type": "text", "text": "y" * 950}], "isError": False}
SERVERS = [
    "uvicorn",
    "uvicorn-gw",
    "uvicorn-gw-base",
    "granian-asgi",
    "granian-rsgi",
    "socketify",
]


def answer(body: bytes) -> bytes:
    """The app's work, the same under every interface."""
    value = orjson.loads(body)
    return orjson.dumps({"jsonrpc": "2.0", "id": value["id"], "result": RESULT})


# -- the app, once per interface ---------------------------------------------------------------


async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
    """ASGI: headers decoded as the proxy does, body read in a loop, two send messages."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].removeprefix("lifespan.")
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    headers = tuple((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"])
    assert headers
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    payload = answer(b"".join(chunks))
    out = [(b"content-length", str(len(payload)).encode()), (b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": out})
    await send({"type": "http.response.body", "body": payload})


async def rsgi_app(scope: Any, protocol: Any) -> None:
    """RSGI: headers are already text, the body one await, the response one call."""
    headers = tuple(scope.headers.items())
    assert headers
    payload = answer(await protocol())
    out = [("content-length", str(len(payload))), ("content-type", "application/json")]
    protocol.response_bytes(200, out, payload)


def serve(server: str, port: int, tree: str | None) -> None:
    """Run one server on ``port`` until killed (the child process)."""
    if tree is not None:
        sys.path.insert(0, str(Path(tree) / "dataplane"))
    if server in ("uvicorn-gw", "uvicorn-gw-base"):
        from remit.gateway import runner  # noqa: PLC0415

        runner.serve(asgi_app, runner.ListenerSettings(port=port))
    elif server == "uvicorn":
        import uvicorn  # noqa: PLC0415

        uvicorn.run(
            asgi_app, port=port, loop="uvloop", http="httptools", log_level="warning",
            access_log=False, lifespan="on", interface="asgi3",
        )  # fmt: skip
    elif server in ("granian-asgi", "granian-rsgi"):
        import uvloop  # noqa: PLC0415
        from granian.constants import Interfaces  # noqa: PLC0415
        from granian.log import LogLevels  # noqa: PLC0415
        from granian.server.embed import Server  # noqa: PLC0415

        rsgi = server == "granian-rsgi"
        embedded = Server(
            rsgi_app if rsgi else asgi_app, port=port, log_level=LogLevels.warning,
            interface=Interfaces.RSGI if rsgi else Interfaces.ASGI, websockets=False,
        )  # fmt: skip
        uvloop.run(embedded.serve())
    elif server == "socketify":
        from socketify import App  # type: ignore[import-untyped,import-not-found,unused-ignore]  # noqa: PLC0415

        app = App()

        def handler(response: Any, request: Any) -> None:
            headers = tuple(request.get_headers().items())
            assert headers
            chunks: list[bytes] = []

            def data(response: Any, chunk: bytes | None, end: bool) -> None:
                if chunk:
                    chunks.append(chunk)
                if end:  # answered from the callback: no asyncio on this path
                    response.write_header("content-type", "application/json")
                    response.end(answer(b"".join(chunks)))

            response.on_data(data)

        app.post("/mcp", handler)
        app.listen(port, lambda _config: None)
        app.run()


# -- measuring ---------------------------------------------------------------------------------


def request_bytes(port: int) -> bytes:
    """One keep-alive POST with the headers a proxied MCP call carries."""
    head = (
        f"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
        "accept: application/json, text/event-stream\r\nmcp-protocol-version: 2026-07-28\r\n"
        f"mcp-method: tools/call\r\nmcp-name: read_file\r\nauthorization: Bearer {'t' * 400}\r\n"
        f"content-length: {len(REQUEST_BODY)}\r\n\r\n"
    )
    return head.encode() + REQUEST_BODY


LENGTH = re.compile(rb"content-length: *(\d+)", re.IGNORECASE)


async def client(port: int, requests: int, concurrency: int) -> list[float]:
    """``requests`` calls over ``concurrency`` keep-alive connections; latencies (s)."""
    data = request_bytes(port)
    remaining = requests
    times: list[float] = []

    async def worker() -> None:
        nonlocal remaining
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while remaining > 0:
                remaining -= 1
                start = time.perf_counter()
                writer.write(data)
                head = await reader.readuntil(b"\r\n\r\n")
                match = LENGTH.search(head)
                if not head.startswith(b"HTTP/1.1 200") or match is None:
                    raise RuntimeError(f"bad answer: {head[:200]!r}")
                body = await reader.readexactly(int(match.group(1)))
                times.append(time.perf_counter() - start)
                if b'"result"' not in body:
                    raise RuntimeError(f"bad body: {body[:200]!r}")
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return times


def cpu_and_switches(pid: int) -> tuple[float, int, int]:
    """CPU seconds run by the process's threads (schedstat, ns), their context switches, and
    how many threads there are."""
    cpu, switches, threads = 0.0, 0, 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            ran = (task / "schedstat").read_text().split()
            status = (task / "status").read_text()
        except OSError:  # the thread exited meanwhile
            continue
        threads += 1
        cpu += int(ran[0]) / 1e9
        for line in status.splitlines():
            if "ctxt_switches:" in line:
                switches += int(line.split()[1])
    return cpu, switches, threads


def server_pid(proc: subprocess.Popen[bytes]) -> int:
    """The process that serves: granian's own server forks one worker."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    kids = children.read_text().split() if children.exists() else []
    return int(kids[0]) if kids else proc.pid


def wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    """Block until the child listens (or has died)."""
    import socket  # noqa: PLC0415

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not listen")


def measure(server: str, args: argparse.Namespace) -> dict[str, float] | None:
    """One server: CPU/request, switches/request at c=1 and c=8, threads, c=1 p50."""
    from remit.gateway.ports import free_port  # noqa: PLC0415

    port = free_port()
    tree = str(args.baseline) if server.endswith("-base") else None
    argv = [sys.executable, __file__, "--serve", server, "--port", str(port)]
    if tree is not None:
        argv += ["--tree", tree]
    here = str(Path(__file__).parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, cwd=here)
    try:
        wait_port(port, proc)
        time.sleep(0.3)
        pid = server_pid(proc)
        asyncio.run(client(port, 300, 2))  # warm up
        out: dict[str, float] = {}
        for concurrency in (1, 8):
            cpu0, sw0, _ = cpu_and_switches(pid)
            times = asyncio.run(
                asyncio.wait_for(client(port, args.requests, concurrency), args.requests * 0.05)
            )
            cpu1, sw1, threads = cpu_and_switches(pid)
            out[f"cpu{concurrency}"] = (cpu1 - cpu0) / args.requests * 1e6
            out[f"sw{concurrency}"] = (sw1 - sw0) / args.requests
            out["threads"] = threads
            if concurrency == 1:
                out["p50"] = statistics.median(times) * 1e3
        return out
    except (RuntimeError, TimeoutError, OSError) as exc:
        proc.kill()
        err = proc.communicate()[1].decode(errors="replace").strip().splitlines()
        print(f"  {server}: {exc}: {err[-1] if err else ''}")
        return None
    finally:
        proc.kill()
        proc.wait(10)


def installed(server: str, args: argparse.Namespace) -> bool:
    """Whether ``server`` can run here."""
    if server == "socketify":
        try:
            import socketify  # noqa: F401, PLC0415
        except Exception:  # noqa: BLE001 - its native part may fail to load, too
            print("  socketify: not installed (pip install socketify), skipped")
            return False
    return not (server.endswith("-base") and args.baseline is None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="per concurrency and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", default=",".join(SERVERS), help="comma-separated servers")
    parser.add_argument("--baseline", type=Path, metavar="TREE", help="source tree to A/B")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tree", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.tree)
        return
    servers = [s for s in args.only.split(",") if installed(s, args)]
    results: dict[str, list[dict[str, float]]] = {s: [] for s in servers}
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    for _ in range(args.rounds):
        for server in servers:
            one = measure(server, args)
            if one is not None:
                results[server].append(one)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print("server: CPU/req at c=1 and c=8 (us), switches/req at c=1 and c=8, threads, p50 c=1 (ms)")
    for server, runs in results.items():
        if not runs:
            continue

        def both(key: str, digits: int = 0, runs: list[dict[str, float]] = runs) -> str:
            middle = statistics.median(r[key] for r in runs)
            return f"{middle:.{digits}f} (" + "/".join(f"{r[key]:.{digits}f}" for r in runs) + ")"

        print(
            f"{server:16} cpu c=1 {both('cpu1')}  c=8 {both('cpu8')}  switches c=1"
            f" {both('sw1', 1)}  c=8 {both('sw8', 1)}  threads"
            f" {max(r['threads'] for r in runs):.0f}  p50 {both('p50', 3)}"
        )
    print("(each figure: the median over rounds, then every round's in brackets)")


if __name__ == "__main__":
    main()
