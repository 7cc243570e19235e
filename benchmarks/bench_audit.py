"""What the decision-record write path costs: fsync on against off, stdout, in one run.

Starts the demo OIDC issuer (in this process), the demo files server (stateless, JSON
responses) and one standalone ``remit gateway`` per audit configuration over the examples'
policies: a file with ``REMIT_AUDIT_FSYNC=false``, a file with fsync on (the file sink's
default), and stdout into a pipe this script drains (as a container runtime does). Every
``tools/call`` carries a real JWT, is decided and recorded (a decision line before forwarding,
an outcome line after). Prints, per configuration, the added latency p50/p99 at concurrency 1
(calls interleaved with direct ones), throughput at concurrency 8 (alternating rounds) and
gateway CPU per call, then the fsync-on cost over fsync-off.

    .venv/bin/python benchmarks/bench_audit.py [--requests 1000] [--dir DIR]
        [--baseline SRC]

``--dir`` puts the audit files on another filesystem (fsync cost is the disk's). ``--baseline``
also runs the same three configurations from another checkout's ``dataplane/`` directory (e.g.
``git archive main dataplane | tar -x -C /tmp/base`` then ``--baseline /tmp/base/dataplane``),
so before and after share one run.

Target (issue 15): with fsync on, added p50 within 0.2 ms of fsync off.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import aiohttp

from loadgen import cpu_seconds, headers, latencies, pct, start_upstream, throughput
from remit.demo.issuer import Issuer
from remit.gateway.ports import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "fsync-off": {"REMIT_AUDIT_FSYNC": "false"},
    "fsync-on": {"REMIT_AUDIT_FSYNC": "true"},
    "stdout": {},
}


def write_policy(directory: Path, issuer: str, audience: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "examples" / "policies.yaml", directory)
    shutil.copy(ROOT / "examples" / "grants.yaml", directory)
    (directory / "server.yaml").write_text(
        "apiVersion: remit.dev/v1alpha1\nkind: MCPServer\n"
        "metadata: {name: files, namespace: agents}\n"
        "spec:\n  selector: {matchLabels: {app: files}}\n  authentication:\n"
        f"    issuer: {issuer}\n    audience: {audience}\n    requiredScopes: [mcp:tools]\n"
    )


def drain(pipe: object) -> None:
    """Read a gateway's stdout as a log collector would (and throw it away)."""
    read = pipe.read1  # type: ignore[attr-defined]
    while read(1 << 16):
        pass


class Gateways:
    """The gateway processes of one run, by name."""

    def __init__(self, workdir: Path, issuer: Issuer, upstream: str) -> None:
        self.workdir, self.issuer, self.upstream = workdir, issuer, upstream
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.urls: dict[str, str] = {}

    def start(self, name: str, env: dict[str, str], audit_dir: Path, source: Path | None) -> None:
        port, admin = free_port(), free_port()
        url = f"http://127.0.0.1:{port}/mcp"
        policy = self.workdir / f"policy-{name}"
        write_policy(policy, self.issuer.issuer, url)
        argv = [sys.executable, "-m", "remit", "gateway", "-f", str(policy), "--server", "files",
                "--upstream", self.upstream, "--listen", f"127.0.0.1:{port}",
                "--admin-listen", f"127.0.0.1:{admin}"]  # fmt: skip
        if "REMIT_AUDIT_FSYNC" in env:
            argv += ["--audit-file", str(audit_dir / f"{name}.jsonl")]
        run_env = {**os.environ, **env}
        if source is not None:
            run_env["PYTHONPATH"] = str(source)
        proc = subprocess.Popen(argv, env=run_env, stdout=subprocess.PIPE)
        threading.Thread(target=drain, args=(proc.stdout,), daemon=True).start()
        self.procs[name], self.urls[name] = proc, url
        wait_for_port("127.0.0.1", port, 120)

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
            proc.wait(10)


async def measure(direct: str, gateways: Gateways, token: str, n: int) -> None:
    sent = headers(token)
    names = list(gateways.urls)
    urls = [direct, *(gateways.urls[name] for name in names)]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        await latencies(session, urls, sent, 200)  # warm up every path and the token cache
        results = await latencies(session, urls, sent, n)
        d = results[0]
        added = {
            name: ((pct(g, 50) - pct(d, 50)) * 1e3, (pct(g, 99) - pct(d, 99)) * 1e3)
            for name, g in zip(names, results[1:], strict=True)
        }
        print(f"\nconcurrency 1, {n} calls each (interleaved)")
        p50, p99 = pct(d, 50) * 1e3, pct(d, 99) * 1e3
        print(f"  direct              p50 {p50:6.3f} ms  p99 {p99:6.3f} ms")
        for name in names:
            p50, p99 = added[name]
            print(f"  {name:<19} added p50 {p50:6.3f} ms  p99 {p99:6.3f} ms")
        print(f"\nconcurrency 8, {n} calls per round, best of 3 alternating rounds")
        rates: dict[str, list[float]] = {"direct": [], **{name: [] for name in names}}
        cpu = dict.fromkeys(names, 0.0)
        for _ in range(3):
            rates["direct"].append(await throughput(session, direct, sent, n, 8))
            for name in names:
                pid = gateways.procs[name].pid
                before = cpu_seconds(pid)
                rates[name].append(await throughput(session, gateways.urls[name], sent, n, 8))
                cpu[name] += cpu_seconds(pid) - before
        best = max(rates["direct"])
        print(f"  direct              {best:7.0f} req/s")
        for name in names:
            rate = max(rates[name])
            print(
                f"  {name:<19} {rate:7.0f} req/s  ratio {rate / best:.2f}"
                f"  gateway CPU/call {cpu[name] / (3 * n) * 1e6:5.0f} µs"
            )
    print("\nfsync on over fsync off (target: added p50 within 0.2 ms)")
    for prefix in sorted({name.rpartition("fsync-")[0] for name in names if "fsync-" in name}):
        on, off = added[f"{prefix}fsync-on"], added[f"{prefix}fsync-off"]
        label = prefix.rstrip("-") or "this tree"
        print(f"  {label:<19} p50 {on[0] - off[0]:+6.3f} ms  p99 {on[1] - off[1]:+6.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--dir", type=Path, help="Where the audit files go (default: a temp dir).")
    parser.add_argument("--baseline", type=Path, help="Another checkout's dataplane/ directory.")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="remit-bench-audit-"))
    audit_dir = args.dir or workdir
    issuer = Issuer().start()
    upstream_port = free_port()
    upstream = f"http://127.0.0.1:{upstream_port}/mcp"
    upstream_proc = start_upstream(upstream_port)
    gateways = Gateways(workdir, issuer, upstream)
    try:
        wait_for_port("127.0.0.1", upstream_port, 20)
        for name, env in CONFIGS.items():
            gateways.start(name, env, audit_dir, None)
            if args.baseline is not None:
                gateways.start(f"baseline-{name}", env, audit_dir, args.baseline.resolve())
        token = issuer.mint(
            "alice@example.com",
            agent="support-bot",
            audience=list(gateways.urls.values()),
            scopes=["mcp:tools"],
            expires_in=3600,
        )
        print(f"machine CPUs: {os.cpu_count()}; audit files in {audit_dir}")
        asyncio.run(measure(upstream, gateways, token, args.requests))
    finally:
        gateways.stop()
        upstream_proc.terminate()
        upstream_proc.wait(10)
        issuer.stop()
        for name in CONFIGS:
            for prefix in ("", "baseline-"):
                (audit_dir / f"{prefix}{name}.jsonl").unlink(missing_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
