"""Cost of the full Remit gateway over calling the MCP server directly, in one run.

Starts the demo OIDC issuer (in this process), the demo files server (``--stateless
--json-response``) and two ``remit gateway`` processes in standalone mode over a generated
policy directory holding the examples plus 10,000 ConsentGrants: one writes decision records to
a file with ``REMIT_AUDIT_FSYNC=false``, the other to stdout, a pipe drained by ``cat`` as a
container runtime drains a pod's. Each ``tools/call`` carries a real JWT (verified once,
then served from the verified-token cache), is decided by the real engine (CEL included) and
recorded. Prints, per gateway, the added
latency p50/p99 at concurrency 1 (calls interleaved with direct ones), the throughput ratio
at concurrency 8, CPU per call and the gateway's RSS with the grants loaded.

``--tracing`` adds a gateway that traces every request (the stdout one with
``REMIT_OTLP_ENDPOINT`` at a real OTLP/HTTP receiver on loopback, ``tests/support/otlp.py``, every
trace sampled and exported), so tracing on (``gw tracing``) reads against off (``gw stdout``).

    .venv/bin/python benchmarks/bench_gateway.py [--requests 2000] [--grants 10000] [--tracing]

Targets: added p50 <= 1 ms, p99 <= 3 ms, throughput >= 0.8x direct, RSS <= 80 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from loadgen import (  # the benchmarks' shared load generator (benchmarks/loadgen.py)
    cpu_seconds,
    headers,
    latencies,
    pct,
    rss_mib,
    start_upstream,
    throughput,
)
from nginx_hop import start_nginx  # nginx as a transport-only hop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support: the OTLP receiver

from tests.support.otlp import OtlpReceiver, otlp_receiver

from remit.demo.issuer import Issuer
from remit.gateway.ports import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
REMIT = str(Path(sys.executable).parent / "remit")


def write_policy(directory: Path, issuer: str, audience: str, grants: int) -> None:
    """The examples' policies and grants, plus ``grants`` generated ConsentGrants."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "examples" / "policies.yaml", directory)
    shutil.copy(ROOT / "examples" / "grants.yaml", directory)
    (directory / "server.yaml").write_text(
        "apiVersion: remit.dev/v1alpha1\nkind: MCPServer\n"
        "metadata: {name: files, namespace: agents}\n"
        "spec:\n  selector: {matchLabels: {app: files}}\n  authentication:\n"
        f"    issuer: {issuer}\n    audience: {audience}\n    requiredScopes: [mcp:tools]\n"
    )
    docs = []
    for i in range(grants):
        docs.append(
            "apiVersion: remit.dev/v1alpha1\nkind: ConsentGrant\n"
            f"metadata: {{name: bench-{i}, namespace: agents}}\n"
            f"spec:\n  subject: user{i}@example.com\n  agent: support-bot\n  server: files\n"
            f"  tools: [write_file]\n  when: 'args.path.startsWith(\"/data/user{i}/\")'\n"
            f'  expiresAt: "2099-12-31T00:00:00Z"\n  grantedBy: user{i}@example.com\n'
            f"  reason: BENCH-{i}\n"
        )
    (directory / "bench-grants.yaml").write_text("---\n".join(docs))


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


