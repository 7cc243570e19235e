"""Bundle wire form: bytes, and CPU time to encode, sign and verify, at 10,000 grants, with the
wire contract (``remit.policy.wire``) against format 1's code.

The shape is ``bench_push_delta.py``'s: one MCPServer, one consent policy and N ConsentGrants
(every tenth revoked) compiled through the loader and compiler as the operator does. "v1" is the
frozen copy of format 1's bundle code (``tests/dataplane/compat/v1/schema.py``, commit cd3fc64):
to_builtins with every default, digest over it. Both run in this one process, interleaved, and
each figure is the least process CPU time (``time.process_time``) of ``--repeat`` runs, so
other load on the machine counts as little as it can. Last, what the wire form would cost once
fields are added after format 1: the form computed as if four fields of every grant and one of
the server were later ones, so all N grants are walked and compared with their defaults; and
what the operator adds per signed bundle to learn which later fields it uses (``used()``).

    .venv/bin/python benchmarks/bench_bundle_wire.py [--grants 10000] [--repeat 15]
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
from joserfc import jws

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.dataplane.compat.v1 import schema as v1
from tests.support.policies import grant, policy, rule, server

from remit.api.loader import parse
from remit.policy.bundle import BUNDLE_WIRE
from remit.policy.compiler import compile_bundle
from remit.policy.delta import build_delta
from remit.policy.signing import _registry, generate_key, public_key, sign, sign_delta, verify
from remit.policy.wire import FORMAT_1, WireForm

NOW = datetime.now(UTC).replace(microsecond=0)
LATER = NOW + timedelta(days=30)
HEADER = {"alg": "EdDSA", "typ": "remit-bundle+jws"}


def _cpu_ms(pair: tuple[Callable[[], Any], Callable[[], Any]], repeat: int) -> tuple[float, float]:
    best = [float("inf"), float("inf")]
    for _ in range(repeat):
        for i, action in enumerate(pair):
            began = time.process_time()
            action()
            best[i] = min(best[i], (time.process_time() - began) * 1000)
    return best[0], best[1]


def _grant(j: int, *, revoked: bool = False) -> dict[str, Any]:
    return grant(
        f"grant-{j}",
        subject=f"user{j}@example.com",
        agent=f"bot-{j % 50}",
        expires_at=LATER + timedelta(seconds=j),
        uid=f"uid-{j}",
        revoked=revoked,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grants", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    count, repeat = args.grants, args.repeat
    fixed = [server(), policy("bot", rule("write", tools=["write_*"], consent=True))]
    docs = [*fixed, *(_grant(j, revoked=j % 10 == 0) for j in range(count))]
    resources = [parse(doc) for doc in docs]
    bundle = compile_bundle(resources, "files", namespace="agents", now=NOW)
    bundle = msgspec.structs.replace(bundle, serial=1)
    old = v1.parse_bundle(bundle.canonical())
    key = generate_key()
    pub = public_key(key)
    token = sign(bundle, key)
    header = {**HEADER, "kid": key.kid}
    old_token = jws.serialize_compact(header, old.canonical(), key, registry=_registry())
    assert old_token == token, "the wire form of a format-1 bundle must be v1's bytes"

    def old_verify() -> v1.Bundle:
        return v1.parse_bundle(jws.deserialize_compact(token, pub, registry=_registry()).payload)

    print(f"{count} grants ({len(bundle.grants)} in the bundle, ended ones included)")
    print(
        f"  canonical JSON      {len(bundle.canonical()):>12,} bytes (v1: {len(old.canonical()):,})"
    )
    print(f"  signed JWS          {len(token):>12,} bytes (v1: {len(old_token):,})")
    print("  process CPU, least of runs      v1      now")
    rows: list[tuple[str, tuple[Callable[[], Any], Callable[[], Any]]]] = [
        ("canonical()", (old.canonical, bundle.canonical)),
        ("content_digest()", (old.content_digest, bundle.content_digest)),
        (
            "sign()",
            (
                lambda: jws.serialize_compact(header, old.canonical(), key, registry=_registry()),
                lambda: sign(bundle, key),
            ),
        ),
        ("verify()", (old_verify, lambda: verify(token, pub))),
    ]
    for name, pair in rows:
        before, after = _cpu_ms(pair, repeat)
        print(f"  {name:<22} {before:>9.1f} {after:>8.1f} ms")
    changed = [parse(_grant(j)) for j in (1, 2)] + [parse(_grant(count))]
    after_docs = {r.metadata.name: r for r in resources}
    after_docs.update({r.metadata.name: r for r in changed})
    target = compile_bundle(list(after_docs.values()), "files", namespace="agents", now=NOW)
    delta = build_delta(bundle, msgspec.structs.replace(target, serial=2))
    assert delta is not None
    print(f"  delta of 3 grants   {len(sign_delta(delta, key)):>12,} bytes signed")
    later = {"CompiledGrant": {"uid", "when", "evidence", "reason"}, "ServerSettings": {"limits"}}
    form = WireForm(type(bundle), {k: v - later.get(k, set()) for k, v in FORMAT_1.items()})
    full, walked = _cpu_ms(
        (lambda: msgspec.to_builtins(bundle), lambda: form.document(bundle)), repeat
    )
    print(f"  form, format-1 fields only     {full:>6.1f} ms (msgspec.to_builtins alone)")
    print(f"  form with 5 later fields       {walked:>6.1f} ms (every grant walked and compared)")
    signing, used = _cpu_ms((lambda: sign(bundle, key), lambda: BUNDLE_WIRE.used(bundle)), repeat)
    print(
        f"  later fields used (operator) {used:>8.1f} ms per bundle signed (sign() {signing:.1f})"
    )


if __name__ == "__main__":
    main()
