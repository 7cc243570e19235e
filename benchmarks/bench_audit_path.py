"""The decision-record write path alone: latency and CPU per record, without HTTP around it.

Each configuration runs in its own process on uvloop, as the gateway does (so CPU time is the
write path's, writer thread included): open a chain with ``open_chain``, append ``--records``
real decision records one at a time (latency of each ``append``, i.e. until the line is
written, or synced with fsync), then the same number from 8 concurrent tasks (records per
second, and records per fsync: group commit shows here). The configurations: stdout into a
pipe this script drains (lines written on the loop), stdout redirected to a regular file
(every line through the writer thread: the hand-over's cost), a file with fsync off, a file
with fsync on.

    .venv/bin/python benchmarks/bench_audit_path.py [--records 2000] [--dir DIR]
        [--baseline SRC]

``--dir /dev/shm`` (tmpfs, where fsync costs nothing) isolates the path's own cost from the
disk's. ``--baseline`` runs the same from another checkout's ``dataplane/`` directory (its
``open_chain``/``append`` API is the same), so before and after share one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop

CONFIGS = ("stdout", "stdout-file", "fsync-off", "fsync-on")


async def child(config: str, records: int, directory: Path) -> dict[str, float]:
    from remit.audit import AuditSettings, build_decision, open_chain  # noqa: PLC0415
    from remit.policy.request import Identity, Request  # noqa: PLC0415

    if config.startswith("stdout"):
        settings = AuditSettings()
    else:
        path = directory / f"bench-{os.getpid()}.jsonl"
        settings = AuditSettings(sink="file", path=path, fsync=config == "fsync-on")
    syncs = 0

    def fsync(fd: int) -> None:
        nonlocal syncs
        syncs += 1
        os.fsync(fd)

    chain = await open_chain(settings, server="agents/files", pod="bench", fsync_function=fsync)
    identity = Identity(subject="alice@example.com", agent="support-bot", scopes=("mcp:tools",))
    request = Request(identity, "tools/call", "write_file", {"path": "/data/a", "content": "x"})

    def record() -> object:
        return build_decision(
            request, server="agents/files", pod="bench", decision="allow", reason="allowed",
            message="rule allowed", rules=("agents/bot/rule",), bundle="sha256:" + "b" * 64,
            serial=1,
        )  # fmt: skip

    for _ in range(100):  # warm up
        await chain.append(record())  # type: ignore[arg-type]
    latencies = []
    cpu = time.process_time()
    for _ in range(records):
        start = time.perf_counter()
        await chain.append(record())  # type: ignore[arg-type]
        latencies.append(time.perf_counter() - start)
    cpu_sequential = time.process_time() - cpu
    remaining = records

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await chain.append(record())  # type: ignore[arg-type]

    start, cpu, synced = time.perf_counter(), time.process_time(), syncs
    await asyncio.gather(*(worker() for _ in range(8)))
    elapsed, cpu_concurrent = time.perf_counter() - start, time.process_time() - cpu
    await chain.close()
    if not config.startswith("stdout"):
        path.unlink()
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "p50_us": q[49] * 1e6,
        "p99_us": q[98] * 1e6,
        "cpu_us": cpu_sequential / records * 1e6,
        "c8_per_s": records / elapsed,
        "c8_cpu_us": cpu_concurrent / records * 1e6,
        "c8_per_sync": records / (syncs - synced) if syncs > synced else 0.0,
    }


def run(config: str, records: int, directory: Path, source: Path | None) -> dict[str, float]:
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = str(source)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile(dir=directory) as lines:
        to_file = config == "stdout-file"  # a regular file: every line through the thread
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", config, "--records", str(records),
             "--dir", str(directory)],
            env=env, stdout=lines if to_file else subprocess.PIPE, stderr=out,
        )  # fmt: skip
        while proc.stdout is not None and proc.stdout.read1(1 << 16):  # drain stdout as a
            pass  # container runtime does
        if proc.wait() != 0:
            raise RuntimeError(f"{config} failed")
        out.seek(0)
        result: dict[str, float] = json.loads(out.read().decode().strip().splitlines()[-1])
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--baseline", type=Path)
    parser.add_argument("--child", choices=CONFIGS)
    args = parser.parse_args()
    if args.child:
        result = uvloop.run(child(args.child, args.records, args.dir))  # as the gateway runs
        print(json.dumps(result), file=sys.stderr)  # stdout is the sink under test
        return
    sources: dict[str, Path | None] = {"this tree": None}
    if args.baseline is not None:
        sources["baseline"] = args.baseline.resolve()
    print(f"{args.records} records per configuration; files in {args.dir}")
    print(
        f"{'':<11} {'config':<10} {'p50 µs':>8} {'p99 µs':>8} {'CPU µs':>7}"
        f" {'c8 rec/s':>9} {'c8 CPU µs':>9} {'c8 rec/fsync':>12}"
    )
    for config in CONFIGS:
        for label, source in sources.items():  # alternate trees per configuration
            r = run(config, args.records, args.dir, source)
            print(
                f"{label:<11} {config:<10} {r['p50_us']:8.0f} {r['p99_us']:8.0f}"
                f" {r['cpu_us']:7.0f} {r['c8_per_s']:9.0f} {r['c8_cpu_us']:9.0f}"
                f" {r['c8_per_sync']:12.1f}"
            )


if __name__ == "__main__":
    main()