async def measure(
    direct: str, hops: dict[str, tuple[str, int]], token: str, n: int, upstream_pid: int
) -> None:
    """Latency (interleaved) and throughput (alternating) of every hop against direct.

    ``hops`` maps a name to (URL, pid): nginx and each gateway. CPU per call is the hop
    process's user+system time over the calls it served, so it stays meaningful when the
    machine is loaded.
    """
    sent = headers(token)
    names = list(hops)
    urls = [direct, *(hops[name][0] for name in names)]
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:
        await latencies(session, urls, sent, 300)  # warm up every path (and the token cache)
        cpu1 = {name: cpu_seconds(hops[name][1]) for name in names}
        results = await latencies(session, urls, sent, n)
        cpu1 = {name: cpu_seconds(hops[name][1]) - cpu1[name] for name in names}
        d = results[0]
        print(f"\nconcurrency 1, {n} calls each (interleaved)")
        p50, p99 = pct(d, 50) * 1e3, pct(d, 99) * 1e3
        print(f"  direct              p50 {p50:6.3f} ms  p99 {p99:6.3f} ms")
        for name, g in zip(names, results[1:], strict=True):
            added50 = (pct(g, 50) - pct(d, 50)) * 1e3
            added99 = (pct(g, 99) - pct(d, 99)) * 1e3
            print(
                f"  {name:<19} p50 {pct(g, 50) * 1e3:6.3f} ms"
                f"  p99 {pct(g, 99) * 1e3:6.3f} ms"
                f"  added p50 {added50:6.3f} ms [{verdict(added50 <= 0.5)}]"
                f"  p99 {added99:6.3f} ms [{verdict(added99 <= 1)}]"
                f"  CPU/call {cpu1[name] / n * 1e6:5.0f} us"
            )
        print(f"\nconcurrency 8, {n} calls per round, best of 3 alternating rounds")
        rates: dict[str, list[float]] = {"direct": [], **{name: [] for name in names}}
        cpu = dict.fromkeys(names, 0.0)
        upstream_cpu = 0.0
        for _ in range(3):
            rates["direct"].append(await throughput(session, direct, sent, n, 8))
            for name in names:
                url, pid = hops[name]
                before, up_before = cpu_seconds(pid), cpu_seconds(upstream_pid)
                rates[name].append(await throughput(session, url, sent, n, 8))
                cpu[name] += cpu_seconds(pid) - before
                upstream_cpu += cpu_seconds(upstream_pid) - up_before
        best = max(rates["direct"])
        print(f"  direct              {best:7.0f} req/s")
        for name in names:
            rate = max(rates[name])
            print(
                f"  {name:<19} {rate:7.0f} req/s  ratio {rate / best:.2f}"
                f" [{verdict(rate / best >= 0.8)}]"
                f"  CPU/call {cpu[name] / (3 * n) * 1e6:5.0f} us"
                f" [{verdict(cpu[name] / (3 * n) <= 150e-6)}]"
            )
        print(f"  upstream CPU/call {upstream_cpu / (3 * n * len(names)) * 1e6:.0f} us")


def sidecar_rss(policy: Path, upstream: str, workdir: Path) -> tuple[float, float]:
    """RSS of a sidecar-mode gateway (the in-cluster mode) before and after a pushed bundle.

    The bundle is compiled from ``policy`` here and pushed over the admin API, as the operator
    does; the sidecar never parses YAML.
    """
    from remit.api.loader import load  # noqa: PLC0415
    from remit.policy.compiler import compile_bundle  # noqa: PLC0415
    from remit.policy.signing import generate_key, save_key, sign  # noqa: PLC0415

    key = generate_key()
    save_key(key, workdir / "bundle-key.jwk", private=False)
    bundle = compile_bundle(load([policy]).resources, "files", serial=1)
    port, admin = free_port(), free_port()
    env = {
        **os.environ,
        "REMIT_BUNDLE_PUBLIC_KEY": str(workdir / "bundle-key.jwk"),
        "REMIT_LISTEN": f"127.0.0.1:{port}",
        "REMIT_ADMIN_LISTEN": f"127.0.0.1:{admin}",
        "REMIT_SERVER": "agents/files",
        "REMIT_UPSTREAM": upstream,
    }
    proc = subprocess.Popen([REMIT, "gateway"], env=env, stdout=subprocess.DEVNULL)
    try:
        wait_for_port("127.0.0.1", admin, 60)
        time.sleep(0.5)  # let start-up allocations settle before reading RSS
        idle = rss_mib(proc.pid)

        async def push() -> None:
            async with aiohttp.ClientSession() as http:
                url = f"http://127.0.0.1:{admin}/v1/bundle"
                async with http.put(url, data=sign(bundle, key).encode()) as response:
                    response.raise_for_status()

        asyncio.run(push())
        time.sleep(0.5)
        return idle, rss_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)


DRAINS: list[subprocess.Popen[bytes]] = []


def container_log() -> int:
    """A pipe for a gateway's stdout, read by ``cat`` into /dev/null as a container runtime
    reads a pod's (a pipe, not /dev/null: the stdout sink's writes are measured as in a pod)."""
    drain = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    DRAINS.append(drain)  # exits once the gateway's end closes
    assert drain.stdin is not None
    return drain.stdin.fileno()


def stop_drains() -> None:
    """Close this process's end of every gateway's stdout pipe and reap the readers."""
    for drain in DRAINS:
        assert drain.stdin is not None
        drain.stdin.close()
        drain.wait(10)


