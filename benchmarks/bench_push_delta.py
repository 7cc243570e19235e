"""Bytes per grant change: the full signed bundle against the signed delta, at 100 to 10,000 grants.

For each grant count, a bundle is compiled from real resources (through the loader and the
compiler, as the operator does), then three grant changes are compiled after it: one grant
granted, one revoked, one changed (its tools). For each change the benchmark signs both the full
bundle and the delta against the previous bundle with the same Ed25519 key, and installs each
into a sidecar's ``PolicyState`` (signature verification, delta application, digest check, engine
build, atomic swap), checking both give the same digest. It prints the bytes on the wire and the
sidecar's install time side by side.

    .venv/bin/python benchmarks/bench_push_delta.py [--grants 100 1000 10000]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from tests.support.policies import grant, policy, rule, server

from remit.api.common import Resource
from remit.api.loader import parse
from remit.gateway.state import PolicyState
from remit.policy.bundle import Bundle
from remit.policy.compiler import compile_bundle
from remit.policy.delta import build_delta
from remit.policy.signing import generate_key, public_key, sign, sign_delta

NOW = datetime.now(UTC).replace(microsecond=0)
LATER = NOW + timedelta(days=30)


def _grant(j: int, tools: tuple[str, ...] = ("write_file",)) -> Resource:
    doc = grant(
        f"grant-{j}",
        subject=f"user{j}@example.com",
        agent=f"bot-{j % 50}",
        tools=tools,
        expires_at=LATER + timedelta(seconds=j),
        uid=f"uid-{j}",
    )
    return parse(doc)


def _compile(resources: list[Resource], serial: int) -> Bundle:
    bundle = compile_bundle(resources, "files", namespace="agents", now=NOW)
    return msgspec.structs.replace(bundle, serial=serial)


def _timed(action: Callable[[bytes], Any], body: bytes) -> float:
    began = time.perf_counter()
    action(body)
    return (time.perf_counter() - began) * 1000


def run(count: int) -> None:
    key = generate_key()
    fixed = [parse(server()), parse(policy("bot", rule("write", tools=["write_*"], consent=True)))]
    grants = {j: _grant(j) for j in range(count)}
    base = _compile([*fixed, *grants.values()], 1)
    changes: list[tuple[str, Callable[[], None]]] = [
        ("grant", lambda: grants.__setitem__(count, _grant(count))),
        ("revoke", lambda: grants.pop(0)),
        ("change", lambda: grants.__setitem__(1, _grant(1, ("write_file", "write_x")))),
    ]
    for serial, (label, change) in enumerate(changes, start=2):
        change()
        target = _compile([*fixed, *grants.values()], serial)
        full = sign(target, key).encode()
        delta = build_delta(base, target)
        assert delta is not None, "a grant change must be a delta"
        token = sign_delta(delta, key).encode()
        via_full = PolicyState(public_key(key), server="agents/files")
        via_full.install(base)
        via_delta = PolicyState(public_key(key), server="agents/files")
        via_delta.install(base)
        full_ms = _timed(via_full.install_signed, full)
        delta_ms = _timed(via_delta.install_delta, token)
        for state in (via_full, via_delta):
            if state.current is None or state.current.bundle.digest != target.digest:
                raise SystemExit(f"{label}: the sidecar does not hold the compiled bundle")
        print(
            f"{count:>7} {label:>7} {len(full):>12,} {len(token):>10,} "
            f"{len(full) / len(token):>8.0f}x {full_ms:>10.1f} {delta_ms:>10.1f}"
        )
        base = target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grants", type=int, nargs="+", default=[100, 1000, 10_000])
    args = parser.parse_args()
    print("bytes on the wire per grant change, and the sidecar's install time (verify to swap)")
    print(
        f"{'grants':>7} {'change':>7} {'full bytes':>12} {'delta bytes':>10} {'ratio':>9} "
        f"{'full ms':>10} {'delta ms':>10}"
    )
    for count in args.grants:
        run(count)


if __name__ == "__main__":
    main()
