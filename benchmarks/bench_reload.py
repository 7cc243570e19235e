"""Standalone hot reload: how long a changed policy directory takes to be in force.

The consent page writes a grant (an approval, a revocation) into the gateway's policy
directory; the gateway notices within its 0.5 s look (``gateway/reload.py``, checked by
tests/consent/test_consent_loop.py with the gateway's own clock) and then compiles the
directory in a spawned child process and installs the result. This measures that second part,
``PolicyReloader.reload``, for directories of ``--grants`` grants: wall time and the child's
CPU time (``RUSAGE_CHILDREN``), which is what the reload costs whatever else the machine runs.
docs/consent.md promises "within 2 s" for the whole span; wall time grows with CPU contention
(the child is a fresh interpreter importing the compiler), CPU time does not.

    .venv/bin/python benchmarks/bench_reload.py [--grants 1 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.policies import LATER, grant, policy, rule, server
from tests.support.stack import write_policy_dir

from remit.gateway.reload import PolicyReloader, compile_dirs
from remit.gateway.state import PolicyState
from remit.policy.signing import generate_key, public_key, sign


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(grants: int, rounds: int) -> tuple[list[float], list[float]]:
    """Wall and child-CPU seconds of ``rounds`` reloads of a directory with ``grants``."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = write_policy_dir(Path(tmp) / "policy", yaml.safe_dump(server()), examples=False)
        doc = policy("p", rule("w", tools=["write_file"], consent=True), agents=["bot"])
        (directory / "p.yaml").write_text(yaml.safe_dump(doc))
        for n in range(grants):
            one = grant(f"g{n}", subject=f"user{n}@example.com", expires_at=LATER)
            (directory / f"g{n}.yaml").write_text(yaml.safe_dump(one))
        key = generate_key()
        state = PolicyState(public_key(key), server="agents/files")
        state.install_signed(sign(compile_dirs((directory,), "files", None, 1), key))
        reloader = PolicyReloader((directory,), "files", None, key, state)
        walls, cpus = [], []
        for _ in range(rounds):
            cpu, began = _child_cpu(), time.perf_counter()
            assert reloader.reload()
            walls.append(time.perf_counter() - began)
            cpus.append(_child_cpu() - cpu)
        return walls, cpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--grants", type=int, nargs="+", default=[1, 1000])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for grants in args.grants:
        walls, cpus = measure(grants, args.rounds)
        print(
            f"{grants:>6} grants: reload wall median {statistics.median(walls):.2f} s "
            f"(max {max(walls):.2f}), child CPU median {statistics.median(cpus):.2f} s"
        )


if __name__ == "__main__":
    main()
