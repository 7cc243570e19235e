"""Remit's own CPU per governed ``tools/call``, stage by stage, with no HTTP server around it.

Builds a real standalone gateway in this process (the policy directory ``bench_gateway.py``
writes: the examples plus ``--grants`` ConsentGrants, compiled and signed as ``remit gateway -f``
does), audit records to stdout (sent to /dev/null), forwarding to the demo files server over
loopback, and drives its ASGI app directly with the same ``tools/call`` and a real JWT that
``bench_gateway.py`` sends. Uvicorn is not involved, so what is left is the gateway's own path:
header checks, authentication, parsing, the decision (engine and CEL), the decision and outcome
records (built, sealed, handed to the sink), metrics, and the aiohttp client to the upstream.

Two passes per tree, in a child process each (``--baseline TREE`` runs another source tree's
``dataplane/`` the same way, alternating, so load hits both alike):

- *whole call*: the event-loop thread's CPU per call (``time.thread_time``) and the process's
  (the audit writer's thread included), with nothing instrumented;
- *stages*: the same calls with each stage wrapped in a thread-CPU timer; times are inclusive
  (``decide`` contains ``engine``, ``record`` and ``append``; ``forward`` contains the upstream
  round trip's loop-thread CPU, ``transform`` and ``outcome``).

    .venv/bin/python benchmarks/bench_glue.py [--calls 3000] [--grants 10000] [--baseline TREE]
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: (label, module, attribute[, class]): the stages timed, outermost first.
STAGES: tuple[tuple[str, str, str, str | None], ...] = (
    ("fields", "remit.gateway.proxy", "check_header_fields", None),
    ("authenticate", "remit.gateway.guard", "authenticate", "RemitGuard"),
    ("parse+bounds", "remit.gateway.proxy", "parse_body", None),
    ("routing headers", "remit.gateway.proxy", "check_routing_headers", None),
    ("decide (total)", "remit.gateway.guard", "decide_batch", "RemitGuard"),
    ("  request", "remit.gateway.guard", "_request", "RemitGuard"),
    ("  engine+limits", "remit.gateway.guard", "_decide", "RemitGuard"),
    ("  record build", "remit.gateway.recorder", "build", "Recorder"),
    ("  metrics count", "remit.gateway.recorder", "count", "Recorder"),
    ("  chain append", "remit.audit.chain", "append", "AuditChain"),
    ("    seal", "remit.audit.chain", "seal", None),
    ("encode body", "remit.gateway.proxy", "_encoded", None),
    ("forward (total)", "remit.gateway.proxy", "forward", None),
    ("  transform", "remit.gateway.guard", "transform", "RemitGuard"),
    ("  outcome", "remit.gateway.guard", "outcome", "RemitGuard"),
    ("    outcome build", "remit.gateway.recorder", "build_outcome", None),
)


def timed(totals: dict[str, float], label: str, function: Any) -> Any:
    """``function`` with its thread CPU added to ``totals[label]`` on every call."""
    clock = time.thread_time
    if inspect.iscoroutinefunction(function):

        async def wrapper_async(*args: object, **kwargs: object) -> object:
            start = clock()
            try:
                return await function(*args, **kwargs)
            finally:
                totals[label] = totals.get(label, 0.0) + clock() - start

        return wrapper_async

    def wrapper(*args: object, **kwargs: object) -> object:
        start = clock()
        try:
            return function(*args, **kwargs)
        finally:
            totals[label] = totals.get(label, 0.0) + clock() - start

    return wrapper


def instrument(totals: dict[str, float]) -> None:
    """Wrap every stage of ``STAGES`` that this tree has."""
    for label, module_name, attribute, owner_name in STAGES:
        module = importlib.import_module(module_name)
        owner = getattr(module, owner_name) if owner_name else module
        if hasattr(owner, attribute):
            setattr(owner, attribute, timed(totals, label, getattr(owner, attribute)))


def standalone(policy: Path, upstream: str) -> Any:
    """A standalone gateway over ``policy``, as ``remit gateway -f`` builds it (records to
    stdout)."""
    from remit.cli.gateway_start import with_flags  # noqa: PLC0415
    from remit.gateway.serve import build_standalone  # noqa: PLC0415
    from remit.gateway.settings import from_environment  # noqa: PLC0415

    settings = with_flags(
        from_environment({**os.environ, "REMIT_AUDIT_SINK": "stdout"}),
        upstream=upstream, listen=None, admin_listen=None, public_key=None, audit_file=None,
        files=[policy],
    )  # fmt: skip
    return build_standalone(settings, "files", None)


def request_scope(token: str, audience: str) -> dict[str, Any]:
    """The ASGI scope of the benchmark's ``tools/call`` (loadgen's headers) to ``audience``."""
    from loadgen import BODY, headers  # noqa: PLC0415

    host = audience.split("/")[2]
    sent = [(k.encode(), v.encode()) for k, v in headers(token).items()]
    sent += [(b"host", host.encode()), (b"content-length", str(len(BODY)).encode())]
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/mcp", "raw_path": b"/mcp", "query_string": b"",
        "root_path": "", "headers": sent, "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", int(host.split(":")[1])),
    }  # fmt: skip


async def whole_pass(one: Callable[[], Awaitable[None]], calls: int) -> dict[str, float]:
    """CPU per call over ``calls`` calls of ``one``, nothing instrumented; under cProfile with
    ``--cprofile``, between two callgrind dumps with ``--callgrind``."""
    profile = os.environ.get("BENCH_GLUE_PROFILE")
    profiler = None
    if profile:
        import cProfile  # noqa: PLC0415

        profiler = cProfile.Profile()
        profiler.enable()
    counting = bool(os.environ.get("BENCH_GLUE_CALLGRIND"))
    if counting:
        os.system(f"callgrind_control -d before {os.getpid()} >/dev/null")
    thread, process = time.thread_time(), time.process_time()
    for _ in range(calls):
        await one()
    result = {
        "whole call (loop thread)": (time.thread_time() - thread) / calls,
        "whole call (process)": (time.process_time() - process) / calls,
    }
    if counting:
        os.system(f"callgrind_control -d measured {os.getpid()} >/dev/null")
    if profiler is not None and profile:
        profiler.disable()
        profiler.dump_stats(profile)
    return result


def child(policy: Path, upstream: str, token: str, audience: str, calls: int) -> None:
    """Run both passes in this process and print one JSON line on the saved stdout."""
    import asyncio  # noqa: PLC0415

    import uvloop  # noqa: PLC0415

    from loadgen import BODY  # noqa: PLC0415

    out = os.fdopen(os.dup(1), "w")
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)  # the audit records (stdout sink) go nowhere
    gateway = standalone(policy, upstream)
    scope = request_scope(token, audience)
    totals: dict[str, float] = {}

    async def one() -> None:
        sent_body = False
        answer: list[dict[str, object]] = []

        async def receive() -> dict[str, object]:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": BODY, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, object]) -> None:
            answer.append(message)

        await gateway.mcp_app(scope, receive, send)
        body = b"".join(m.get("body", b"") for m in answer)  # type: ignore[misc]
        if answer[0].get("status") != 200 or b'"result"' not in body:
            raise RuntimeError(f"bad answer: {answer[0]!r} {body[:300]!r}")

    async def run() -> dict[str, float]:
        await gateway.start()
        try:
            for _ in range(300):  # warm up: token cache, connections, pins
                await one()
            result = await whole_pass(one, calls)
            counting = bool(os.environ.get("BENCH_GLUE_CALLGRIND"))
            instrument(totals)
            totals.clear()
            for _ in range(0 if counting else calls):
                await one()
            if not counting:
                result.update({label: total / calls for label, total in totals.items()})
            return result
        finally:
            await gateway.stop()

    result = uvloop.run(run())
    out.write(json.dumps(result) + "\n")
    out.flush()


INSTRUCTIONS = "thousand instructions"


def instructions(prefix: Path) -> float:
    """The instructions callgrind counted in the dump named ``measured`` of ``prefix``."""
    for dump in prefix.parent.glob(f"{prefix.name}.*"):
        text = dump.read_text(errors="replace")
        if "Trigger: dump measured\n" in text:
            summary = next(line for line in text.splitlines() if line.startswith("summary:"))
            return float(summary.split()[1]) * 1e-3
    raise SystemExit(f"no callgrind dump of the measured pass next to {prefix}")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--grants", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs per tree")
    parser.add_argument("--baseline", type=Path, metavar="TREE")
    parser.add_argument(
        "--cprofile", type=Path, metavar="PREFIX",
        help="Also write cProfile stats of each run's whole-call pass to PREFIX-<tree>-<n>.prof "
        "(the whole-call figure then includes cProfile's own cost)",
    )  # fmt: skip
    parser.add_argument(
        "--callgrind", action="store_true",
        help="Run each child under valgrind's callgrind and report the instructions the "
        "gateway process executes per call (both threads; exact, so unaffected by load), "
        "instead of the stage table; use a few hundred --calls",
    )  # fmt: skip
    parser.add_argument(
        "--callgrind-out", type=Path, metavar="DIR",
        help="With --callgrind, keep the dumps in DIR (callgrind-<tree>-<n>.<part>; the part "
        "whose trigger is 'dump measured' is the measured pass) for callgrind_annotate",
    )  # fmt: skip
    return parser.parse_args()


def report(
    args: argparse.Namespace, trees: list[str], runs: dict[str, list[dict[str, float]]]
) -> None:
    """Print the table: one column per run, tree by tree."""
    labels = ["whole call (loop thread)", "whole call (process)", *(s[0] for s in STAGES)]
    if args.callgrind:
        labels = [INSTRUCTIONS, "whole call (loop thread)", "whole call (process)"]
    header = "".join(f"{name + ' ' + str(i + 1):>10}" for name in trees for i in range(args.rounds))
    what = "instructions (callgrind) and" if args.callgrind else ""
    print(f"\n{what} us of CPU per call (stages: loop thread, inclusive)\n{'':<26}{header}")
    for label in labels:
        row = "".join(
            f"{run[label] * 1e6:10.1f}" if label in run else f"{'-':>10}"
            for name in trees
            for run in runs[name]
        )
        print(f"{label:<26}{row}")


def main() -> None:
    args = arguments()

    from bench_gateway import write_policy  # noqa: PLC0415
    from loadgen import start_upstream  # noqa: PLC0415
    from remit.demo.issuer import Issuer  # noqa: PLC0415
    from remit.gateway.ports import free_port, wait_for_port  # noqa: PLC0415

    trees = {"this": ROOT}
    if args.baseline is not None:
        trees = {"base": args.baseline.resolve(), "this": ROOT}
    with tempfile.TemporaryDirectory(prefix="remit-glue-") as work, Issuer() as issuer:
        audience = f"http://127.0.0.1:{free_port()}/mcp"
        policy = Path(work) / "policy"
        write_policy(policy, issuer.issuer, audience, args.grants)
        port = free_port()
        upstream = f"http://127.0.0.1:{port}/mcp"
        upstream_proc = start_upstream(port)
        try:
            wait_for_port("127.0.0.1", port, 30)
            token = issuer.mint(
                "alice@example.com", agent="support-bot", audience=audience,
                scopes=["mcp:tools"], expires_in=3600,
            )  # fmt: skip
            load = os.getloadavg()
            print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; {args.calls} calls")
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
            for _ in range(args.rounds):
                for name, tree in trees.items():
                    launch = (
                        "import sys; sys.path[:0] = [sys.argv.pop(1), sys.argv.pop(1)]; "
                        "import remit; assert remit.__file__.startswith(sys.path[0]); "
                        "import bench_glue; bench_glue.child(*map(__import__('pathlib').Path, "
                        "sys.argv[1:2]), *sys.argv[2:5], int(sys.argv[5]))"
                    )
                    command = [sys.executable, "-c", launch, str(tree / "dataplane"), str(HERE),
                               str(policy), upstream, token, audience, str(args.calls)]  # fmt: skip
                    env = dict(os.environ)
                    dumps = args.callgrind_out or Path(work)
                    counts = dumps / f"callgrind-{name}-{len(runs[name])}"
                    if args.callgrind:
                        command = ["valgrind", "--tool=callgrind",
                                   f"--callgrind-out-file={counts}", *command]  # fmt: skip
                        env["BENCH_GLUE_CALLGRIND"] = "1"
                    if args.cprofile is not None:
                        env["BENCH_GLUE_PROFILE"] = f"{args.cprofile}-{name}-{len(runs[name])}.prof"
                    done = subprocess.run(
                        command, capture_output=True, text=True, check=False, env=env
                    )
                    if done.returncode != 0:
                        raise SystemExit(f"{name}: {done.stderr[-3000:]}")
                    runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
                    if args.callgrind:
                        runs[name][-1][INSTRUCTIONS] = instructions(counts) / args.calls / 1e6
        finally:
            upstream_proc.terminate()
            upstream_proc.wait(10)
    report(args, list(trees), runs)


if __name__ == "__main__":
    main()
