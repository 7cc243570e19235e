"""Benchmark the policy core: compile time, bundle size and decision latency.

Builds 1,000 AgentPolicies (one per agent, each with CEL conditions) plus a shared guardrail,
and 100, 1,000 and 10,000 ConsentGrants, then times single decisions for an allow decided by
CEL conditions, a consent-path allow (a grant whose own CEL condition holds), a plain allow
and a deny. Prints p50/p99 per decision in microseconds. Target: p50 <= 20 us and
p99 <= 100 us, flat as grants grow. Run: ``python benchmarks/bench_engine.py`` (or make bench).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from remit.api.common import Resource
from remit.api.loader import parse
from remit.policy.compiler import compile_bundle
from remit.policy.engine import Engine
from remit.policy.request import Identity, Request
from remit.policy.signing import generate_key, sign, verify

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
API = "remit.dev/v1alpha1"
NAMESPACE = "bench"


def _server() -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "MCPServer",
        "metadata": {"name": "files", "namespace": NAMESPACE},
        "spec": {
            "selector": {"matchLabels": {"app": "files"}},
            "authentication": {"issuer": "https://idp.example.com", "audience": "files"},
        },
    }


def _policy(i: int) -> dict[str, Any]:
    rules = [
        {"name": "read", "effect": "Allow", "tools": ["read_*"],
         "when": 'args.path.startsWith("/data/")'},
        {"name": "no-secrets", "effect": "Deny", "tools": ["read_*"],
         "when": 'has(args.path) && args.path.startsWith("/data/secrets/")'},
        {"name": "write", "effect": "Allow", "tools": ["write_file"], "requireConsent": True,
         "when": "size(args.path) < 256", "rateLimit": {"calls": 30, "per": "1m"}},
        {"name": "own", "effect": "Allow", "tools": [f"tool_{i}", "list_items"]},
        {"name": "no-delete", "effect": "Deny", "tools": ["delete_*"]},
    ]  # fmt: skip
    return {
        "apiVersion": API,
        "kind": "AgentPolicy",
        "metadata": {"name": f"agent-{i}", "namespace": NAMESPACE},
        "spec": {
            "servers": ["files"],
            "agents": [f"agent-{i}"],
            "subjects": {"users": ["*@example.com"], "groups": ["support"]},
            "rules": rules,
        },
    }


def _guardrail() -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "AgentPolicy",
        "metadata": {"name": "guardrails", "namespace": NAMESPACE},
        "spec": {
            "servers": ["*"],
            "agents": ["*"],
            "rules": [
                {
                    "name": "bulk-in-hours",
                    "effect": "Deny",
                    "tools": ["bulk_*"],
                    "when": "now.getHours() < 7 || now.getHours() >= 17",
                },
            ],
        },
    }


def _grant(j: int, policies: int) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "ConsentGrant",
        "metadata": {"name": f"grant-{j}", "namespace": NAMESPACE},
        "spec": {
            "subject": f"user-{j}@example.com",
            "agent": f"agent-{j % policies}",
            "server": "files",
            "tools": ["write_file"],
            "when": f'args.path.startsWith("/data/user-{j}/")',
            "expiresAt": (NOW + timedelta(days=1 + j % 300)).isoformat(),
            "grantedBy": f"user-{j}@example.com",
        },
    }


def _timed(label: str, action: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = action()
    return result, time.perf_counter() - start


def _latencies(engine: Engine, requests: list[Request], iterations: int) -> list[float]:
    decide = engine.decide
    clock = time.perf_counter_ns
    for request in requests[: min(len(requests), 2000)]:
        decide(request)  # warm the per-(agent, tool) lookup cache, as steady traffic does
    samples: list[float] = []
    count = len(requests)
    gc.collect()
    for n in range(iterations):
        request = requests[n % count]
        start = clock()
        decide(request)
        samples.append((clock() - start) / 1000)
    return samples


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _scenarios(policies: int) -> dict[str, tuple[list[Request], str]]:
    """Requests per scenario and the reason each must produce (checked before timing)."""

    def person(k: int) -> Identity:
        return Identity(subject=f"user-{k}@example.com", agent=f"agent-{k % policies}")

    ro = {"readOnlyHint": True}
    writable = {"destructiveHint": False}
    spread = range(0, 100)  # 100 distinct callers, each with its own grant
    return {
        "allow, CEL conditions": (
            [Request(person(k), "tools/call", "read_file", {"path": f"/data/{k}"}, ro, NOW)
             for k in spread], "allowed"),
        "allow, consent + grant CEL": (
            [Request(person(k), "tools/call", "write_file",
                     {"path": f"/data/user-{k}/notes"}, writable, NOW) for k in spread],
            "allowed"),
        "allow, plain": (
            [Request(person(k), "tools/call", "list_items", {}, ro, NOW) for k in spread],
            "allowed"),
        "deny, by rule": (
            [Request(person(k), "tools/call", "delete_file", {"id": k}, writable, NOW)
             for k in spread], "denied_by_rule"),
        "deny, consent required": (
            [Request(person(k), "tools/call", "write_file", {"path": "/data/other"}, writable, NOW)
             for k in spread], "consent_required"),
    }  # fmt: skip


def run(policies: int, grant_counts: list[int], iterations: int) -> None:
    print(f"policies: {policies} (+1 guardrail), rules per policy: 5, {iterations} decisions each")
    base = [_server(), _guardrail(), *(_policy(i) for i in range(policies))]
    key = generate_key()
    header = f"{'grants':>7} {'scenario':<28} {'p50 us':>8} {'p99 us':>8} {'mean us':>8}"
    rows: list[str] = []
    for grants in grant_counts:
        documents = base + [_grant(j, policies) for j in range(grants)]
        resources: list[Resource]
        resources, t_load = _timed("load", lambda d=documents: [parse(x) for x in d])
        bundle, t_compile = _timed(
            "compile", lambda r=resources: compile_bundle(r, "files", now=NOW, serial=1)
        )
        token, t_sign = _timed("sign", lambda b=bundle: sign(b, key))
        _, t_verify = _timed("verify", lambda t=token: verify(t, key))
        engine, t_engine = _timed("engine", lambda b=bundle: Engine(b))
        size = len(bundle.canonical())
        print(
            f"grants {grants:>6}: validate+CEL-check {t_load:6.2f} s, compile {t_compile:6.3f} s,"
            f" sign {t_sign * 1000:6.1f} ms, verify {t_verify * 1000:6.1f} ms,"
            f" engine build {t_engine:6.2f} s, bundle {size / 1024:8.1f} KiB"
        )
        for label, (requests, reason) in _scenarios(policies).items():
            first = engine.decide(requests[0])
            if first.reason != reason:
                raise SystemExit(f"{label}: expected {reason}, got {first.reason}: {first.message}")
            samples = _latencies(engine, requests, iterations)
            rows.append(
                f"{grants:>7} {label:<28} {_percentile(samples, 0.50):8.1f}"
                f" {_percentile(samples, 0.99):8.1f} {statistics.fmean(samples):8.1f}"
            )
    print()
    print(header)
    print("\n".join(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=int, default=1000)
    parser.add_argument("--grants", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--iterations", type=int, default=20000)
    args = parser.parse_args()
    run(args.policies, args.grants, args.iterations)


if __name__ == "__main__":
    main()
