"""Resident memory of the standalone gateway (``remit gateway -f DIR``) with 10,000 grants.

Starts the demo OIDC issuer (in this process), the demo files server and, over the same
generated policy directory as ``bench_gateway.py`` (the examples plus ``--grants``
ConsentGrants), one standalone gateway per variant: the defaults ``bench_gateway.py`` uses
(consent page ``auto``), ``--consent-listen off``, and the consent page on a known port opened
once after the calls (``page opened``: what the page's code costs once loaded); plus a sidecar
with the compiled bundle pushed. Each gateway serves ``--calls`` ``tools/call`` requests (half
at concurrency 1, half at 8) before its RSS is read, so the figure includes what serving
allocates. With ``--baseline TREE`` every standalone variant also runs from that source tree,
in the same run (A/B).

Printed per gateway: RSS (VmRSS) after start, after the calls, the peak (VmHWM), the CPU time
the start took in the gateway process, and, where the consent page runs in a process of its own,
that process's RSS too (the total is what the machine holds).

    .venv/bin/python benchmarks/bench_standalone_memory.py [--grants 10000] [--baseline TREE]

Target (issue 15): standalone RSS <= 80 MiB with 10,000 grants.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import aiohttp

from bench_gateway import sidecar_rss, start_gateway, write_policy
from loadgen import cpu_seconds, headers, latencies, rss_mib, start_upstream, throughput
from remit.demo.issuer import Issuer
from remit.gateway.ports import free_port, wait_for_port

VARIANTS = {"default": [], "consent off": ["--consent-listen", "off"], "page opened": []}
ROOT = Path(__file__).resolve().parents[1]


def peak_mib(pid: int) -> float:
    """Peak resident memory of a process (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (e.g. a consent page process)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        listed = task / "children"
        if listed.exists():
            found += [int(child) for child in listed.read_text().split()]
    return found


async def serve(url: str, token: str, calls: int) -> None:
    """``calls`` tools/calls: half one at a time, half eight at a time."""
    sent = headers(token)
    async with aiohttp.ClientSession() as session:
        await latencies(session, [url], sent, calls // 2)
        await throughput(session, url, sent, calls - calls // 2, 8)


async def open_page(url: str) -> None:
    """One request to the consent page (its login redirect is answer enough)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, allow_redirects=False) as response,
    ):
        await response.read()


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--grants", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--baseline", type=Path, metavar="TREE", help="Also run this tree.")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary directory.")
    return parser.parse_args()


def main() -> None:  # noqa: PLR0915 - one measurement loop, read top to bottom
    args = arguments()
    workdir = Path(tempfile.mkdtemp(prefix="remit-bench-mem-"))
    issuer = Issuer().start()
    procs: list[subprocess.Popen[bytes]] = []
    trees: dict[str, Path | None] = {"this": None}
    if args.baseline is not None:  # both launched the same way (python -c, from the tree)
        trees = {"base": args.baseline.resolve(), "this": ROOT}
    try:
        up_port = free_port()
        upstream = f"http://127.0.0.1:{up_port}/mcp"
        procs.append(start_upstream(up_port))
        wait_for_port("127.0.0.1", up_port, 20)
        load = os.getloadavg()
        print(
            f"grants: {args.grants}; calls per gateway: {args.calls}; "
            f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
        )
        print(f"  {'gateway':<22} {'started':>8} {'served':>8} {'peak':>8} {'start CPU':>10}")
        for variant, extra in VARIANTS.items():
            for label, tree in trees.items():
                port, admin = free_port(), free_port()
                audience = f"http://127.0.0.1:{port}/mcp"
                policy = workdir / f"policy-{label}-{variant.replace(' ', '-')}"
                write_policy(policy, issuer.issuer, audience, args.grants)
                argv = ["gateway", "-f", str(policy), "--server", "files", "--upstream",
                        upstream, "--listen", f"127.0.0.1:{port}", "--admin-listen",
                        f"127.0.0.1:{admin}", *extra]  # fmt: skip
                page = free_port()
                if variant == "page opened":
                    argv += ["--consent-listen", f"127.0.0.1:{page}"]
                env = {**os.environ, "REMIT_AUDIT_SINK": "stdout"}
                proc = start_gateway(argv, env, tree)
                procs.append(proc)
                try:
                    wait_for_port("127.0.0.1", port, 600)
                    time.sleep(0.5)  # let start-up allocations settle
                    started, start_cpu = rss_mib(proc.pid), cpu_seconds(proc.pid)
                    token = issuer.mint(
                        "alice@example.com", agent="support-bot", audience=audience,
                        scopes=["mcp:tools"], expires_in=3600,
                    )  # fmt: skip
                    asyncio.run(serve(audience, token, args.calls))
                    if variant == "page opened":  # the consent page's first request
                        asyncio.run(open_page(f"http://127.0.0.1:{page}/grants"))
                    served = rss_mib(proc.pid)
                    others = sum(rss_mib(child) for child in children(proc.pid))
                    note = f"  (+ {others:.1f} MiB in child processes)" if others else ""
                    print(
                        f"  {label + ' ' + variant:<22} {started:6.1f} M {served:6.1f} M "
                        f"{peak_mib(proc.pid):6.1f} M {start_cpu:8.2f} s{note}"
                    )
                finally:
                    proc.terminate()
                    proc.wait(10)
        idle, loaded = sidecar_rss(next(workdir.glob("policy-*")), upstream, workdir)
        print(f"  {'sidecar (pushed)':<22} {idle:6.1f} M {loaded:6.1f} M  (idle, pushed)")
        if args.keep:
            print(f"kept {workdir}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
        issuer.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
