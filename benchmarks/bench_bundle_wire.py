"""Bundle wire form: bytes and CPU time to encode, sign and verify, at 10,000 grants.

The shape is ``bench_push_delta.py``'s: one MCPServer, one consent policy and N ConsentGrants
compiled through the loader and compiler as the operator does, plus 10% ended (revoked) grants.
For the bundle it prints the canonical JSON's bytes, the signed JWS's bytes, and the process CPU
time (``time.process_time``, so other load on the machine does not count) of: the canonical
encoding, the content digest, ``sign`` (operator side) and ``verify`` (sidecar side: signature,
decode, digest check), each the median of ``--repeat`` runs. Then the same for a delta of one
grant change.

    .venv/bin/python benchmarks/bench_bundle_wire.py [--grants 10000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.policies import grant, policy, rule, server

from remit.api.loader import parse
from remit.policy.compiler import compile_bundle
from remit.policy.delta import build_delta
from remit.policy.signing import generate_key, sign, sign_delta, verify, verify_delta

NOW = datetime.now(UTC).replace(microsecond=0)
LATER = NOW + timedelta(days=30)


def _cpu_ms(action: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.process_time()
        action()
        times.append((time.process_time() - began) * 1000)
    return statistics.median(times)


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
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    count, repeat = args.grants, args.repeat
    fixed = [server(), policy("bot", rule("write", tools=["write_*"], consent=True))]
    docs = [*fixed, *(_grant(j, revoked=j % 10 == 0) for j in range(count))]
    resources = [parse(doc) for doc in docs]
    bundle = compile_bundle(resources, "files", namespace="agents", now=NOW)
    bundle = msgspec.structs.replace(bundle, serial=1)
    key = generate_key()
    token = sign(bundle, key)
    print(f"{count} grants ({len(bundle.grants)} in the bundle, ended ones included)")
    print(f"  canonical JSON      {len(bundle.canonical()):>12,} bytes")
    print(f"  signed JWS          {len(token):>12,} bytes")
    print(f"  canonical()         {_cpu_ms(bundle.canonical, repeat):>9.1f} ms CPU")
    print(f"  content_digest()    {_cpu_ms(bundle.content_digest, repeat):>9.1f} ms CPU")
    print(f"  sign()              {_cpu_ms(lambda: sign(bundle, key), repeat):>9.1f} ms CPU")
    print(f"  verify()            {_cpu_ms(lambda: verify(token, key), repeat):>9.1f} ms CPU")
    changed = [parse(_grant(j)) for j in (1, 2)] + [parse(_grant(count))]
    after_docs = {r.metadata.name: r for r in resources}
    after_docs.update({r.metadata.name: r for r in changed})
    target = compile_bundle(list(after_docs.values()), "files", namespace="agents", now=NOW)
    target = msgspec.structs.replace(target, serial=2)
    delta = build_delta(bundle, target)
    assert delta is not None
    delta_token = sign_delta(delta, key)
    print(f"  delta of 3 grants   {len(delta_token):>12,} bytes signed")
    sign_ms = _cpu_ms(lambda: sign_delta(delta, key), repeat)
    verify_ms = _cpu_ms(lambda: verify_delta(delta_token, key), repeat)
    print(f"  sign_delta()        {sign_ms:>9.1f} ms CPU")
    print(f"  verify_delta()      {verify_ms:>9.1f} ms CPU")


if __name__ == "__main__":
    main()
