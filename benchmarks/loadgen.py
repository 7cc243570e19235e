"""What the benchmarks share: one MCP ``tools/call``, a load generator, and /proc readings.

Every benchmark sends the same 2026-07-28 ``tools/call`` of the demo server's trivial read-only
tool, so figures from different scripts compare; latency runs interleave the paths they compare
and throughput runs alternate them, so drift on a shared machine hits both alike.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import orjson

TOOL = "read_file"
ARGUMENTS = {"path": "/data/readme.txt"}
BODY = orjson.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {
            "name": TOOL,
            "arguments": ARGUMENTS,
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    }
)


def headers(token: str) -> dict[str, str]:
    """The call's HTTP headers, with ``token`` as the bearer credential."""
    return {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": "2026-07-28",
        "mcp-method": "tools/call",
        "mcp-name": TOOL,
        "authorization": f"Bearer {token}",
    }


def start_upstream(port: int) -> subprocess.Popen[bytes]:
    """The demo files server in its fastest mode (stateless, JSON responses)."""
    argv = [sys.executable, "-m", "remit.demo.files_server", "--port", str(port)]
    return subprocess.Popen([*argv, "--json-response", "--stateless"])


async def call(session: aiohttp.ClientSession, url: str, sent: dict[str, str]) -> float:
    """One call; its latency in seconds. A wrong answer stops the benchmark."""
    start = time.perf_counter()
    async with session.post(url, data=BODY, headers=sent) as response:
        body = await response.read()
    elapsed = time.perf_counter() - start
    if response.status != 200 or b'"result"' not in body or b'"isError":true' in body:
        raise RuntimeError(f"bad answer from {url}: {response.status} {body[:300]!r}")
    return elapsed


async def latencies(
    session: aiohttp.ClientSession, urls: list[str], sent: dict[str, str], n: int
) -> list[list[float]]:
    """Sequential calls, interleaved across ``urls``; a latency list per URL.

    The order rotates every round, so each path follows every other one equally often: a call
    made right after a gateway's shares the machine with that gateway's work after its answer,
    and in a fixed order the second of two identical gateways read ~0.2-0.4 ms slower at p50
    (fsync sink, two cores, load ~9) than the first.
    """
    out: list[list[float]] = [[] for _ in urls]
    for round_ in range(n):
        for k in range(len(urls)):
            i = (round_ + k) % len(urls)
            out[i].append(await call(session, urls[i], sent))
    return out


async def throughput(
    session: aiohttp.ClientSession, url: str, sent: dict[str, str], n: int, concurrency: int
) -> float:
    """Calls per second with ``concurrency`` callers sharing ``n`` calls."""
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call(session, url, sent)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - start)


def pct(values: list[float], q: int) -> float:
    """The ``q``-th percentile."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    """Resident memory of a process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
