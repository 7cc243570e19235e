"""What an idle gateway costs: CPU time and wake-ups per second with no traffic at all.

"CPU per pod" is a product figure: at 2,000 sidecars, every millisecond of CPU a second that
an idle gateway spends is two CPU-seconds a second cluster-wide. This starts, one after the
other:

- a **sidecar** as the operator injects it: ``remit gateway`` with exactly the environment
  ``remit_operator.gatewayspec.gateway_container`` builds for an MCPServer (addresses moved to
  free loopback ports, the key file and pod name filled in as the kubelet would), then a
  signed bundle pushed over the admin API as the operator does, so it idles ready;
- a **standalone** gateway, ``remit gateway -f DIR`` over the examples' policies (plus
  ``--grants`` generated ConsentGrants), reloading its directory as it does.

After ``--settle`` seconds it reads ``/proc/<pid>/task/*/schedstat`` (time on a CPU, times
scheduled) of every thread, waits ``--seconds``, reads again, and prints CPU ms/s and
wake-ups/s (times a thread was put on a CPU), per process and (``--threads``) per thread. No
request reaches the gateway meanwhile, except with ``--probes`` the kubelet's probes of the
admin port as the injected container declares them; SIGTERM then stops it, timed.
With ``--baseline DIR`` each gateway is also run from another source tree
(``git archive main | tar -x -C DIR``) in the same run, for an A/B.

    .venv/bin/python benchmarks/bench_idle.py [--seconds 10] [--grants 0] [--baseline DIR]
        [--probes] [--threads] [--modes sidecar standalone] [--telemetry]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support: policy documents

from tests.support.policies import LATER, grant, server

from remit.api.mcpserver import MCPServer
from remit.gateway.ports import free_port, wait_for_port
from remit.policy.signing import generate_key, save_key, sign
from remit_operator.gatewayspec import gateway_container
from remit_operator.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
REMIT = str(Path(sys.executable).parent / "remit")
UPSTREAM = socket.create_server(("127.0.0.1", 0))  # accepts (the start checks it), never called
UPSTREAM_URL = f"http://127.0.0.1:{UPSTREAM.getsockname()[1]}/mcp"
TRACED = "--telemetry" in sys.argv  # the MCPServer names an OTLP endpoint (never answered)
Sample = dict[int, tuple[str, int, int]]  # tid -> (thread, CPU ns, times scheduled)


def sample(pid: int) -> Sample:
    """Every thread's name, CPU time and run count so far."""
    seen: Sample = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            ran, _, slices = (task / "schedstat").read_text().split()
            name = "main thread" if int(task.name) == pid else f"thread {task.name}"
        except (OSError, ValueError):
            continue  # the thread ended between listing and reading
        seen[int(task.name)] = (name, int(ran), int(slices))
    return seen


def idle_cost(pid: int, seconds: float) -> tuple[float, float, dict[str, tuple[float, float]]]:
    """CPU ms/s and wake-ups/s of ``pid`` over ``seconds``, in total and per thread."""
    before, began = sample(pid), time.monotonic()
    time.sleep(seconds)
    after, span = sample(pid), time.monotonic() - began
    threads: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for tid, (name, ran, slices) in after.items():
        _, ran0, slices0 = before.get(tid, (name, 0, 0))
        threads[name][0] += (ran - ran0) / 1e6 / span
        threads[name][1] += (slices - slices0) / span
    cpu = sum(t[0] for t in threads.values())
    wakes = sum(t[1] for t in threads.values())
    return cpu, wakes, {name: (t[0], t[1]) for name, t in threads.items()}


class Probes(threading.Thread):
    """The kubelet's probes of the injected container: ``/readyz`` every 2 s and ``/healthz``
    every 10 s (``gatewayspec.py``), each on a new connection, as the kubelet makes them."""

    def __init__(self, admin: int) -> None:
        super().__init__(daemon=True)
        self.admin = admin
        self.stop = threading.Event()

    def run(self) -> None:
        tick = 0
        while not self.stop.wait(2.0 if tick else 0):
            paths = ["/readyz"] + (["/healthz"] if tick % 5 == 0 else [])
            for path in paths:
                url = f"http://127.0.0.1:{self.admin}{path}"
                with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5):
                    pass
            tick += 1


def command(argv: list[str], source: Path | None) -> list[str]:
    """``remit *argv``, from the source tree ``source`` when given (A/B runs)."""
    if source is None:
        return [REMIT, *argv]
    launch = (
        "import sys; sys.path.insert(0, sys.argv.pop(1)); import remit; "
        "assert remit.__file__.startswith(sys.path[0]), remit.__file__; "
        "from remit.cli.entry import main; sys.argv[0] = 'remit'; main()"
    )
    return [sys.executable, "-c", launch, str(source / "dataplane"), *argv]


