"""Bundle size with ended ConsentGrants kept for truthful denials (``remit.policy.ended``).

Compiles one server's bundle with ``--active`` active grants and ``--ended`` grants that expired
or were revoked within the horizon, and reports the canonical JSON size, the compile time and a
sidecar's decode time, next to the same bundle without ended grants. At most
``MAX_ENDED_GRANTS`` ended grants are kept per server, however many there are.

    .venv/bin/python benchmarks/bench_ended_grants.py [--active 10000] [--ended 0 1000 10000]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.policies import LATER, NOW, grant, policy, resources, rule, server

from remit.policy.bundle import parse_bundle
from remit.policy.compiler import compile_bundle
from remit.policy.ended import MAX_ENDED_GRANTS, is_active


def _grants(active: int, ended: int) -> list[dict[str, object]]:
    docs: list[dict[str, object]] = [
        grant(f"a{i}", subject=f"user{i}@example.com", expires_at=LATER) for i in range(active)
    ]
    for i in range(ended):
        when = NOW - timedelta(minutes=i + 1)
        docs.append(
            grant(
                f"e{i}",
                subject=f"user{i}@example.com",
                expires_at=when,
                revoked=i % 4 == 0,
            )
        )
    return docs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--active", type=int, default=10_000)
    parser.add_argument("--ended", type=int, nargs="+", default=[0, 1000, 10_000])
    args = parser.parse_args()
    base = [server("files"), policy("p", rule("w", tools=["write_file"], consent=True))]
    print(f"{args.active} active grants; at most {MAX_ENDED_GRANTS} ended grants kept per server")
    print(
        f"{'ended':>7} {'kept':>6} {'bytes':>11} {'growth':>7} {'compile ms':>11} {'decode ms':>10}"
    )
    reference = 0
    for ended in args.ended:
        loaded = resources(*base, *_grants(args.active, ended))
        started = time.perf_counter()
        bundle = compile_bundle(loaded, "files", namespace="agents", now=NOW)
        compiled = time.perf_counter() - started
        payload = bundle.canonical()
        started = time.perf_counter()
        parse_bundle(payload)
        decoded = time.perf_counter() - started
        kept = sum(not is_active(g, NOW) for g in bundle.grants)
        reference = reference or len(payload)
        growth = f"{100 * (len(payload) / reference - 1):+.1f}%"
        print(f"{ended:>7} {kept:>6} {len(payload):>11,} {growth:>7} "
              f"{compiled * 1000:>11.0f} {decoded * 1000:>10.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