def start_gateway(
    argv: list[str], env: dict[str, str], source: Path | None
) -> subprocess.Popen[bytes]:
    """A ``remit gateway`` process; from the source tree ``source`` when given (A/B runs)."""
    if source is None:
        return subprocess.Popen([REMIT, *argv], env=env, stdout=container_log())
    launch = (
        "import sys; sys.path.insert(0, sys.argv.pop(1)); import remit; "
        "assert remit.__file__.startswith(sys.path[0]), remit.__file__; "
        "from remit.cli.entry import main; sys.argv[0] = 'remit'; main()"
    )
    command = [sys.executable, "-c", launch, str(source / "dataplane"), *argv]
    return subprocess.Popen(command, env=env, stdout=container_log())


def pin(pid: int, cpus: set[int]) -> None:
    """Pin ``pid`` and its threads to ``cpus`` (as ``taskset -a -p`` does)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), cpus)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--grants", type=int, default=10_000)
    parser.add_argument(
        "--sinks", default="file,fsync,stdout",
        help="Gateways to run, by audit sink: file (fsync off), fsync (file, fsync on), behind "
        "(file, synced behind the call: REMIT_AUDIT_FSYNC_WAIT=false), strict (file, each record "
        "synced before the call proceeds: REMIT_AUDIT_FSYNC_STRICT=true), stdout, tracing "
        "(stdout, every request traced and exported over OTLP).",
    )  # fmt: skip
    parser.add_argument(
        "--tracing", action="store_true",
        help="Also run the tracing gateway (tracing on) beside the stdout one (off).",
    )  # fmt: skip
    parser.add_argument(
        "--baseline", type=Path, metavar="TREE",
        help="Also run each gateway from this source tree (e.g. a `git worktree` of main), "
        "interleaved with this tree's, for an A/B in one run.",
    )  # fmt: skip
    parser.add_argument(
        "--baseline-sinks", default="file,fsync,stdout", help="The sinks --baseline runs."
    )
    parser.add_argument(
        "--pin", action="store_true",
        help="Pin nginx and the gateways to the last CPU, this process and the upstream to "
        "the others (a sidecar on its own core).",
    )  # fmt: skip
    parser.add_argument(
        "--profile", action="store_true",
        help="Record each gateway with py-spy (--nonblocking; stacks in a new folder, printed).",
    )  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="Keep the temporary directory.")
    return parser.parse_args()


SINKS = {
    "file": {"REMIT_AUDIT_FSYNC": "false"},
    "fsync": {"REMIT_AUDIT_FSYNC": "true"},
    "behind": {"REMIT_AUDIT_FSYNC": "true", "REMIT_AUDIT_FSYNC_WAIT": "false"},
    "strict": {"REMIT_AUDIT_FSYNC": "true", "REMIT_AUDIT_FSYNC_STRICT": "true"},
    "stdout": {"REMIT_AUDIT_SINK": "stdout"},
    "tracing": {"REMIT_AUDIT_SINK": "stdout", "REMIT_TRACE_SAMPLE_RATIO": "1"},
}


def sinks(args: argparse.Namespace) -> list[str]:
    """The sinks to run: ``--sinks``, plus stdout and tracing with ``--tracing``."""
    chosen = args.sinks.split(",")
    if args.tracing:
        chosen += [sink for sink in ("stdout", "tracing") if sink not in chosen]
    return chosen


def start_gateways(
    args: argparse.Namespace, workdir: Path, issuer: str, upstream: str,
    procs: list[subprocess.Popen[bytes]], otlp: OtlpReceiver | None = None,
) -> dict[str, tuple[str, int]]:  # fmt: skip
    """Every gateway ``args`` asks for (per sink, per source tree), started together; the
    tracing one exports to ``otlp``."""
    trees: dict[str, Path | None] = {"": None}
    if args.baseline is not None:
        trees = {"base ": args.baseline.resolve(), "": None}
    hops: dict[str, tuple[str, int]] = {}
    ports: list[int] = []
    for sink in sinks(args):
        env = {**os.environ, **SINKS[sink]}
        if sink == "tracing":
            if otlp is None:
                raise SystemExit("the tracing gateway needs the OTLP receiver (--tracing)")
            env["REMIT_OTLP_ENDPOINT"] = otlp.endpoint
        for label, tree in trees.items():
            if tree is not None and sink not in args.baseline_sinks.split(","):
                continue
            port, admin = free_port(), free_port()
            audience = f"http://127.0.0.1:{port}/mcp"
            slug = f"{sink}-{'base' if tree else 'this'}"
            policy = workdir / f"policy-{slug}"
            write_policy(policy, issuer, audience, args.grants)
            argv = ["gateway", "-f", str(policy), "--server", "files", "--upstream",
                    upstream, "--listen", f"127.0.0.1:{port}", "--admin-listen",
                    f"127.0.0.1:{admin}"]  # fmt: skip
            if sink != "stdout":
                argv += ["--audit-file", str(workdir / f"audit-{slug}.jsonl")]
            procs.append(start_gateway(argv, env, tree))
            hops[f"{label}gw {sink}"] = (audience, procs[-1].pid)
            ports.append(port)
    for port in ports:  # started together: each compiles its grants at start-up
        wait_for_port("127.0.0.1", port, 600)
    return hops


def profilers(hops: dict[str, tuple[str, int]]) -> list[subprocess.Popen[bytes]]:
    """py-spy on every gateway (``--nonblocking``: the gateway is never paused).

    The stacks go to a fresh folder per run (printed, kept): fixed names in /tmp were overwritten
    by concurrent runs.
    """
    where = Path(tempfile.mkdtemp(prefix="remit-profile-"))
    print(f"py-spy raw stacks: {where}/profile-<hop>.txt")
    spy = str(Path(sys.executable).parent / "py-spy")
    return [
        subprocess.Popen(
            [
                spy,
                "record",
                "--nonblocking",
                "-f",
                "raw",
                "--pid",
                str(pid),
                "-o",
                str(where / f"profile-{name.replace(' ', '-')}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, (_, pid) in hops.items()
        if "gw" in name
    ]


def stop_profilers(spies: list[subprocess.Popen[bytes]]) -> None:
    """Stop py-spy: it writes its profile on SIGINT."""
    for spy in spies:
        spy.send_signal(signal.SIGINT)
        spy.wait(60)


def main() -> None:
    args = arguments()
    workdir = Path(tempfile.mkdtemp(prefix="remit-bench-"))
    issuer = Issuer().start()
    procs: list[subprocess.Popen[bytes]] = []
    receiving = contextlib.ExitStack()
    try:
        otlp = receiving.enter_context(otlp_receiver()) if "tracing" in sinks(args) else None
        up_port = free_port()
        upstream = f"http://127.0.0.1:{up_port}/mcp"
        procs.append(start_upstream(up_port))
        nginx_port = free_port()
        procs.append(start_nginx(upstream, nginx_port, workdir))
        hops = {"nginx": (f"http://127.0.0.1:{nginx_port}/mcp", procs[-1].pid)}
        hops.update(start_gateways(args, workdir, issuer.issuer, upstream, procs, otlp))
        wait_for_port("127.0.0.1", up_port, 20)
        wait_for_port("127.0.0.1", nginx_port, 20)
        cpus = os.sched_getaffinity(0)
        if args.pin and len(cpus) >= 2:
            last = max(cpus)
            for _, pid in hops.values():
                pin(pid, {last})
            for pid in (os.getpid(), procs[0].pid):
                pin(pid, cpus - {last})
        # One audience per gateway would need one token each; use a token valid for all.
        token = issuer.mint(
            "alice@example.com",
            agent="support-bot",
            audience=[url for name, (url, _) in hops.items() if name != "nginx"],
            scopes=["mcp:tools"],
            expires_in=3600,
        )
        load = os.getloadavg()
        print(
            f"grants loaded: {args.grants}; machine CPUs: {os.cpu_count()}; "
            f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; "
            f"{'pinned: hops on CPU ' + str(max(cpus)) if args.pin else 'unpinned'}"
        )
        spies = profilers(hops) if args.profile else []
        asyncio.run(measure(upstream, hops, token, args.requests, procs[0].pid))
        stop_profilers(spies)
        if otlp is not None:
            print(
                f"\nOTLP receiver: {len(otlp.spans)} spans from the tracing gateway"
                f"{'; errors: ' + '; '.join(otlp.errors[:3]) if otlp.errors else ''}"
            )
        print("\nRSS with the grants loaded (target <= 80 MiB)")
        policy = next(workdir.glob("policy-*"))
        idle, loaded = sidecar_rss(policy, upstream, workdir)
        print(f"  sidecar (pushed)    {loaded:6.1f} MiB [{verdict(loaded <= 80)}]"
              f"  (idle, no bundle: {idle:.1f} MiB)")  # fmt: skip
        for name, (_, pid) in hops.items():
            rss = rss_mib(pid)
            target = "" if name == "nginx" else f" [{verdict(rss <= 80)}]  (standalone, -f DIR)"
            print(f"  {name:<19} {rss:6.1f} MiB{target}")
        print(f"  upstream            {rss_mib(procs[0].pid):6.1f} MiB")
        if args.keep:
            print(f"\nkept {workdir}")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        stop_drains()
        issuer.stop()
        receiving.close()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