def sidecar_env(workdir: Path, admin: int, port: int) -> dict[str, str]:
    """The environment the webhook injects, with loopback addresses and mounted files."""
    telemetry = {"telemetry": {"otlpEndpoint": UPSTREAM_URL.removesuffix("/mcp")}} if TRACED else {}
    resource = MCPServer.model_validate(server("files", **telemetry))
    container = gateway_container(resource, Settings())
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    env.update(
        {
            "REMIT_LISTEN": f"127.0.0.1:{port}",
            "REMIT_ADMIN_LISTEN": f"127.0.0.1:{admin}",
            "REMIT_UPSTREAM": UPSTREAM_URL,
            "REMIT_BUNDLE_PUBLIC_KEY": str(workdir / "public.jwk"),
            "REMIT_POD_NAME": "files-7d9f-abcde",
            "REMIT_AUDIT_ANCHOR_FILE": "",  # the anchors ConfigMap holds none yet
        }
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("REMIT_")}
    return {**clean, **env}


def push(admin: int, token: str) -> None:
    """PUT the signed bundle, as the operator does after the startup probe passes."""

    async def put() -> None:
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{admin}/v1/bundle"
            async with http.put(url, data=token.encode()) as response:
                response.raise_for_status()

    asyncio.run(put())


def run_sidecar(workdir: Path, source: Path | None) -> tuple[subprocess.Popen[bytes], int]:
    from remit.api.loader import load  # noqa: PLC0415
    from remit.policy.compiler import compile_bundle  # noqa: PLC0415

    key = generate_key()
    save_key(key, workdir / "public.jwk", private=False)
    bundle = compile_bundle(load([workdir / "policy"]).resources, "files", serial=1)
    port, admin = free_port(), free_port()
    proc = subprocess.Popen(
        command(["gateway"], source),
        env=sidecar_env(workdir, admin, port),
        stdout=subprocess.DEVNULL,
    )
    wait_for_port("127.0.0.1", admin, 60)
    push(admin, sign(bundle, key))
    return proc, admin


def run_standalone(workdir: Path, source: Path | None) -> tuple[subprocess.Popen[bytes], int]:
    port, admin = free_port(), free_port()
    argv = ["gateway", "-f", str(workdir / "policy"), "--server", "files"]
    argv += ["--upstream", UPSTREAM_URL]
    argv += ["--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin}"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("REMIT_")}
    proc = subprocess.Popen(command(argv, source), env=clean, stdout=subprocess.DEVNULL)
    wait_for_port("127.0.0.1", admin, 60)
    return proc, admin


def write_policy(directory: Path, grants: int) -> None:
    import shutil  # noqa: PLC0415

    import yaml  # noqa: PLC0415

    directory.mkdir()
    shutil.copy(ROOT / "examples" / "policies.yaml", directory)
    shutil.copy(ROOT / "examples" / "grants.yaml", directory)
    (directory / "server.yaml").write_text(yaml.safe_dump(server("files")))
    for n in range(grants):
        one = grant(f"g{n}", subject=f"user{n}@example.com", expires_at=LATER)
        (directory / f"g{n}.yaml").write_text(yaml.safe_dump(one))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--grants", type=int, default=0, help="extra grants (standalone)")
    parser.add_argument("--baseline", type=Path, help="a source tree to compare against")
    parser.add_argument("--threads", action="store_true", help="print per-thread figures")
    parser.add_argument("--probes", action="store_true", help="with the kubelet's probes")
    parser.add_argument("--telemetry", action="store_true", help="sidecar with an OTLP endpoint")
    parser.add_argument("--modes", nargs="+", default=["sidecar", "standalone"])
    args = parser.parse_args()
    trees: list[tuple[str, Path | None]] = [("this tree", None)]
    if args.baseline is not None:
        trees.insert(0, ("baseline", args.baseline))
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        write_policy(workdir / "policy", args.grants)
        for mode, start in (("sidecar", run_sidecar), ("standalone", run_standalone)):
            if mode not in args.modes:
                continue
            for label, source in trees:
                proc, admin = start(workdir, source)
                probes = Probes(admin)
                if args.probes:
                    probes.start()
                try:
                    time.sleep(args.settle)
                    load = os.getloadavg()[0]
                    cpu, wakes, threads = idle_cost(proc.pid, args.seconds)
                finally:
                    probes.stop.set()
                    began = time.monotonic()
                    proc.terminate()
                    proc.wait(10)
                    stopped = time.monotonic() - began
                print(
                    f"{mode:<10} {label:<9}  {cpu:6.2f} ms CPU/s  {wakes:6.1f} wake-ups/s"
                    f"  SIGTERM to exit {stopped * 1000:4.0f} ms"
                    f"  ({len(threads)} threads, load {load:.1f})"
                )
                if args.threads:
                    for name, (ms, n) in sorted(threads.items(), key=lambda t: -t[1][1]):
                        print(f"    {name:<16} {ms:6.2f} ms/s {n:6.1f}/s")


if __name__ == "__main__":
    main()
