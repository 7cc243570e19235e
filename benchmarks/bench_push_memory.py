"""Push memory against the number of pods: one encoded bundle shared, versus one copy per pod.

The operator's real ``Pusher`` pushes a bundle of ``--size`` bytes to N stand-in sidecars (an
aiohttp admin API in another process, ``tests/operator/sink.py``, so its memory does not count)
and ``tracemalloc`` reports the peak of Python allocations during the fan-out. Two strategies
go through the same Pusher:

- ``shared``: what the operator does, the compact JWS encoded once per bundle;
- ``per-pod``: what it did before, ``token.encode()`` for each pod before waiting for a slot.

    .venv/bin/python benchmarks/bench_push_memory.py [--size 409600] [--pods 10 100 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.operator.sink import sink
from tests.operator.support import operator_settings

from remit_operator.index import Sidecar
from remit_operator.push import Pusher

MiB = 1024 * 1024


def _targets(count: int) -> list[Sidecar]:
    return [
        Sidecar(f"bench/p{i}", "bench/files", "127.0.0.1", True, True, None, str(i))
        for i in range(count)
    ]


async def _peak(
    pusher: Pusher, port: int, pods: int, tokens: Callable[[Sidecar], list[bytes]]
) -> tuple[float, float]:
    tracemalloc.start()
    began = time.perf_counter()
    try:
        outcomes = await pusher.push_all(_targets(pods), port, tokens)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    failed = [o for o in outcomes if not o.ok]
    if failed:
        raise SystemExit(f"{len(failed)} pushes failed: {failed[0].error}")
    return peak / MiB, time.perf_counter() - began


async def main(size: int, pods: list[int]) -> None:
    jws = "x" * size  # a compact JWS is ASCII text
    shared = jws.encode()
    with tempfile.TemporaryDirectory() as tmp, sink() as port:
        settings = operator_settings(
            Path(tmp), {"REMIT_PUSH_TIMEOUT_SECONDS": "60", "REMIT_PUSH_DEADLINE_SECONDS": "600"}
        )
        pusher = Pusher(settings)
        print(f"bundle {size / 1024:.0f} KiB, per-server concurrency {settings.push.concurrency}")
        print(f"{'pods':>6} {'shared MiB':>11} {'per-pod MiB':>12}")
        try:
            for count in pods:
                once, _ = await _peak(pusher, port, count, lambda _: [shared])
                each, _ = await _peak(pusher, port, count, lambda _: [jws.encode()])
                print(f"{count:>6} {once:>11.1f} {each:>12.1f}")
        finally:
            await pusher.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=400 * 1024)
    parser.add_argument("--pods", type=int, nargs="+", default=[10, 100, 1000])
    args = parser.parse_args()
    asyncio.run(main(args.size, args.pods))
